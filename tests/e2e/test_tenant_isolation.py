"""Tenant isolation with authentication on: a key works in its own tenant (or, with the header,
in one where it has roles); every listing and lookup of executions, jobs, triggers and hooks
shows only that tenant's; another tenant's execution is 404 on every route; the tenant header
without roles there is 403. Definitions are one catalog shared by every tenant."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.auth.control import access_control
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

Client = TestClient[web.Request, web.Application]
TENANT = "X-Orchestrator-Tenant"
PARKED = {
    "name": "parked",
    "triggers": [
        {"type": "webhook", "name": "acme-hook", "tenant": "acme"},
        {"type": "webhook", "name": "globex-hook", "tenant": "globex"},
    ],
    "steps": [
        {"name": "hold", "type": "wait_for_event", "event": "go", "correlation_key": "input.key", "next": "done"},
        {"name": "done", "type": "succeed", "output": "steps.hold"},
    ],
}


@dataclass
class World:
    client: Client
    keys: dict[str, str]
    runtime: Runtime

    async def call(self, who: str, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        sent = {"Authorization": f"Bearer {self.keys[who]}", **{k.replace("_", "-"): v for k, v in headers.items()}}
        response = await self.client.request(method, path, json=body, headers=sent)
        text = await response.text()
        assert "Traceback" not in text
        return response.status, json.loads(text) if text else None


@pytest.fixture
async def world() -> AsyncIterator[World]:
    settings = Settings(event_log_url="memory://", retention_interval=0)
    async with Runtime(settings) as runtime:
        control = access_control(runtime.access, settings)
        keys = {}
        for name, tenant, roles in (
            ("admin", "default", {"default": ["admin"]}),
            ("acme", "acme", {"acme": ["operator"]}),
            ("globex", "globex", {"globex": ["operator"]}),
            ("both", "acme", {"acme": ["operator"], "globex": ["viewer"]}),
            ("everywhere", "default", {"*": ["viewer"]}),
        ):
            keys[name] = (await control.keys.create(name, tenant, roles)).key
        async with TestClient(TestServer(build_app(runtime, settings, control=control))) as client:
            world = World(client, keys, runtime)
            status, body = await world.call("admin", "POST", "/api/v1/definitions", PARKED)
            assert status == 201, body
            yield world


async def start(world: World, who: str) -> str:
    status, body = await world.call(who, "POST", "/api/v1/executions", {"workflow": "parked", "input": {"key": "k"}})
    assert status == 202, body
    return str(body["execution_id"])


async def test_executions_are_seen_only_in_their_tenant(world: World) -> None:
    acme, globex = await start(world, "acme"), await start(world, "globex")
    for who, mine, theirs in (("acme", acme, globex), ("globex", globex, acme)):
        status, listed = await world.call(who, "GET", "/api/v1/executions")
        assert status == 200 and [i["execution_id"] for i in listed["items"]] == [mine]
        base = f"/api/v1/executions/{theirs}"
        for path in ("", "/history", "/state", "/timeline", "/links", "/trace", f"/diff/{mine}"):
            status, body = await world.call(who, "GET", base + path)
            assert (status, body["error"]["code"]) == (404, "unknown_execution"), path
        status, _ = await world.call(who, "GET", f"/api/v1/executions/{mine}/diff/{theirs}")
        assert status == 404
        for path, body in (("/cancel", {}), ("/signals", {"name": "go"}), ("/redrive", {})):
            status, answer = await world.call(who, "POST", base + path, body)
            assert (status, answer["error"]["code"]) == (404, "unknown_execution"), path
        status, own = await world.call(who, "GET", f"/api/v1/executions/{mine}")
        assert status == 200 and own["tenant"] == who and own["started_by"] == f"key:{who}"
    assert (await world.runtime.state(acme, tenant="acme")).status == "running"  # nothing reached it


async def test_events_and_replays_stay_in_the_tenant(world: World) -> None:
    acme, globex = await start(world, "acme"), await start(world, "globex")
    event = {"name": "go", "correlation_key": "k", "payload": {"v": 1}}
    status, delivered = await world.call("acme", "POST", "/api/v1/events", event)
    assert status == 202 and delivered["delivered_to"] == [acme]
    assert (await world.runtime.state(globex, tenant="globex")).status == "running"
    status, report = await world.call("globex", "POST", "/api/v1/replay/verify", {"workflow": "parked"})
    assert status == 200 and [e["execution_id"] for e in report["executions"]] == [globex]


async def test_the_tenant_header_needs_roles_there(world: World) -> None:
    globex = await start(world, "globex")
    status, body = await world.call("acme", "GET", "/api/v1/executions", X_Orchestrator_Tenant="globex")
    assert (status, body["error"]["code"]) == (403, "tenant_forbidden")
    status, body = await world.call("both", "GET", f"/api/v1/executions/{globex}", X_Orchestrator_Tenant="globex")
    assert status == 200 and body["input"] == "[redacted: needs payloads:read]"  # a viewer there
    status, body = await world.call("both", "POST", f"/api/v1/executions/{globex}/cancel", {}, X_Orchestrator_Tenant="globex")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await world.call("everywhere", "GET", "/api/v1/executions", X_Orchestrator_Tenant="globex")
    assert status == 200 and [i["execution_id"] for i in body["items"]] == [globex]
    status, body = await world.call("everywhere", "GET", "/api/v1/executions", X_Orchestrator_Tenant="Bad Name")
    assert (status, body["error"]["code"]) == (400, "invalid_tenant")


async def test_jobs_are_the_tenants(world: World) -> None:
    status, job = await world.call("acme", "POST", "/api/v1/executions/redrive", {"dry_run": False, "status": "failed"})
    assert status == 202, job
    assert (await world.call("acme", "GET", f"/api/v1/jobs/{job['job_id']}"))[0] == 200
    assert (await world.call("globex", "GET", f"/api/v1/jobs/{job['job_id']}"))[0] == 404
    assert (await world.call("globex", "POST", f"/api/v1/jobs/{job['job_id']}/cancel"))[0] == 404


async def test_triggers_and_hooks_are_listed_and_switched_per_tenant(world: World) -> None:
    for who in ("acme", "globex"):
        status, listed = await world.call(who, "GET", "/api/v1/triggers")
        assert status == 200 and [t["name"] for t in listed["triggers"]] == [f"{who}-hook"]
        status, hooks = await world.call(who, "GET", "/hooks")
        assert status == 200 and [h["name"] for h in hooks["hooks"]] == [f"{who}-hook"]
    status, body = await world.call("acme", "POST", "/api/v1/triggers/parked/globex-hook/disable")
    assert (status, body["error"]["code"]) == (404, "unknown_trigger")
    status, view = await world.call("acme", "POST", "/api/v1/triggers/parked/acme-hook/disable")
    assert status == 200 and view["enabled"] is False
    status, listed = await world.call("globex", "GET", "/api/v1/triggers")
    assert [t["enabled"] for t in listed["triggers"]] == [True]


async def test_definitions_are_one_shared_catalog(world: World) -> None:
    for who in ("acme", "globex"):
        status, listed = await world.call(who, "GET", "/api/v1/definitions")
        assert status == 200 and [d["name"] for d in listed["items"]] == ["parked"]
    status, body = await world.call("acme", "POST", "/api/v1/definitions", {**PARKED, "name": "other"})
    assert (status, body["error"]["code"]) == (403, "forbidden")  # operators do not register
