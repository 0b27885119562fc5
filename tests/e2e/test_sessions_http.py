"""Browser sessions over HTTP: login with a bearer credential, the cookie's attributes, use,
expiry, logout and revocation, and CSRF refusals of cookie-authenticated state changes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from orchestrator.api.app import create_app
from orchestrator.api.errors import error_response
from orchestrator.api.routes import Permission, Route, declared_route
from orchestrator.api.sessions import AUTHENTICATORS, SessionsApi, csrf_middleware
from orchestrator.auth.principal import AuthenticationFailed, Authenticator, Principal
from orchestrator.auth.sessions import SESSION_COOKIE, SessionAuthenticator, Sessions
from orchestrator.auth.tokens import bearer
from orchestrator.backends.memory_sessions import MemorySessionStore
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

Client = TestClient[web.Request, web.Application]
ADA = Principal("ada", "key", "acme", {"acme": ("operator",)}, credential_id="key-1")
ROOT = Principal("root", "key", "acme", {"*": ("admin",)}, credential_id="key-2")


class StaticKeys:
    """Bearer keys from a table: a stand-in for the API key authenticator."""

    def __init__(self, keys: Mapping[str, Principal]) -> None:
        self.keys = keys

    async def authenticate(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> Principal | None:
        credential = bearer(headers)
        if credential is None:
            return None
        if credential not in self.keys:
            raise AuthenticationFailed("key_unknown", "no such key")
        return self.keys[credential]


def authenticating(chain: tuple[Authenticator, ...]) -> Any:
    """What the authentication middleware does: the first principal of the chain, or 401."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        declared = declared_route(request)
        if declared is None or declared.permission is None:  # public, or authenticates itself
            return await handler(request)
        try:
            for authenticator in chain:
                principal = await authenticator.authenticate(request.headers, request.cookies)
                if principal is not None:
                    request["principal"] = principal
                    request["tenant"] = principal.tenant
                    return await handler(request)
        except AuthenticationFailed as exc:
            return error_response(401, exc.code, str(exc))
        return error_response(401, "unauthenticated", "who are you?")

    return middleware


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Things:
    """A state-changing route and a read, answering who asked."""

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/api/v1/things", self.who, Permission.EXECUTIONS_START, "postThing", "A change.", "200"),
            Route("GET", "/api/v1/things", self.who, Permission.EXECUTIONS_READ, "getThings", "A read.", "200"),
        ]

    async def who(self, request: web.Request) -> web.Response:
        principal: Principal = request["principal"]
        return web.json_response({"actor": principal.actor, "via": principal.credential_id})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(clock: Clock) -> AsyncIterator[Client]:
    sessions = Sessions(MemorySessionStore(), ttl=600, clock=clock)
    keys = StaticKeys({"key-1": ADA, "key-2": ROOT})
    chain: tuple[Authenticator, ...] = (keys, SessionAuthenticator(sessions))
    app = create_app(
        [SessionsApi(sessions, [keys]), Things()],
        max_body_bytes=1024,
        middlewares=[csrf_middleware(["https://console.example.test"]), authenticating(chain)],
    )
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def login(client: Client, key: str = "key-1") -> dict[str, Any]:
    response = await client.post("/api/v1/sessions", headers={"Authorization": f"Bearer {key}"})
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_login_sets_a_strict_httponly_cookie_and_returns_the_csrf_token(client: Client) -> None:
    response = await client.post("/api/v1/sessions", headers={"Authorization": "Bearer key-1"})
    assert response.status == 201
    body = await response.json()
    assert body["subject"] == "ada" and body["tenant"] == "acme" and body["logged_in_with"] == "key"
    assert body["roles"] == {"acme": ["operator"]} and body["csrf_token"]
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["httponly"] is True and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert cookie["max-age"] == "600" and not cookie["secure"]  # plain HTTP here; see test_tls
    assert cookie.value.startswith(body["session_id"] + ".")


async def test_login_needs_a_good_bearer_credential(client: Client) -> None:
    missing = await client.post("/api/v1/sessions")
    wrong = await client.post("/api/v1/sessions", headers={"Authorization": "Bearer nope"})
    assert missing.status == wrong.status == 401
    assert (await missing.json())["error"]["code"] == "unauthenticated"
    assert (await wrong.json())["error"]["code"] == "key_unknown"
    assert SESSION_COOKIE not in wrong.cookies


async def test_the_cookie_authenticates_reads_and_csrf_guarded_writes(client: Client) -> None:
    session = await login(client)
    read = await client.get("/api/v1/things")
    assert read.status == 200 and await read.json() == {"actor": "session:ada", "via": session["session_id"]}

    without = await client.post("/api/v1/things")
    wrong = await client.post("/api/v1/things", headers={"X-CSRF-Token": "x" * 43})
    foreign = await client.post(
        "/api/v1/things", headers={"X-CSRF-Token": session["csrf_token"], "Origin": "https://evil.example.test"}
    )
    assert [without.status, wrong.status, foreign.status] == [403, 403, 403]
    assert (await without.json())["error"]["code"] == "csrf_token_missing"
    assert (await wrong.json())["error"]["code"] == "csrf_token_invalid"
    assert (await foreign.json())["error"]["code"] == "csrf_origin"

    ok = await client.post("/api/v1/things", headers={"X-CSRF-Token": session["csrf_token"]})
    allowed = await client.post(
        "/api/v1/things",
        headers={"X-CSRF-Token": session["csrf_token"], "Origin": "https://console.example.test"},
    )
    same = await client.post(
        "/api/v1/things", headers={"X-CSRF-Token": session["csrf_token"], "Origin": str(client.make_url("")).rstrip("/")}
    )
    assert [ok.status, allowed.status, same.status] == [200, 200, 200]


async def test_bearer_requests_are_exempt_and_never_use_the_cookie(client: Client) -> None:
    await login(client)
    response = await client.post("/api/v1/things", headers={"Authorization": "Bearer key-2"})
    assert response.status == 200 and (await response.json())["actor"] == "key:root"


async def test_current_answers_the_session_and_its_csrf_token(client: Client) -> None:
    session = await login(client)
    current = await client.get("/api/v1/sessions/current")
    assert current.status == 200 and await current.json() == session
    client.session.cookie_jar.clear()
    assert (await client.get("/api/v1/sessions/current")).status == 401


async def test_a_session_expires(client: Client, clock: Clock) -> None:
    await login(client)
    clock.now += 601
    response = await client.get("/api/v1/things")
    assert response.status == 401 and (await response.json())["error"]["code"] == "session_expired"


async def test_logout_needs_the_csrf_token_then_ends_the_session(client: Client) -> None:
    session = await login(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    assert (await client.delete("/api/v1/sessions/current")).status == 403
    out = await client.delete("/api/v1/sessions/current", headers={"X-CSRF-Token": session["csrf_token"]})
    assert out.status == 204 and out.cookies[SESSION_COOKIE].value == ""
    replayed = await client.get("/api/v1/things", cookies={SESSION_COOKIE: cookie})
    assert replayed.status == 401 and (await replayed.json())["error"]["code"] == "session_revoked"


async def test_an_admin_revokes_a_session_by_id_within_the_tenant(client: Client) -> None:
    session = await login(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    client.session.cookie_jar.clear()
    admin = {"Authorization": "Bearer key-2"}
    assert (await client.delete("/api/v1/sessions/" + "0" * 32, headers=admin)).status == 404
    assert (await client.delete(f"/api/v1/sessions/{session['session_id']}", headers=admin)).status == 204
    used = await client.get("/api/v1/things", cookies={SESSION_COOKIE: cookie})
    assert used.status == 401 and (await used.json())["error"]["code"] == "session_revoked"


async def test_a_forged_cookie_opens_nothing(client: Client) -> None:
    session = await login(client)
    forged = f"{session['session_id']}.not-the-secret"
    response = await client.get("/api/v1/things", cookies={SESSION_COOKIE: forged})
    assert response.status == 401 and (await response.json())["error"]["code"] == "session_invalid"
    malformed = await client.get("/api/v1/things", cookies={SESSION_COOKIE: "garbage"})
    assert malformed.status == 401


# -- the process's app: a JWT from the configured JWKS opens a session stored in SQLite -----------


async def test_build_app_opens_sessions_with_an_oidc_token_in_the_event_log_file(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k"}]}))
    settings = Settings(
        event_log_url=f"sqlite:///{tmp_path}/o.db",
        oidc_jwks=str(jwks),
        oidc_issuer="https://id.example.test/",
        oidc_audience="orchestrator",
    )
    now = int(time.time())
    claims = {"iss": settings.oidc_issuer, "aud": "orchestrator", "sub": "grace", "exp": now + 60, "roles": ["viewer"]}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k"})
    async with Runtime(settings) as runtime:
        app = build_app(runtime, settings)
        chain = app[AUTHENTICATORS]
        async with TestClient(TestServer(app)) as client:
            response = await client.post("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"})
            assert response.status == 201, await response.text()
            body = await response.json()
            assert (body["subject"], body["logged_in_with"]) == ("grace", "token")
            assert body["roles"] == {"default": ["viewer"]}
            cookie = response.cookies[SESSION_COOKIE].value
            principal = await chain[-1].authenticate({}, {SESSION_COOKIE: cookie})
            assert principal is not None and principal.actor == "session:grace"
            forged = f"{token[:-4]}AAAA"
            bad = await client.post("/api/v1/sessions", headers={"Authorization": f"Bearer {forged}"})
            assert bad.status == 401 and (await bad.json())["error"]["code"] == "token_bad_signature"
    # Another process over the same file accepts the session.
    async with Runtime(settings) as runtime, TestClient(TestServer(build_app(runtime, settings))) as client:
        current = await client.get("/api/v1/sessions/current", cookies={SESSION_COOKIE: cookie})
        assert current.status == 200 and (await current.json())["session_id"] == body["session_id"]
