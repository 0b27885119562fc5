"""The RBAC matrix: every built-in role against every route of the route table, plus requests
without a key. Routes come from the table itself, so a new route is in the matrix at once; its
permission must be in the expected table below (written out, not read from the code), or the
suite fails."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.routes import ROUTE_TABLE, Route
from orchestrator.auth.control import access_control
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

Client = TestClient[web.Request, web.Application]
VIEWER = {
    "definitions:read", "executions:read", "triggers:read", "templates:read", "quotas:read", "analytics:read",
    "schedules:read", "limits:read", "catalog:read", "catalog:review",
}  # fmt: skip
OPERATOR = VIEWER | {
    "payloads:read", "executions:start", "executions:cancel", "executions:signal", "executions:redrive",
    "events:publish", "triggers:write", "deadletters:read", "deadletters:redrive", "replay:verify",
    "cluster:read", "schedules:write",
}  # fmt: skip
DEVELOPER = OPERATOR | {"definitions:write", "templates:write", "secrets:write", "catalog:publish", "templates:install"}
AUDITOR = {
    "audit:read", "keys:read", "roles:read", "definitions:read", "executions:read", "triggers:read", "quotas:read",
    "catalog:read",
}  # fmt: skip
EVERYTHING = {
    "executions:start", "executions:read", "executions:cancel", "executions:signal", "executions:redrive",
    "events:publish", "payloads:read", "definitions:read", "definitions:write", "triggers:read",
    "triggers:write", "replay:verify", "deadletters:read", "deadletters:redrive", "keys:read", "keys:write",
    "roles:read", "roles:write", "audit:read", "secrets:read", "secrets:write", "templates:read",
    "templates:write", "cluster:read", "quotas:read", "analytics:read", "schedules:read", "schedules:write",
    "sessions:revoke", "limits:read", "doctor:run", "templates:install", "catalog:read", "catalog:review",
    "catalog:publish", "catalog:moderate",
}  # fmt: skip
EXPECTED = {"viewer": VIEWER, "operator": OPERATOR, "developer": DEVELOPER, "admin": EVERYTHING, "auditor": AUDITOR}
# Routes answering without payloads to whoever may read executions (docs/security.md).
ENTRY = {"payloads:read": "executions:read"}
PUBLIC = {
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/api/v1/openapi.json"), ("POST", "/hooks/{name}"),
    ("POST", "/hooks/{tenant}/{name}"), ("GET", "/console"), ("GET", "/console/{path:.*}"),
}  # fmt: skip


@pytest.fixture
async def served() -> AsyncIterator[tuple[Client, dict[str, str], list[Route]]]:
    settings = Settings(event_log_url="memory://", retention_interval=0)
    async with Runtime(settings) as runtime:
        control = access_control(runtime.access, settings)
        keys = {}
        for role in EXPECTED:
            created = await control.keys.create(role, "default", {"default": [role]})
            keys[role] = created.key
        app = build_app(runtime, settings, control=control)
        async with TestClient(TestServer(app)) as client:
            yield client, keys, list(app[ROUTE_TABLE].routes)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


async def call(client: Client, route: Route, key: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = await client.request(route.method, concrete(route.path), headers=headers, data=b"")
    if response.content_type == "text/event-stream":  # a live stream: its status is the answer
        response.close()
        return response.status, ""
    return response.status, await response.text()


def test_every_permission_in_the_expected_table_is_known() -> None:
    from orchestrator.api.routes import Permission

    assert {p.value for p in Permission} <= EVERYTHING, "a new permission: add it to the RBAC table"


async def test_every_role_on_every_route(served: tuple[Client, dict[str, str], list[Route]]) -> None:
    client, keys, routes = served
    problems = []
    for route in routes:
        if route.permission is None and route.authenticates:  # sessions: the handler checks the credential
            status, _ = await call(client, route, None)
            idempotent_logout = (route.method, route.path) == ("DELETE", "/api/v1/sessions/current") and status == 204
            if status not in (401, 403) and not idempotent_logout:
                problems.append(f"no credential: {route.method} {route.path} -> {status}, expected 401/403")
            continue
        if route.permission is None:
            assert (route.method, route.path) in PUBLIC, f"{route.method} {route.path} is public: declare a permission"
            continue
        redacts = route.path.startswith("/api/v1/executions/")  # the others cannot redact
        needed = ENTRY.get(route.permission.value, route.permission.value) if redacts else route.permission.value
        assert route.permission.value in EVERYTHING, f"{route.path}: {route.permission} is not in the RBAC table"
        status, text = await call(client, route, None)
        if status != 401 or '"unauthenticated"' not in text:
            problems.append(f"no key: {route.method} {route.path} -> {status}")
        for role, key in keys.items():
            status, text = await call(client, route, key)
            allowed = needed in EXPECTED[role]
            if allowed and status in (401, 403, 500):
                problems.append(f"{role}: {route.method} {route.path} -> {status} {text[:120]}")
            if not allowed and (status != 403 or '"forbidden"' not in text):
                problems.append(f"{role}: {route.method} {route.path} -> {status}, expected 403")
    assert problems == []


async def test_public_routes_need_no_key(served: tuple[Client, dict[str, str], list[Route]]) -> None:
    client, _, _ = served
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    assert (await client.get("/api/v1/openapi.json")).status == 200
    assert (await client.post("/hooks/nobody", data=b"{}")).status == 404  # its own rules


async def test_401_is_json_with_a_bearer_challenge(served: tuple[Client, dict[str, str], list[Route]]) -> None:
    client, keys, _ = served
    response = await client.get("/api/v1/executions")
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["error"]["code"] == "unauthenticated"
    response = await client.get("/api/v1/executions", headers={"Authorization": "Bearer orch_nonsense"})
    assert response.status == 401 and (await response.json())["error"]["code"] == "malformed_key"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    forged = keys["admin"][:-1] + ("A" if keys["admin"][-1] != "A" else "B")
    response = await client.get("/api/v1/executions", headers={"Authorization": f"Bearer {forged}"})
    assert (await response.json())["error"]["code"] == "malformed_key"


async def test_a_failure_is_left_on_the_request_for_the_audit_trail() -> None:
    seen: dict[str, object] = {}

    @web.middleware
    async def recorder(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:  # type: ignore[name-defined]
        response = await handler(request)
        seen[request.path] = request.get("auth_failure")
        return response

    settings = Settings(event_log_url="memory://", retention_interval=0)
    async with Runtime(settings) as runtime:
        control = access_control(runtime.access, settings)
        viewer = (await control.keys.create("v", "default", {"default": ["viewer"]})).key
        app = build_app(runtime, settings, control=control)
        app.middlewares.insert(1, recorder)  # outside the authentication middleware
        async with TestClient(TestServer(app)) as client:
            await client.get("/api/v1/executions")
            await client.post("/api/v1/definitions", headers={"Authorization": f"Bearer {viewer}"})
            await client.get("/api/v1/triggers", headers={"Authorization": f"Bearer {viewer}"})
    assert seen == {"/api/v1/executions": "unauthenticated", "/api/v1/definitions": "forbidden", "/api/v1/triggers": None}
