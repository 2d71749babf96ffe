"""Salesforce OAuth 2.0 tokens: client credentials and JWT bearer (reference §2).

Neither flow returns an expiry or a refresh token (reference §2.1): a session lives as
long as the org's (or the app's) timeout allows, so a token is reused for
``session_ttl_s`` and renewed earlier when a call answers 401 ``INVALID_SESSION_ID``.
Tokens go through the ``TokenCache`` (the state database), so a restarted daemon reuses
its session instead of logging in again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt

from connectors._http import raise_for_transport
from connectors.salesforce.settings import SalesforceSettings
from sync.errors import ConfigError, ConfigProblem, PermanentError, TransientError
from sync.ports import TokenCache
from sync.settings import mask, register_secret

TOKEN_PATH = "/services/oauth2/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: a JWT assertion is valid this long; Salesforce wants exp within about 3 minutes (§2.3)
JWT_LIFETIME_S = 180


@dataclass(frozen=True)
class Session:
    """An access token and the instance every later call goes to (reference §2.1)."""

    token: str = field(repr=False)  # a secret: never in a repr, a log or an error
    instance_url: str
    expires_at: datetime


def cache_name(settings: SalesforceSettings) -> str:
    """The state database's name for this org's session: ``salesforce:<client_id>:<digest>``,
    the digest over the login URL and the user (never a secret)."""
    who = f"{settings.login_url}\n{settings.auth}\n{settings.username or ''}"
    digest = hashlib.blake2b(who.encode(), digest_size=8).hexdigest()
    return f"salesforce:{settings.client_id}:{digest}"


def load_session(cache: TokenCache, name: str) -> Session | None:
    token, instance = cache.get_token(name), cache.get_token(name + ":instance_url")
    if not token or not instance:
        return None
    register_secret(token[0])
    return Session(token[0], instance[0], token[1])


def store_session(cache: TokenCache, name: str, session: Session) -> None:
    cache.put_token(name, session.token, session.expires_at)
    cache.put_token(name + ":instance_url", session.instance_url, session.expires_at)


def token_form(settings: SalesforceSettings, now: datetime) -> dict[str, str]:
    """The token request's form for the configured flow (reference §2.2, §2.3)."""
    if settings.auth == "client_credentials":
        assert settings.client_secret is not None  # the settings validator requires it
        return {
            "grant_type": "client_credentials",
            "client_id": settings.client_id,
            "client_secret": settings.client_secret.get_secret_value(),
        }
    assert settings.private_key is not None and settings.username is not None
    claims = {
        "iss": settings.client_id,
        "sub": settings.username,
        "aud": settings.audience,
        "exp": int(now.timestamp()) + JWT_LIFETIME_S,
    }
    try:
        assertion = jwt.encode(
            claims, settings.private_key.get_secret_value().encode(), algorithm="RS256"
        )
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise ConfigError.single(
            "crm.private_key", f"not a usable RS256 private key ({type(exc).__name__})"
        ) from None
    return {"grant_type": JWT_GRANT, "assertion": assertion}


def request_session(http: httpx.Client, settings: SalesforceSettings, now: datetime) -> Session:
    """Log in; raises ConfigError when the org refuses the credentials (400 ``invalid_*``),
    TransientError when it cannot answer."""
    url = settings.login_url.rstrip("/") + TOKEN_PATH
    try:
        response = http.post(url, data=token_form(settings, now))
    except httpx.HTTPError as exc:
        raise_for_transport(exc, what="Salesforce token")
        raise  # pragma: no cover - raise_for_transport always raises
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise TransientError(f"Salesforce token: HTTP {response.status_code}")
    body = _json(response)
    if response.status_code != 200:
        raise _refused(settings, body, response.status_code)
    token, instance = body.get("access_token"), body.get("instance_url")
    if not isinstance(token, str) or not token or not isinstance(instance, str) or not instance:
        raise PermanentError("Salesforce token: answer without access_token / instance_url")
    register_secret(token)
    return Session(token, instance.rstrip("/"), now + timedelta(seconds=settings.session_ttl_s))


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refused(settings: SalesforceSettings, body: dict[str, Any], status: int) -> ConfigError:
    """A refused login as the setting a person must fix (reference §2.1 error values)."""
    error = str(body.get("error") or f"HTTP {status}")
    description = mask(str(body.get("error_description") or ""))
    if settings.auth == "client_credentials":
        field = (
            "client_id" if "client_id" in error or "client id" in description else "client_secret"
        )
    elif "approved" in description or "user" in description:
        field = "username"
    elif "audience" in description:
        field = "audience"
    else:
        field = "private_key"
    exc = ConfigError(
        [ConfigProblem(f"crm.{field}", f"Salesforce login refused: {error}: {description}")]
    )
    exc.hint = (
        "check the connected app (consumer key, secret or certificate, pre-authorised user, "
        "client credentials run-as user) and that login_url is the org's My Domain URL"
    )
    return exc
