"""Which credential is wrong, said at once (issue 13 item 9).

Reference §3.3: a wrong AcctID gets HTTP non-200 (the emulator answers HTTP 500
with the MsgCode 1 envelope, wrapped ``[[…]]`` on ExecuteBillQuery); a refused
signature gets the MsgCode 1 envelope at HTTP 200. Neither is retried.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from connectors._emulator import transport_for
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.signing import signed_headers
from connectors.k3cloud.source import K3CloudSource
from sync.errors import PermanentError

from .conftest import Sleeps

QUERY_PATH = (
    "/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc"
)


def signed_post(emulator: K3CloudEmulator, **identity: str) -> httpx.Response:
    creds = {k: emulator.credentials[k] for k in ("acct_id", "username", "app_id", "app_secret")}
    headers = signed_headers(
        path=QUERY_PATH, lcid=2052, org_num=0, timestamp=1_700_000_000, **{**creds, **identity}
    )
    body = {"data": {"FormId": "STK_InStock", "FieldKeys": "FID"}}
    with httpx.Client(transport=transport_for(emulator), base_url="http://k3.test") as client:
        return client.post(QUERY_PATH, content=json.dumps(body), headers=headers)


def test_emulator_refuses_an_unknown_data_centre_with_http_500(
    emulator: K3CloudEmulator,
) -> None:
    answer = signed_post(emulator, acct_id="65f000000000ff")
    assert answer.status_code == 500
    (([envelope],),) = [answer.json()]
    status = envelope["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False and status["MsgCode"] == 1
    assert signed_post(emulator).status_code == 200


def test_emulator_refuses_a_bad_signature_at_http_200(emulator: K3CloudEmulator) -> None:
    answer = signed_post(emulator, app_secret="f" * 32)
    assert answer.status_code == 200
    assert answer.json()[0][0]["Result"]["ResponseStatus"]["MsgCode"] == 1


@pytest.mark.parametrize("call", ["pull", "check"])
def test_wrong_acct_id_fails_at_once_naming_it(
    emulator: K3CloudEmulator,
    make_source: Callable[..., K3CloudSource],
    sleeps: Sleeps,
    call: str,
) -> None:
    """The issue's case on ExecuteBillQuery (``[[…]]``) and on QueryBusinessInfo (bare)."""
    emulator.create_document("STK_InStock", [{"material": "M", "qty": "1", "stock": "W"}])
    source = make_source(acct_id="65f000000000ff", streams=["purchase_receipt"])
    with pytest.raises(PermanentError) as caught:
        if call == "pull":
            list(source.pull("purchase_receipt", None, 10))
        else:
            source.check()
    text = f"{caught.value} {caught.value.hint}"
    assert "erp.acct_id" in str(caught.value) and "erp.acct_id" in (caught.value.hint or "")
    assert "HTTP 500" in text and "MsgCode 1" in text
    assert emulator.credentials["app_secret"] not in text
    assert sum(emulator.calls.values()) == 1, "no retry and no re-signing"
    assert sleeps == []


@pytest.mark.parametrize(
    ("identity", "named"),
    [({"username": "nobody"}, "erp.username"), ({"app_secret": "f" * 32}, "erp.app_secret")],
)
def test_refused_signature_fails_at_once_naming_the_signing_settings(
    emulator: K3CloudEmulator,
    make_source: Callable[..., K3CloudSource],
    sleeps: Sleeps,
    identity: dict[str, str],
    named: str,
) -> None:
    """Another case of the kind: MsgCode 1 at HTTP 200 on a fresh signature names the
    settings that sign (not erp.acct_id, which the server accepted)."""
    source = make_source(streams=["purchase_receipt"], **identity)
    with pytest.raises(PermanentError) as caught:
        list(source.pull("purchase_receipt", None, 10))
    assert named in str(caught.value) and named in (caught.value.hint or "")
    assert "f" * 32 not in str(caught.value) and emulator.credentials["app_secret"] not in str(
        caught.value
    )
    assert emulator.calls["ExecuteBillQuery"] == 1 and sleeps == []
