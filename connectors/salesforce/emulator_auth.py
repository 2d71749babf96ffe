"""OAuth 2.0 token endpoint and session checks of the emulated org (reference §2, §11.2–3).

Two grant types: client credentials (consumer key/secret in an HTTP Basic header,
as simple-salesforce sends them, or as ``client_id``/``client_secret`` form fields)
and the JWT bearer flow (an RS256 assertion checked against the app's certificate:
``iss`` = consumer key, ``sub`` = a pre-authorised user, ``aud`` a login host or the
emulator's own URL, ``exp`` epoch seconds as a number or a numeric string, in the
future and at most 5 minutes away). Errors are 400 ``{"error","error_description"}``.

Sessions have no fixed lifetime: they expire after ``idle_timeout_s`` without a call
(default 2 h, every call resets it, §2.1). An unknown or expired session is 401
``[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`` (§2.4).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connectors.salesforce.emulator_rules import ApiError

GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_AUDIENCES = frozenset({"https://login.salesforce.com", "https://test.salesforce.com"})
#: §2.3: an assertion's exp is expected within ~3–5 minutes of now
MAX_ASSERTION_AHEAD_S = 300.0
DEFAULT_IDLE_TIMEOUT_S = 7200.0
ORG_ID = "00D5g00000EMUL8"


class OAuthError(Exception):
    """A refused token request: HTTP 400 with the standard OAuth body (§2.1)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status = error, description, status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def session_invalid() -> ApiError:
    return ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class Sessions:
    """The connected app's credentials and the sessions it has issued."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        client_id: str,
        client_secret: str,
        username: str,
        jwt_public_key: rsa.RSAPublicKey,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        self.clock = clock
        self.client_id, self.client_secret, self.username = client_id, client_secret, username
        self.jwt_public_key = jwt_public_key
        self.idle_timeout_s = idle_timeout_s
        #: False: the app has no client-credentials run-as user (§2.1's error)
        self.client_credentials_enabled = True
        #: users pre-authorised on the app for the JWT flow (§2.3)
        self.approved_users = {username}
        self._last_used: dict[str, float] = {}
        self.issued = 0

    def grant(self, form: dict[str, str], authorization: str, instance_url: str) -> dict[str, Any]:
        """The token answer of §2.1, or OAuthError."""
        grant_type = form.get("grant_type", "")
        if grant_type == GRANT_CLIENT_CREDENTIALS:
            self._client_credentials(form, authorization)
        elif grant_type == GRANT_JWT:
            self._jwt(form.get("assertion", ""), instance_url)
        else:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        token = f"{ORG_ID}!AR8AQ{secrets.token_urlsafe(48)}"
        now = self.clock()
        self._last_used[token] = now
        self.issued += 1
        return {
            "access_token": token,
            "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
            "token_format": "opaque",
            "instance_url": instance_url,
            "id": f"https://login.salesforce.com/id/{ORG_ID}AAA/0055g00000EMUL8AAA",
            "token_type": "Bearer",
            "issued_at": str(int(now * 1000)),
            "scope": "api",
        }

    def check(self, authorization: str) -> None:
        """A call's ``Authorization: Bearer <token>``: refreshes the idle timer or 401."""
        token = authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else ""
        last = self._last_used.get(token)
        now = self.clock()
        if last is None or now - last >= self.idle_timeout_s:
            self._last_used.pop(token, None)
            raise session_invalid()
        self._last_used[token] = now

    def expire_all(self) -> None:
        self._last_used.clear()

    def _client_credentials(self, form: dict[str, str], authorization: str) -> None:
        key, secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization.startswith("Basic "):
            try:
                decoded = base64.b64decode(authorization[len("Basic ") :]).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError("invalid_client", "invalid client credentials") from None
            key, _, secret = decoded.partition(":")
        if key != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not secrets.compare_digest(secret, self.client_secret):
            raise OAuthError("invalid_client", "invalid client credentials")
        if not self.client_credentials_enabled:
            raise OAuthError("invalid_grant", "no client credentials user enabled")

    def _jwt(self, assertion: str, instance_url: str) -> None:
        claims = self._verified_claims(assertion)
        if claims.get("iss") != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if claims.get("aud") not in LOGIN_AUDIENCES | {instance_url}:
            raise OAuthError("invalid_grant", "audience is invalid")
        try:
            exp = float(claims.get("exp", ""))
        except (TypeError, ValueError):
            raise OAuthError("invalid_grant", "expired authorization code") from None
        now = self.clock()
        if exp <= now or exp > now + MAX_ASSERTION_AHEAD_S:
            raise OAuthError("invalid_grant", "expired authorization code")
        if claims.get("sub") not in self.approved_users:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")

    def _verified_claims(self, assertion: str) -> dict[str, Any]:
        try:
            head, body, signature = assertion.split(".")
            header = json.loads(_b64url(head))
            claims = json.loads(_b64url(body))
            raw_signature = _b64url(signature)
        except (ValueError, binascii.Error):
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "invalid assertion")
        try:
            self.jwt_public_key.verify(
                raw_signature, f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if not isinstance(claims, dict):
            raise OAuthError("invalid_grant", "invalid assertion")
        return claims
