"""``GET /api/v1/feed/stream`` and ``GET /api/v1/me`` through the real auth middleware: the
stream sends the tenant's new events (one execution's with ``?execution``), with data only for
``payloads:read``; ``/me`` lists the permissions a key's roles grant."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.redaction import REDACTED
from orchestrator.auth.control import access_control
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.validation import parse_definition

NOOP = {"name": "quick", "steps": [{"name": "s", "type": "task", "connector": "noop"}]}
WAIT = {
    "name": "waiting",
    "steps": [{"name": "w", "type": "wait_for_event", "event": "go", "correlation_key": "input.secret", "timeout_seconds": 600}],
}


async def read_events(response: ClientResponse, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while len(events) < count:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


async def test_the_stream_sends_new_events_redacted_without_payloads_read() -> None:
    settings = Settings(event_log_url="memory://", retention_interval=0)
    async with Runtime(settings) as runtime:
        control = access_control(runtime.access, settings)
        keys = {role: (await control.keys.create(role, "default", {"default": [role]})).key for role in ("operator", "viewer")}
        await runtime.register(parse_definition(NOOP))
        await runtime.register(parse_definition(WAIT))
        before = await runtime.start_execution("waiting", {"secret": "before"})
        async with TestClient(TestServer(build_app(runtime, settings, control=control))) as client:
            assert (await client.get("/api/v1/feed/stream")).status == 401
            assert (await client.get("/api/v1/feed/stream?bogus=1", headers={"Authorization": f"Bearer {keys['viewer']}"})).status == 400
            streams = {
                role: await client.get("/api/v1/feed/stream", headers={"Authorization": f"Bearer {key}"})
                for role, key in keys.items()
            }
            assert all(s.status == 200 and s.content_type == "text/event-stream" for s in streams.values())
            await asyncio.sleep(0.3)
            started = await runtime.start_execution("quick", {"secret": "s3cret"})
            seen = {role: await read_events(stream, 1) for role, stream in streams.items()}
            for stream in streams.values():
                stream.close()
            assert seen["operator"][0]["subject"] == started.execution_id  # not the execution before
            assert seen["operator"][0]["data"]["input"] == {"secret": "s3cret"}
            assert seen["viewer"][0]["data"] == REDACTED and "s3cret" not in json.dumps(seen["viewer"])
            one = await client.get(
                f"/api/v1/feed/stream?execution={before.execution_id}", headers={"Authorization": f"Bearer {keys['operator']}"}
            )
            await asyncio.sleep(0.3)
            await runtime.start_execution("quick", {"secret": "other"})
            await runtime.cancel(before.execution_id, "stop", "test")
            [event] = await read_events(one, 1)
            one.close()
            assert event["subject"] == before.execution_id
            me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {keys['viewer']}"})
            body = await me.json()
            assert "executions:read" in body["permissions"] and "executions:cancel" not in body["permissions"]
            assert body["roles"] == ["viewer"] and body["tenant"] == "default"
            assert (await client.get("/api/v1/me")).status == 401
            assert (await client.get("/api/v1/me", headers={"Authorization": "Bearer orch_bad"})).status == 401


async def test_me_with_authentication_off_holds_every_permission() -> None:
    settings = Settings(event_log_url="memory://", retention_interval=0, auth=False)
    runtime = Runtime(settings)
    async with runtime, TestClient(TestServer(build_app(runtime, settings))) as client:
        body = await (await client.get("/api/v1/me")).json()
        assert body["auth"] is False and "executions:cancel" in body["permissions"]
        page = await client.get("/console/executions")
        assert page.status == 200 and "auth-off" in page.headers.get("Set-Cookie", "")
