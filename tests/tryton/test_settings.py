"""TrytonSettings validation and registry wiring (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

import connectors
from connectors.tryton.source import TrytonSettings, TrytonSource
from sync.ports import ConnectorContext, ErpSource

GOOD: dict[str, Any] = {
    "type": "tryton",
    "url": "https://erp.example.com/",
    "database": "erp",
    "username": "sync",
    "password": "s3cret-pass",
}


def test_registry_builds_a_source_without_network() -> None:
    spec = connectors.get("tryton", "erp")
    settings = spec.settings_model()(**GOOD)
    source = spec.build(settings, ConnectorContext())
    assert isinstance(source, TrytonSource)
    assert isinstance(source, ErpSource)
    assert source.streams() == ("moves",)
    assert settings.url == "https://erp.example.com"
    source.close()


def test_password_never_shows() -> None:
    settings = TrytonSettings(**GOOD)
    assert "s3cret-pass" not in repr(settings)
    assert "s3cret-pass" not in str(settings.masked_dump())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"url": "erp.example.com"}, "url"),
        ({"colour": "red"}, "colour"),
        ({"other_location_types": {"production": "sometimes"}}, "other_location_types"),
        ({"company": 0}, "company"),
        ({"type": "k3cloud"}, "type"),
    ],
)
def test_invalid_settings_name_their_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        TrytonSettings(**{**GOOD, **change})
    assert field in {str(e["loc"][0]) for e in info.value.errors()}


def test_defaults() -> None:
    settings = TrytonSettings(**GOOD)
    assert (settings.company, settings.timezone, settings.verify_tls) == (1, "UTC", True)
    assert settings.warehouses is None
    assert settings.other_location_types == {}
