"""``GET /api/v1/feed/stream`` and ``GET /api/v1/me`` through the real auth middleware: the
stream sends the tenant's new events (one execution's with ``?execution``), with data only for
``payloads:read``; it resumes after ``Last-Event-ID`` or ``?after=`` without losing an event, and
a catch-up too far behind is reset to the head; ``/me`` lists the permissions a key's roles grant."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.feed_stream import STREAM, FeedStreamApi
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


async def read_messages(response: ClientResponse, count: int, kind: str = "event") -> list[dict[str, Any]]:
    """The next ``count`` SSE messages of type ``kind``: their fields (``event``, ``id``, ``data``)."""
    messages: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    async with asyncio.timeout(10):
        while len(messages) < count:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line:
                name, _, value = line.partition(": ")
                fields[name] = json.loads(value) if name == "data" else value
                continue
            if fields.get("event") == kind:
                messages.append(fields)
            fields = {}
    return messages


async def read_events(response: ClientResponse, count: int) -> list[dict[str, Any]]:
    return [message["data"] for message in await read_messages(response, count)]


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
            assert (body["tenants"], body["every_tenant"]) == (["default"], False)
            assert (await client.get("/api/v1/me")).status == 401
            assert (await client.get("/api/v1/me", headers={"Authorization": "Bearer orch_bad"})).status == 401
            both = (await control.keys.create("both", "default", {"default": ["viewer"], "acme": ["operator"]})).key
            every = (await control.keys.create("every", "default", {"*": ["viewer"]})).key
            for key, tenant, tenants, everywhere, roles in (
                (both, None, ["acme", "default"], False, ["viewer"]),
                (both, "acme", ["acme", "default"], False, ["operator"]),
                (every, "zeta", ["default"], True, ["viewer"]),
            ):
                headers = {"Authorization": f"Bearer {key}", **({"X-Orchestrator-Tenant": tenant} if tenant else {})}
                body = await (await client.get("/api/v1/me", headers=headers)).json()
                assert (body["tenants"], body["every_tenant"], body["roles"]) == (tenants, everywhere, roles)
                assert body["tenant"] == (tenant or "default")
            refused = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {both}", "X-Orchestrator-Tenant": "zeta"})
            assert refused.status == 403


async def test_me_with_authentication_off_holds_every_permission() -> None:
    settings = Settings(event_log_url="memory://", retention_interval=0, auth=False)
    runtime = Runtime(settings)
    async with runtime, TestClient(TestServer(build_app(runtime, settings))) as client:
        body = await (await client.get("/api/v1/me")).json()
        assert body["auth"] is False and "executions:cancel" in body["permissions"]
        page = await client.get("/console/executions")
        assert page.status == 200 and "auth-off" in page.headers.get("Set-Cookie", "")


async def test_a_stream_resumes_after_its_last_event_id_and_loses_nothing() -> None:
    settings = Settings(event_log_url="memory://", retention_interval=0, auth=False)
    async with Runtime(settings) as runtime:
        await runtime.register(parse_definition(NOOP))
        async with TestClient(TestServer(build_app(runtime, settings))) as client:
            first = await client.get(STREAM)
            [opened] = await read_messages(first, 1, "ready")
            assert opened["data"]["catching_up"] is False and int(opened["id"]) == opened["data"]["position"]
            one = await runtime.start_execution("quick", {"n": 1})
            seen = await read_messages(first, 1)
            first.close()
            assert seen[0]["data"]["subject"] == one.execution_id
            missed = [await runtime.start_execution("quick", {"n": n}) for n in (2, 3)]  # while away
            await runtime.wait(missed[-1].execution_id, timeout=5)
            again = await client.get(STREAM, headers={"Last-Event-ID": seen[0]["id"]})
            [reopened] = await read_messages(again, 1, "ready")
            assert reopened["data"] == {"position": int(seen[0]["id"]), "catching_up": True}
            wanted = {(m.execution_id, "io.orchestrator.ExecutionSucceeded") for m in missed}
            caught: set[tuple[str, str]] = set()
            while not wanted <= caught:  # nothing committed meanwhile is lost (read_messages times out)
                [event] = await read_events(again, 1)
                caught.add((event["subject"], event["type"]))
            again.close()
            head = await client.get(STREAM, headers={"Last-Event-ID": "not-a-position"})
            [fresh] = await read_messages(head, 1, "ready")
            head.close()
            assert fresh["data"]["catching_up"] is False  # a malformed id starts at the head
            assert (await client.get(STREAM + "?after=-1")).status == 400


async def test_a_catchup_too_far_behind_is_reset_to_the_head() -> None:
    settings = Settings(event_log_url="memory://", retention_interval=0, auth=False)
    async with Runtime(settings) as runtime:
        await runtime.register(parse_definition(NOOP))
        for n in range(5):
            await runtime.wait((await runtime.start_execution("quick", {"n": n})).execution_id, timeout=5)
        app = web.Application()
        stream = FeedStreamApi(runtime.feed, max_catchup=3)
        app.router.add_get(STREAM, stream.stream)
        stream_api = FeedStreamApi(runtime.feed, max_catchup=1000)
        app.router.add_get("/unbounded", stream_api.stream)
        async with TestClient(TestServer(app)) as client:
            for path, resets in ((STREAM, True), ("/unbounded", False)):
                response = await client.get(path + "?after=0")
                [opened] = await read_messages(response, 1, "ready")
                assert opened["data"]["catching_up"] is True
                if resets:
                    [reset] = await read_messages(response, 1, "reset")
                    assert "more than 3 events behind" in reset["data"]["reason"]
                    assert reset["data"]["position"] == await runtime.feed.head()
                else:
                    assert len(await read_events(response, 20)) == 20  # the whole past, from position 0
                response.close()
