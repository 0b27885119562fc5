"""The whole chain through the real auth middleware: an API key opens a browser session; the
session cookie then authenticates API calls (with the CSRF token for state changes), with the
key's roles; after logout the cookie no longer works."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from orchestrator.auth.control import access_control
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

NOOP = {"name": "quick", "steps": [{"name": "s", "type": "task", "connector": "noop"}]}


async def test_a_key_opens_a_session_that_then_authenticates_calls() -> None:
    settings = Settings(event_log_url="memory://", retention_interval=0)
    async with Runtime(settings) as runtime:
        control = access_control(runtime.access, settings)
        developer = (await control.keys.create("dev", "default", {"default": ["developer"]})).key
        viewer = (await control.keys.create("view", "default", {"default": ["viewer"]})).key
        async with TestClient(TestServer(build_app(runtime, settings, control=control))) as client:
            assert (await client.get("/api/v1/executions")).status == 401
            opened = await client.post("/api/v1/sessions", headers={"Authorization": f"Bearer {developer}"})
            assert opened.status == 201, await opened.text()
            csrf = (await opened.json())["csrf_token"]
            assert (await client.get("/api/v1/executions")).status == 200  # the cookie alone
            register = await client.post("/api/v1/definitions", json=NOOP)
            assert register.status == 403  # a state change by cookie needs the CSRF token
            register = await client.post("/api/v1/definitions", json=NOOP, headers={"X-CSRF-Token": csrf})
            assert register.status == 201, await register.text()
            assert (await client.delete("/api/v1/sessions/current", headers={"X-CSRF-Token": csrf})).status == 204
            assert (await client.get("/api/v1/executions")).status == 401
        async with TestClient(TestServer(build_app(runtime, settings, control=control))) as other:
            opened = await other.post("/api/v1/sessions", headers={"Authorization": f"Bearer {viewer}"})
            csrf = (await opened.json())["csrf_token"]
            refused = await other.post("/api/v1/definitions", json=NOOP, headers={"X-CSRF-Token": csrf})
            assert refused.status == 403  # a viewer's session has a viewer's roles
            assert (await other.post("/api/v1/sessions", headers={"Authorization": "Bearer orch_bad"})).status == 401
