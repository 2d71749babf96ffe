"""The header signature Kingdee's own SDKs send (reference §1.3), shared by client and emulator.

Both sides compute it from the same functions so a recipe change cannot make
them drift; the client's unit test pins the SDK's published test vector.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

#: the SDK's XOR key material for the AppID suffix (rot13 of a hard-coded literal)
XOR_KEY = b"0054f397c6234378b09ca7d3e5debce7"
SIGNED_HEADER_NAMES = "x-api-timestamp,x-api-nonce"


def hmac_sha256(content: str, key: str) -> str:
    """base64 of the lower-case *hex* HMAC-SHA256 (88 chars): Kingdee's peculiar encoding."""
    digest = hmac.new(key.encode(), content.encode(), hashlib.sha256).hexdigest()
    return base64.b64encode(digest.encode()).decode()


def decode_app_secret(suffix: str) -> str:
    """The X-Api signing key hidden in the AppID suffix; '' unless it is 32 chars (as the SDK)."""
    if len(suffix) != 32:
        return ""
    raw = base64.b64decode(suffix)
    return base64.b64encode(bytes(b ^ XOR_KEY[i] for i, b in enumerate(raw))).decode()


def app_data(acct_id: str, username: str, lcid: int | str, org_num: int | str) -> str:
    return f"{acct_id},{username},{lcid},{org_num}"


def kd_signature(app_id: str, plain_app_data: str, app_secret: str) -> str:
    return hmac_sha256(app_id + plain_app_data, app_secret)


def api_signature(path: str, nonce: str, timestamp: str, client_sec: str) -> str:
    canon = f"POST\n{quote(path, safe='')}\n\nx-api-nonce:{nonce}\nx-api-timestamp:{timestamp}\n"
    return hmac_sha256(canon, client_sec)


def signed_headers(
    *,
    path: str,
    acct_id: str,
    username: str,
    app_id: str,
    app_secret: str,
    lcid: int,
    org_num: int | str,
    timestamp: int,
) -> dict[str, str]:
    """X-Api-* and X-Kd-* headers exactly as the Python SDK 8.2 builds them for ``path``."""
    client_id, _, suffix = app_id.partition("_")
    client_sec = decode_app_secret(suffix) if suffix else ""
    if not suffix:
        client_id = ""
    plain = app_data(acct_id, username, lcid, org_num)
    ts = str(timestamp)
    return {
        "X-Api-ClientID": client_id,
        "X-Api-Auth-Version": "2.0",
        "x-api-timestamp": ts,
        "x-api-nonce": ts,
        "x-api-signheaders": SIGNED_HEADER_NAMES,
        "X-Api-Signature": api_signature(path, ts, ts, client_sec),
        "X-Kd-Appkey": app_id,
        "X-Kd-Appdata": base64.b64encode(plain.encode()).decode(),
        "X-Kd-Signature": kd_signature(app_id, plain, app_secret),
    }
