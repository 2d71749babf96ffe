"""JSON-RPC client against a tiny in-process fake of Tryton's HTTP behaviour."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.tryton.client import TrytonClient, decode, encode, raise_for_rpc
from sync.errors import AuthError, PermanentError, TransientError

Handler = Callable[[dict[str, Any], httpx.Request], httpx.Response]


class FakeTryton:
    """Login hands out numbered tokens; every other call goes to ``handler``."""

    def __init__(self, handler: Handler | None = None, *, password: str = "pw") -> None:
        self.handler = handler or (lambda body, req: self.ok([]))
        self.password = password
        self.logins = 0
        self.calls: list[dict[str, Any]] = []
        self.valid_tokens: set[str] = set()

    @staticmethod
    def ok(result: Any) -> httpx.Response:
        return httpx.Response(200, json={"id": 1, "result": result})

    def session_token(self, request: httpx.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Session "):
            return None
        login, uid, token = base64.b64decode(header[8:]).decode().split(":")
        assert (login, uid) == ("admin", "1")
        return token

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers.get("Accept-Encoding", "") != "identity"
        body = json.loads(request.content)
        assert set(body) == {"id", "method", "params"}
        self.calls.append(body)
        if body["method"] == "common.db.login":
            if body["params"][1] != {"password": self.password}:
                return httpx.Response(401, text="<html>wrong</html>")
            self.logins += 1
            token = f"t{self.logins}"
            self.valid_tokens.add(token)
            return self.ok([1, token, None])
        needs_session = body["method"] != "common.server.version"
        if needs_session and self.session_token(request) not in self.valid_tokens:
            return httpx.Response(401)
        return self.handler(body, request)

    def client(self, *, password: str = "pw", max_attempts: int = 3) -> TrytonClient:
        self.sleeps: list[float] = []
        return TrytonClient(
            "http://erp.test",
            "erp",
            "admin",
            password,
            context={"company": 1},
            max_attempts=max_attempts,
            transport=httpx.MockTransport(self),
            sleep=self.sleeps.append,
        )


def test_tagged_types_round_trip() -> None:
    value = {
        "d": dt.date(2026, 1, 31),
        "ts": dt.datetime(2026, 1, 31, 23, 59, 58, 123456),
        "n": Decimal("12.3400"),
        "t": dt.time(8, 30),
        "b": b"\x00\xff",
        "nested": [Decimal("1e-7"), {"x": dt.date(2000, 2, 29)}],
    }
    encoded = encode(value)
    assert encoded["n"] == {"__class__": "Decimal", "decimal": "12.3400"}
    assert encoded["d"] == {"__class__": "date", "year": 2026, "month": 1, "day": 31}
    assert decode(json.dumps(encoded)) == value


def test_floats_are_parsed_as_decimal_not_binary_float() -> None:
    parsed = decode('{"q": 0.1, "n": 3, "z": 41.0}')
    assert parsed == {"q": Decimal("0.1"), "n": 3, "z": Decimal("41.0")}
    assert isinstance(parsed["q"], Decimal)


def test_context_is_the_last_param_and_session_header_is_sent() -> None:
    fake = FakeTryton(lambda body, req: FakeTryton.ok([{"id": 1}]))
    client = fake.client()
    rows = client.search_read(
        "stock.move", [["id", ">", 0]], fields=["id"], limit=5, order=[["id", "ASC"]]
    )
    assert rows == [{"id": 1}]
    call = fake.calls[-1]
    assert call["method"] == "model.stock.move.search_read"
    assert call["params"] == [[["id", ">", 0]], 0, 5, [["id", "ASC"]], ["id"], {"company": 1}]
    assert fake.logins == 1


def _response(status: int, body: Any = None) -> httpx.Response:
    if body is None:
        return httpx.Response(status, text="<html>x</html>")
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("response", "expected", "message"),
    [
        (
            _response(200, {"id": 1, "error": ["UserError", ["Cannot delete.", "", None]]}),
            PermanentError,
            "Cannot delete.",
        ),
        (
            _response(200, {"id": 1, "error": ["UserWarning", ["w.1", "No origin.", ""]]}),
            PermanentError,
            "No origin.",
        ),
        (_response(200, {"id": 1, "error": ["'stock.nosuch'", ""]}), PermanentError, "Tryton"),
        (
            _response(200, {"id": 1, "error": ["ConcurrencyException", "modified"]}),
            TransientError,
            "Concurrency",
        ),
        (_response(401, None), AuthError, "401"),
        (_response(403, None), PermanentError, "not exposed"),
        (_response(422, None), PermanentError, "422"),
        (_response(429, None), TransientError, "429"),
        (_response(500, None), TransientError, "500"),
        (_response(503, None), TransientError, "503"),
    ],
)
def test_error_mapping_table(
    response: httpx.Response, expected: type[Exception], message: str
) -> None:
    with pytest.raises(expected, match=message) as info:
        raise_for_rpc(response, what="model.x.y")
    if expected is PermanentError:
        assert not isinstance(info.value, TransientError)


def test_user_error_is_not_retried() -> None:
    calls = 0

    def handler(body: dict[str, Any], req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _response(200, {"id": 1, "error": ["UserError", ["Nope.", "", None]]})

    client = FakeTryton(handler).client()
    with pytest.raises(PermanentError, match=r"Nope\."):
        client.call("model.stock.move.search", [], 0, None, None)
    assert calls == 1


def test_expired_session_logs_in_again_once() -> None:
    fake = FakeTryton(lambda body, req: FakeTryton.ok(7))
    client = fake.client()
    assert client.call("model.stock.move.search_count", []) == 7
    fake.valid_tokens.clear()  # the server restarted: every session is gone
    assert client.call("model.stock.move.search_count", []) == 7
    assert fake.logins == 2
    assert fake.sleeps == []  # re-login is immediate, not a backoff retry


def test_wrong_password_is_permanent_and_not_retried() -> None:
    fake = FakeTryton()
    client = fake.client(password="wrong")
    with pytest.raises(PermanentError, match="rejected") as info:
        client.call("model.stock.move.search_count", [])
    assert not isinstance(info.value, TransientError)
    assert len(fake.calls) == 1


def test_server_errors_are_retried_with_injected_sleep() -> None:
    answers = iter([_response(502), _response(503), FakeTryton.ok("ok")])
    fake = FakeTryton(lambda body, req: next(answers))
    client = fake.client(max_attempts=3)
    assert client.call("model.x.y") == "ok"
    assert len(fake.sleeps) == 2


def test_timeouts_become_transient_after_max_attempts() -> None:
    def handler(body: dict[str, Any], req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=req)

    fake = FakeTryton(handler)
    client = fake.client(max_attempts=2)
    with pytest.raises(TransientError, match="ReadTimeout"):
        client.call("model.x.y")
    assert len(fake.sleeps) == 1


def test_method_not_exposed_is_permanent() -> None:
    fake = FakeTryton(lambda body, req: _response(403))
    client = fake.client()
    with pytest.raises(PermanentError, match="not exposed"):
        client.call("model.product.product.products_by_location", [])
    assert fake.sleeps == []


@pytest.mark.parametrize(
    ("version_answer", "setting"),
    [
        (FakeTryton.ok("8.2"), "erp.database"),  # the server answers: the database is wrong
        (_response(404), "erp.url"),  # nothing answers at /rpc/ either: the URL is wrong
        (_response(405), "erp.url"),
    ],
)
def test_a_missing_database_endpoint_names_the_wrong_setting(
    version_answer: httpx.Response, setting: str
) -> None:
    calls: list[str] = []

    def transport(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/rpc/":
            return version_answer
        return _response(404)  # Tryton's HTML 404 for a database it does not serve

    sleeps: list[float] = []
    client = TrytonClient(
        "http://user:secret@erp.test",
        "nodb",
        "admin",
        "pw-not-shown",
        transport=httpx.MockTransport(transport),
        sleep=sleeps.append,
    )
    with pytest.raises(PermanentError) as info:
        client.login()
    assert info.value.context["setting"] == setting
    text = f"{info.value} {info.value.hint}"
    assert setting in text and "html" not in text.lower()
    assert "secret" not in text and "pw-not-shown" not in text
    assert calls == ["/nodb/rpc/", "/rpc/"] and sleeps == []
