"""Tenant isolation with authentication on: a key works in its own tenant (or, with the header,
in one where it has roles); every listing and lookup of definitions, executions, jobs, triggers,
hooks and dead letters shows only that tenant's; another tenant's execution or definition is 404
on every route; the tenant header without roles there is 403. A grant restricted to some
workflows filters the listings to them."""

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
from schemas.definition import WorkflowDefinition

Client = TestClient[web.Request, web.Application]
TENANT = "X-Orchestrator-Tenant"


def parked(tenant: str, name: str | None = None) -> WorkflowDefinition:
    """``<tenant>-parked`` of ``tenant``, with a webhook named ``hook`` (each tenant has its own)."""
    return WorkflowDefinition.model_validate(
        {
            "name": name or f"{tenant}-parked",
            "tenant": tenant,
            "triggers": [{"type": "webhook", "name": "hook"}],
            "steps": [
                {
                    "name": "hold",
                    "type": "wait_for_event",
                    "event": "go",
                    "correlation_key": "input.key",
                    "next": "done",
                },
                {"name": "done", "type": "succeed", "output": "steps.hold"},
            ],
        }
    )


@dataclass
class World:
    client: Client
    keys: dict[str, str]
    runtime: Runtime

    async def call(
        self, who: str, method: str, path: str, body: Any = None, **headers: str
    ) -> tuple[int, Any]:
        sent = {
            "Authorization": f"Bearer {self.keys[who]}",
            **{k.replace("_", "-"): v for k, v in headers.items()},
        }
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
            ("orders", "acme", {"acme": ["orders-reader"]}),
        ):
            keys[name] = (await control.keys.create(name, tenant, roles)).key
        grants = [
            "executions:read:acme-orders-*",
            "definitions:read:acme-orders-*",
            "triggers:read:acme-orders-*",
        ]
        await control.catalog.put("acme", "orders-reader", grants)
        for tenant in ("acme", "globex"):
            await runtime.register(parked(tenant))
        async with TestClient(TestServer(build_app(runtime, settings, control=control))) as client:
            yield World(client, keys, runtime)


async def start(world: World, who: str, workflow: str | None = None) -> str:
    body = {"workflow": workflow or f"{who}-parked", "input": {"key": "k"}}
    status, body = await world.call(who, "POST", "/api/v1/executions", body)
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
    status, report = await world.call(
        "globex", "POST", "/api/v1/replay/verify", {"workflow": "globex-parked"}
    )
    assert status == 200 and [e["execution_id"] for e in report["executions"]] == [globex]
    status, report = await world.call("globex", "POST", "/api/v1/replay/verify", {"workflow": "acme-parked"})
    assert (status, report["error"]["code"]) == (404, "unknown_workflow")


async def test_the_tenant_header_needs_roles_there(world: World) -> None:
    globex = await start(world, "globex")
    status, body = await world.call("acme", "GET", "/api/v1/executions", X_Orchestrator_Tenant="globex")
    assert (status, body["error"]["code"]) == (403, "tenant_forbidden")
    status, body = await world.call(
        "both", "POST", "/api/v1/executions", {"workflow": "acme-parked"}, X_Orchestrator_Tenant="globex"
    )
    assert (status, body["error"]["code"]) == (403, "forbidden")  # a viewer there may not start
    status, body = await world.call(
        "both", "GET", f"/api/v1/executions/{globex}", X_Orchestrator_Tenant="globex"
    )
    assert status == 200 and body["input"] == "[redacted: needs payloads:read]"  # a viewer there
    status, body = await world.call(
        "both", "POST", f"/api/v1/executions/{globex}/cancel", {}, X_Orchestrator_Tenant="globex"
    )
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await world.call("everywhere", "GET", "/api/v1/executions", X_Orchestrator_Tenant="globex")
    assert status == 200 and [i["execution_id"] for i in body["items"]] == [globex]
    status, body = await world.call(
        "everywhere", "GET", "/api/v1/executions", X_Orchestrator_Tenant="Bad Name"
    )
    assert (status, body["error"]["code"]) == (400, "invalid_tenant")


async def test_jobs_are_the_tenants(world: World) -> None:
    status, job = await world.call(
        "acme", "POST", "/api/v1/executions/redrive", {"dry_run": False, "status": "failed"}
    )
    assert status == 202, job
    assert (await world.call("acme", "GET", f"/api/v1/jobs/{job['job_id']}"))[0] == 200
    assert (await world.call("globex", "GET", f"/api/v1/jobs/{job['job_id']}"))[0] == 404
    assert (await world.call("globex", "POST", f"/api/v1/jobs/{job['job_id']}/cancel"))[0] == 404


async def test_triggers_and_hooks_are_listed_and_switched_per_tenant(world: World) -> None:
    for who in ("acme", "globex"):
        status, listed = await world.call(who, "GET", "/api/v1/triggers")
        assert status == 200 and [(t["workflow"], t["name"]) for t in listed["triggers"]] == [
            (f"{who}-parked", "hook")
        ]
        status, hooks = await world.call(who, "GET", "/hooks")
        assert status == 200 and [(h["workflow"], h["name"]) for h in hooks["hooks"]] == [
            (f"{who}-parked", "hook")
        ]
    for who in ("acme", "globex"):
        status, listed = await world.call(who, "GET", "/api/v1/triggers")
        assert listed["triggers"][0]["details"]["path"] == f"/hooks/{who}/hook"
    status, body = await world.call("acme", "POST", "/api/v1/triggers/globex-parked/hook/disable")
    assert (status, body["error"]["code"]) == (404, "unknown_trigger")
    status, view = await world.call("acme", "POST", "/api/v1/triggers/acme-parked/hook/disable")
    assert status == 200 and view["enabled"] is False
    status, listed = await world.call("globex", "GET", "/api/v1/triggers")
    assert [t["enabled"] for t in listed["triggers"]] == [True]


async def test_definitions_are_seen_only_in_their_tenant(world: World) -> None:
    for who, theirs in (("acme", "globex-parked"), ("globex", "acme-parked")):
        status, listed = await world.call(who, "GET", "/api/v1/definitions")
        assert status == 200 and [d["name"] for d in listed["items"]] == [f"{who}-parked"]
        for path in ("", "/versions", "/diff?from=1&to=1"):
            status, body = await world.call(who, "GET", f"/api/v1/definitions/{theirs}{path}")
            assert (status, body["error"]["code"]) == (404, "unknown_workflow"), path
        status, body = await world.call(who, "POST", "/api/v1/executions", {"workflow": theirs})
        assert (status, body["error"]["code"]) == (404, "unknown_workflow")
    status, body = await world.call(
        "everywhere", "GET", "/api/v1/definitions", X_Orchestrator_Tenant="globex"
    )
    assert status == 200 and [d["name"] for d in body["items"]] == ["globex-parked"]
    status, body = await world.call("admin", "GET", "/api/v1/definitions")
    assert status == 200 and body["items"] == []  # the default tenant has none of its own
    status, body = await world.call(
        "admin",
        "POST",
        "/api/v1/definitions",
        parked("default", "acme-parked").model_dump(mode="json", exclude={"tenant", "version"}),
    )
    assert (status, body["error"]["code"]) == (409, "workflow_name_taken")
    status, body = await world.call(
        "acme", "POST", "/api/v1/definitions", {"name": "other", "steps": [{"name": "s", "type": "succeed"}]}
    )
    assert (status, body["error"]["code"]) == (403, "forbidden")  # operators do not register


async def test_a_grant_restricted_to_some_workflows_filters_the_listings(world: World) -> None:
    for name in ("acme-orders-eu", "acme-billing"):
        await world.runtime.register(parked("acme", name).model_copy(update={"triggers": []}))
        await start(world, "acme", name)
    status, listed = await world.call("orders", "GET", "/api/v1/executions")
    assert status == 200 and [i["workflow"] for i in listed["items"]] == ["acme-orders-eu"]
    status, listed = await world.call("orders", "GET", "/api/v1/executions?workflow=acme-orders-eu")
    assert status == 200 and [i["workflow"] for i in listed["items"]] == ["acme-orders-eu"]
    status, body = await world.call("orders", "GET", "/api/v1/executions?workflow=acme-billing")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, listed = await world.call("orders", "GET", "/api/v1/definitions")
    assert status == 200 and [d["name"] for d in listed["items"]] == ["acme-orders-eu"]
    status, body = await world.call("orders", "GET", "/api/v1/definitions/acme-billing")
    assert (status, body["error"]["code"]) == (403, "forbidden")  # a lookup outside the grant
    for path, key in (("/api/v1/triggers", "triggers"), ("/hooks", "hooks")):
        status, listed = await world.call("orders", "GET", path)
        assert status == 200 and listed[key] == [], path  # acme-parked's hook is not selected
    # the unrestricted operator of the same tenant sees everything: the grant is what hides the rest
    status, listed = await world.call("acme", "GET", "/api/v1/executions")
    assert sorted(i["workflow"] for i in listed["items"]) == ["acme-billing", "acme-orders-eu"]
    status, listed = await world.call("acme", "GET", "/api/v1/definitions")
    assert [d["name"] for d in listed["items"]] == ["acme-billing", "acme-orders-eu", "acme-parked"]


async def test_a_restricted_grant_still_needs_to_cover_the_listings_permission(world: World) -> None:
    status, body = await world.call("orders", "GET", "/api/v1/audit")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await world.call("orders", "GET", "/api/v1/dead-letters/commands")
    assert (status, body["error"]["code"]) == (403, "forbidden")  # not a filtered listing


async def test_a_tenants_hook_is_delivered_in_that_tenant(world: World) -> None:
    response = await world.client.post("/hooks/acme/hook", json={"key": "k"}, headers={TENANT: "globex"})
    assert response.status == 202, await response.text()
    execution_id = (await response.json())["execution_id"]
    assert (await world.runtime.summary(execution_id, tenant="acme")).workflow == "acme-parked"
    assert (await world.client.post("/hooks/hook", json={})).status == 404  # the default tenant has no hook
