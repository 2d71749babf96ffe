"""Faults map to the right typed errors, and transient ones are retried with backoff."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
import respx

from connectors._emulator import handler_for
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.source import K3CloudSource
from sync.errors import ConfigError, PermanentError, TransientError
from sync.ledger import whole_documents

from .conftest import Sleeps


@pytest.fixture
def seeded(emulator: K3CloudEmulator) -> K3CloudEmulator:
    fid = emulator.create_document(
        "STK_InStock",
        [{"material": f"M{i}", "qty": str(i + 1), "stock": "CK001"} for i in range(5)],
    )
    emulator.audit("STK_InStock", fid)
    return emulator


@pytest.fixture
def source(seeded: K3CloudEmulator, make_source: Callable[..., K3CloudSource]) -> K3CloudSource:
    return make_source(streams=["purchase_receipt"])


def pull(source: K3CloudSource) -> list[str]:
    return [m.key for p in source.pull("purchase_receipt", None, 100) for m in p.movements]


def test_lost_session_reauthenticates_once(
    seeded: K3CloudEmulator, source: K3CloudSource, sleeps: Sleeps
) -> None:
    assert len(pull(source)) == 5
    before = seeded.calls["ExecuteBillQuery"]
    seeded.inject("auth")
    assert len(pull(source)) == 5
    # the refused page again after signing afresh, then the empty page that ends the pull
    assert seeded.calls["ExecuteBillQuery"] == before + 3
    assert sleeps == [], "re-authentication is immediate, not a backoff"


def test_refused_credentials_become_permanent_with_a_hint(
    seeded: K3CloudEmulator, source: K3CloudSource
) -> None:
    secret = seeded.credentials["app_secret"]
    seeded.rotate_secret("0" * 32)
    with pytest.raises(PermanentError) as caught:
        pull(source)
    assert caught.value.hint and "erp.app_secret" in caught.value.hint
    assert "erp.acct_id was accepted" in caught.value.hint
    assert secret not in str(caught.value) and "0" * 32 not in str(caught.value)
    # a fresh signature refused: signing again with the same settings cannot help
    assert seeded.calls["ExecuteBillQuery"] == 1


def test_secret_rotated_under_a_session_re_signs_once(
    seeded: K3CloudEmulator, source: K3CloudSource, sleeps: Sleeps
) -> None:
    assert len(pull(source)) == 5
    before = seeded.calls["ExecuteBillQuery"]
    seeded.rotate_secret("0" * 32)  # the admin regenerated it: the session goes too
    with pytest.raises(PermanentError, match=r"erp\.app_secret"):
        pull(source)
    assert seeded.calls["ExecuteBillQuery"] == before + 2 and sleeps == []


def test_throttling_backs_off_then_succeeds(
    seeded: K3CloudEmulator, source: K3CloudSource, sleeps: Sleeps
) -> None:
    seeded.inject("throttle", 2)
    assert len(pull(source)) == 5
    assert len(sleeps) == 2 and all(s > 0 for s in sleeps)


def test_rate_limit_answers_msgcode_14(seeded: K3CloudEmulator, source: K3CloudSource) -> None:
    seeded.throttle(1)
    with pytest.raises(TransientError, match="MsgCode 14"):
        for _ in range(5):
            source.client.execute_bill_query(
                {"FormId": "STK_InStock", "FieldKeys": "FID"}, where="x"
            )


@pytest.mark.parametrize("kind", ["http500", "response_error", "truncated"])
def test_transient_faults_are_retried(
    seeded: K3CloudEmulator, source: K3CloudSource, sleeps: Sleeps, kind: str
) -> None:
    seeded.inject(kind, 2)
    assert len(pull(source)) == 5
    assert len(sleeps) == 2


def test_persistent_truncated_json_raises_transient(
    seeded: K3CloudEmulator, source: K3CloudSource, sleeps: Sleeps
) -> None:
    seeded.inject("truncated", 10)
    with pytest.raises(TransientError, match="truncated"):
        pull(source)
    assert len(sleeps) == 2  # max_attempts=3


@pytest.fixture
def over_respx(
    seeded: K3CloudEmulator, make_source: Callable[..., K3CloudSource]
) -> Iterator[tuple[respx.Route, K3CloudSource]]:
    with respx.mock(base_url="http://k3.test", assert_all_called=False) as router:
        route = router.route()
        route.side_effect = handler_for(seeded)
        yield route, make_source(in_process=False, streams=["purchase_receipt"])


def test_timeout_and_500_over_respx_are_retried(
    seeded: K3CloudEmulator,
    over_respx: tuple[respx.Route, K3CloudSource],
    sleeps: Sleeps,
) -> None:
    route, source = over_respx
    real = handler_for(seeded)
    faults: list[object] = [httpx.ReadTimeout("slow"), httpx.Response(500, text="boom")]

    def side_effect(request: httpx.Request) -> httpx.Response:
        if faults:
            fault = faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            assert isinstance(fault, httpx.Response)
            return fault
        return real(request)

    route.side_effect = side_effect
    assert len(pull(source)) == 5
    assert len(sleeps) == 2
    # two faults, the base-qty key check (once per form), the page, the empty page that ends
    # the pull
    assert route.call_count == 5


def test_non_numeric_quantity_is_quarantined(
    seeded: K3CloudEmulator, over_respx: tuple[respx.Route, K3CloudSource]
) -> None:
    route, source = over_respx
    real = handler_for(seeded)

    def corrupt(request: httpx.Request) -> httpx.Response:
        response = real(request)
        rows = json.loads(response.content)
        keys = json.loads(request.content)["data"]["FieldKeys"].split(",")
        if len(rows) > 1:  # the page, not the one-row base-qty key check
            rows[1][keys.index("FBaseUnitQty")] = "N/A"
        return httpx.Response(200, json=rows)

    route.side_effect = corrupt
    pages = list(source.pull("purchase_receipt", None, 100))
    assert len(pages) == 1
    assert len(pages[0].movements) == 4
    (reject,) = pages[0].rejects
    assert reject.field == "FBaseUnitQty"
    assert isinstance(reject.raw, dict) and reject.raw["FBaseUnitQty"] == "N/A"
    assert reject.key and reject.key.startswith("k3cloud:STK_InStock:")
    assert pages[0].cursor is not None
    # the document is whole but for a line the source could not read: the ledger does
    # not judge it, so nothing it stored for that document is withdrawn
    (document,) = pages[0].complete_documents
    assert reject.key.startswith(document + ":")
    assert whole_documents(pages[0]) == frozenset()


def test_edited_garbage_quantity_is_quarantined_too(
    seeded: K3CloudEmulator, source: K3CloudSource
) -> None:
    fid = seeded.create_document("STK_InStock", [{"material": "X", "qty": "1", "stock": "CK9"}])
    seeded.edit_line("STK_InStock", fid, seeded.line_ids("STK_InStock", fid)[0], qty="abc")
    pages = list(source.pull("purchase_receipt", None, 100))
    assert sum(len(p.rejects) for p in pages) == 1
    assert sum(len(p.movements) for p in pages) == 5


@pytest.mark.parametrize(
    ("overrides", "bad_key"),
    [
        # a configured base key is the user's word: no fallback, the key is named
        ({"base_qty_fields": {"count_gain": "FBaseGainQtyX"}}, "FBaseGainQtyX"),
        # converting ("" = no base key): the line-qty key is read and checked
        (
            {"base_qty_fields": {"count_gain": ""}, "qty_fields": {"count_gain": "FGainQtyX"}},
            "FGainQtyX",
        ),
    ],
)
def test_unknown_field_is_a_config_error_naming_it(
    seeded: K3CloudEmulator,
    make_source: Callable[..., K3CloudSource],
    overrides: dict[str, dict[str, str]],
    bad_key: str,
) -> None:
    source = make_source(streams=["count_gain"], **overrides)
    with pytest.raises(ConfigError) as caught:
        list(source.pull("count_gain", None, 10))
    (problem,) = caught.value.problems
    assert problem.path == "erp.streams.count_gain"
    assert bad_key in problem.message


def test_check_reports_success_and_wrong_url(
    seeded: K3CloudEmulator, make_source: Callable[..., K3CloudSource]
) -> None:
    assert "signed in as apiuser" in make_source().check()
    with pytest.raises(PermanentError) as caught:
        make_source(server_url="http://k3.test/wrong/").check()
    assert caught.value.hint and "server_url" in caught.value.hint


def test_check_with_wrong_acct_id_names_it(
    seeded: K3CloudEmulator, make_source: Callable[..., K3CloudSource]
) -> None:
    with pytest.raises(PermanentError) as caught:
        make_source(acct_id="nope").check()
    assert caught.value.hint and "acct_id" in caught.value.hint
