"""The signature recipe reproduces the SDK-generated test vector from the reference notes."""

from __future__ import annotations

from connectors.k3cloud.signing import decode_app_secret, signed_headers

PATH = "/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc"


def test_reference_test_vector() -> None:
    headers = signed_headers(
        path=PATH,
        acct_id="65f0000000000a",
        username="apiuser",
        app_id="123456_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",
        app_secret="0123456789abcdef0123456789abcdef",
        lcid=2052,
        org_num=100,
        timestamp=1700000000,
    )
    assert decode_app_secret("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX") == (
        "MDE3N2I2PzBrPzg4OD45N3IhK3B1InIk"
    )
    assert headers["X-Kd-Appdata"] == "NjVmMDAwMDAwMDAwMGEsYXBpdXNlciwyMDUyLDEwMA=="
    assert headers["X-Kd-Signature"] == (
        "MWYyODg3ZDgyODU5NzI2OTQ5YzhhMGUwNDBlOWQwMzUyYWFiOWM4N2E2Y2IwNTE2NzA5MDFmZTBiYzhhOTA0MQ=="
    )
    assert headers["X-Api-Signature"] == (
        "N2M1YmZlZTUyZjc5YTRjMzU0MjkxMWVjODQ0YWEwZjQ0NzQyNWZjZjcwNGFhNzg0MzMxOGI5ZmI4YjNlMzUxOA=="
    )
    assert headers["X-Api-ClientID"] == "123456"
    assert headers["x-api-timestamp"] == headers["x-api-nonce"] == "1700000000"
    assert headers["x-api-signheaders"] == "x-api-timestamp,x-api-nonce"


def test_short_app_id_suffix_gives_empty_client_secret() -> None:
    assert decode_app_secret("tooshort") == ""
