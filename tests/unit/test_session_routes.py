"""Routes that authenticate themselves (login, logout) pass the unguarded-route check only when
they say so, are marked in OpenAPI, and the CSRF rule applies exactly to cookie-borne changes."""

from __future__ import annotations

import pytest
from aiohttp import web

from orchestrator.api.openapi import document
from orchestrator.api.routes import ROUTE_TABLE, Permission, Route, unguarded
from orchestrator.auth import csrf
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings


async def ok(request: web.Request) -> web.Response:
    return web.json_response({})


def test_a_self_authenticating_route_is_not_unguarded_and_is_marked_in_openapi() -> None:
    login = Route("POST", "/api/v1/login", ok, None, "login", "Log in.", "201 401", authenticates=True)
    open_route = Route("POST", "/api/v1/open", ok, None, "open", "Open.", "200")
    assert unguarded([login, open_route]) == [open_route]
    operation = document([login])["paths"]["/api/v1/login"]["post"]
    assert operation["x-permission"] is None and operation["x-authenticates"] is True
    with pytest.raises(ValueError, match="declares no permission"):
        Route("POST", "/api/v1/x", ok, Permission.SESSIONS_REVOKE, "x", "X.", "204", authenticates=True)


def test_the_app_serves_the_session_routes() -> None:
    settings = Settings(event_log_url="memory://")
    routes = {(r.method, r.path): r for r in build_app(Runtime(settings), settings)[ROUTE_TABLE].routes}
    assert routes[("POST", "/api/v1/sessions")].authenticates
    assert routes[("DELETE", "/api/v1/sessions/current")].authenticates
    assert routes[("DELETE", "/api/v1/sessions/{id}")].permission == Permission.SESSIONS_REVOKE


def test_csrf_applies_to_cookie_borne_state_changes_only() -> None:
    cookie = "a" * 32 + ".secret"
    assert csrf.needs_check("POST", {}, cookie) and csrf.needs_check("delete", {}, cookie)
    assert not csrf.needs_check("GET", {}, cookie) and not csrf.needs_check("HEAD", {}, cookie)
    assert not csrf.needs_check("POST", {}, None)
    assert not csrf.needs_check("POST", {"authorization": "Bearer k"}, cookie)
    token = csrf.csrf_token(cookie)
    csrf.check({"x-csrf-token": token, "Origin": "https://o.test"}, cookie, "https://o.test")
    csrf.check({"X-CSRF-Token": token, "Origin": "https://console.test"}, cookie, "https://o.test", ["https://console.test"])
    assert token != csrf.csrf_token("a" * 32 + ".other")
    for headers, code in (
        ({}, "csrf_token_missing"),
        ({"X-CSRF-Token": csrf.csrf_token("b" * 32 + ".x")}, "csrf_token_invalid"),
        ({"X-CSRF-Token": token, "Origin": "https://evil.test"}, "csrf_origin"),
    ):
        with pytest.raises(csrf.CsrfRefused) as caught:
            csrf.check(headers, cookie, "https://o.test")
        assert caught.value.code == code
