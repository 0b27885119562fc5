"""Logins are audited: a session opened with an API key writes exactly one ``sessions:create``
record whose actor is the key (its subject and id), a refused login one ``denied`` record, a
logout one ``sessions:delete``; the cookie's secret is in none of them."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from orchestrator.auth.control import access_control
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings


async def session_records(runtime: Runtime) -> list[dict[str, Any]]:
    bodies = [json.loads(e.body) for e in await runtime.audit.log.read(0, 1000)]
    return [b for b in bodies if b["resource"]["type"] == "sessions"]


async def test_a_login_and_a_logout_are_each_recorded_once() -> None:
    settings = Settings(event_log_url="memory://", retention_interval=0)
    async with Runtime(settings) as runtime:
        control = access_control(runtime.access, settings)
        created = await control.keys.create("ada", "acme", {"acme": ["viewer"]})
        async with TestClient(TestServer(build_app(runtime, settings, control=control))) as client:
            opened = await client.post("/api/v1/sessions", headers={"Authorization": f"Bearer {created.key}"})
            assert opened.status == 201, await opened.text()
            body = await opened.json()
            cookie = opened.cookies["orchestrator_session"].value
            logins = await session_records(runtime)
            assert len(logins) == 1, logins
            (login,) = logins
            assert login["action"] == "sessions:create" and login["outcome"] == "ok"
            assert login["actor"] == {"subject": "ada", "kind": "key", "credential_id": created.record.key_id}
            assert login["tenant"] == "acme" and login["resource"]["id"] == body["session_id"]
            assert login["details"]["logged_in_with"] == "key"
            out = await client.delete("/api/v1/sessions/current", headers={"X-CSRF-Token": body["csrf_token"]})
            assert out.status == 204
            records = await session_records(runtime)
            assert [(r["action"], r["actor"]["kind"], r["actor"]["subject"]) for r in records] == [
                ("sessions:create", "key", "ada"),
                ("sessions:delete", "session", "ada"),
            ]
            assert not any(cookie.split(".")[-1] in json.dumps(r) for r in records)


async def test_a_refused_login_is_one_denied_record() -> None:
    settings = Settings(event_log_url="memory://", retention_interval=0)
    async with Runtime(settings) as runtime:
        control = access_control(runtime.access, settings)
        async with TestClient(TestServer(build_app(runtime, settings, control=control))) as client:
            bad = "orch_" + "a" * 12 + "_" + "b" * 38
            assert (await client.post("/api/v1/sessions", headers={"Authorization": f"Bearer {bad}"})).status == 401
        bodies = [json.loads(e.body) for e in await runtime.audit.log.read(0, 1000)]
    denied = [b for b in bodies if b["details"].get("operation") == "createSession"]
    assert [(b["outcome"], b["reason"]) for b in denied] == [("denied", "malformed_key")]
