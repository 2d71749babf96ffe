"""Secrets (app secret, permanent code, tokens) never show in reprs or error messages."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
import respx

from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.fxiaoke.sink import FxiaokeSink
from sync.errors import ConfigError, PermanentError, StockSyncError
from sync.model import LevelValue, StockKey
from tests.fxiaoke.conftest import BASE_URL, SinkFactory, settings_for

KEY = StockKey("SKU-0001", "WH-MAIN")


def _secrets(emulator: FxiaokeEmulator, sink: FxiaokeSink) -> list[str]:
    return [emulator.app_secret, emulator.permanent_code, sink.client.token()]


def test_settings_and_sink_reprs_hide_secrets(sink: FxiaokeSink, emulator: FxiaokeEmulator) -> None:
    settings = settings_for(emulator)
    shown = " ".join(
        [repr(settings), str(settings), str(settings.masked_dump()), repr(sink), repr(sink.client)]
    )
    for secret in _secrets(emulator, sink):
        assert secret not in shown


def test_error_messages_echoing_secrets_are_masked(
    make_sink: SinkFactory, emulator: FxiaokeEmulator
) -> None:
    sink = make_sink(transport=None)
    with respx.mock(base_url=BASE_URL) as router:
        router.post("/cgi/corpAccessToken/get/V2").mock(
            return_value=httpx.Response(
                200,
                json={
                    "errorCode": 0,
                    "corpAccessToken": "tok-abcdef123456",
                    "corpId": "FSCID_x",
                    "expiresIn": 7200,
                },
            )
        )
        echo = f"bad request {emulator.app_secret} {emulator.permanent_code} tok-abcdef123456"
        router.post("/cgi/crm/v2/data/query").mock(
            return_value=httpx.Response(200, json={"errorCode": 99, "errorMessage": echo})
        )
        with pytest.raises(PermanentError) as info:
            sink.find_level(KEY)
        token = sink.client.token()
    text = str(info.value) + repr(info.value) + str(info.value.context)
    assert token == "tok-abcdef123456"
    for secret in (emulator.app_secret, emulator.permanent_code, token):
        assert secret not in text
    assert "***" in text


def test_bad_credentials_error_does_not_leak_them(
    make_sink: SinkFactory, emulator: FxiaokeEmulator
) -> None:
    sink = make_sink(app_secret="wrong-but-secret", permanent_code="perm-but-secret")
    with pytest.raises(ConfigError) as info:
        sink.check()
    assert "wrong-but-secret" not in str(info.value)
    assert "perm-but-secret" not in str(info.value)


def test_transport_failures_do_not_leak_tokens(
    make_sink: SinkFactory, emulator: FxiaokeEmulator
) -> None:
    sink = make_sink()
    token = sink.client.token()
    emulator.fail_next("/cgi/crm/v2/data/create", "timeout_after_apply")
    with pytest.raises(StockSyncError) as info:
        sink.create_level(KEY, LevelValue(Decimal(1), Decimal(1)))
    assert token not in str(info.value) and emulator.app_secret not in str(info.value)
