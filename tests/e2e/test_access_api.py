"""``/api/v1/keys`` and ``/api/v1/roles`` for admins: keys shown once, rotated with overlap,
revoked at once; custom roles per tenant with workflow selectors; nobody hands out more than
they hold; callers without payloads:read see executions with their payloads redacted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.routes import Permission
from orchestrator.auth.control import access_control
from orchestrator.auth.roles import ACTIONS, RESOURCES
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

Client = TestClient[web.Request, web.Application]
REDACTED = "[redacted: needs payloads:read]"


def flow(name: str) -> dict[str, Any]:
    return {"name": name, "steps": [{"name": "echo", "type": "succeed", "output": "input"}]}


@dataclass
class Api:
    client: Client
    admin: str
    runtime: Runtime

    async def call(self, key: str, method: str, path: str, body: Any = None, tenant: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key}"}
        if tenant:
            headers["X-Orchestrator-Tenant"] = tenant
        response = await self.client.request(method, path, json=body, headers=headers)
        text = await response.text()
        assert "Traceback" not in text
        return response.status, json.loads(text) if text else None

    async def key(self, *roles: str, key: str | None = None) -> str:
        status, body = await self.call(key or self.admin, "POST", "/api/v1/keys", {"name": "k", "roles": list(roles)})
        assert status == 201, body
        return str(body["key"])


async def serve(settings: Settings) -> AsyncIterator[Api]:
    async with Runtime(settings) as runtime:
        control = access_control(runtime.access, settings)
        admin = (await control.keys.create("root", "default", {"default": ["admin"]})).key
        async with TestClient(TestServer(build_app(runtime, settings, control=control))) as client:
            api = Api(client, admin, runtime)
            for name in ("deploy-web", "billing"):
                assert (await api.call(admin, "POST", "/api/v1/definitions", flow(name)))[0] == 201
            yield api


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    roles = tmp_path / "roles.yaml"
    roles.write_text("release-manager: [executions:redrive, executions:read]\n", encoding="utf-8")
    settings = Settings(event_log_url="memory://", retention_interval=0, roles_file=str(roles))
    async for api in serve(settings):
        yield api


async def test_a_key_is_shown_once_and_works_at_once(api: Api) -> None:
    status, created = await api.call(api.admin, "POST", "/api/v1/keys", {"name": "ci", "roles": ["operator"], "expires_in": "30d"})
    assert status == 201 and created["key"].startswith("orch_") and created["status"] == "active"
    assert created["created_by"] == "key:root" and created["expires_at"] > created["created_at"]
    status, listed = await api.call(api.admin, "GET", "/api/v1/keys")
    text = json.dumps(listed)
    assert created["key"] not in text and "digest" not in text
    assert {k["name"] for k in listed["items"]} == {"root", "ci"}
    status, _ = await api.call(created["key"], "GET", "/api/v1/executions")
    assert status == 200
    status, one = await api.call(api.admin, "GET", f"/api/v1/keys/{created['key_id']}")
    assert status == 200 and one["last_used_at"] is not None and "key" not in one


async def test_rotate_overlaps_and_revoke_is_immediate(api: Api) -> None:
    old = await api.key("viewer")
    key_id = old[5:17]
    status, rotated = await api.call(api.admin, "POST", f"/api/v1/keys/{key_id}/rotate", {"overlap": "1h"})
    assert status == 201 and rotated["rotated_from"] == key_id and rotated["previous"]["replaced_by"] == rotated["key_id"]
    assert (await api.call(old, "GET", "/api/v1/definitions"))[0] == 200  # within the overlap
    assert (await api.call(rotated["key"], "GET", "/api/v1/definitions"))[0] == 200
    status, body = await api.call(api.admin, "POST", f"/api/v1/keys/{key_id}/rotate")
    assert (status, body["error"]["code"]) == (409, "key_rotated")
    status, revoked = await api.call(api.admin, "POST", f"/api/v1/keys/{rotated['key_id']}/revoke")
    assert status == 200 and revoked["status"] == "revoked"
    status, body = await api.call(rotated["key"], "GET", "/api/v1/definitions")
    assert (status, body["error"]["code"]) == (401, "key_revoked")
    assert (await api.call(api.admin, "POST", "/api/v1/keys/AAAAAAAAAAAA/revoke"))[0] == 404


async def test_custom_roles_with_workflow_selectors(api: Api) -> None:
    status, role = await api.call(api.admin, "PUT", "/api/v1/roles/deployer", {"grants": ["executions:start:deploy-*", "executions:read"]})
    assert status == 200 and role["grants"] == ["executions:start:deploy-*", "executions:read"]
    deployer = await api.key("deployer")
    status, _ = await api.call(deployer, "POST", "/api/v1/executions", {"workflow": "deploy-web", "input": {"v": 1}})
    assert status == 202
    status, body = await api.call(deployer, "POST", "/api/v1/executions", {"workflow": "billing", "input": {}})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert (await api.call(deployer, "GET", "/api/v1/executions"))[0] == 200
    status, roles = await api.call(api.admin, "GET", "/api/v1/roles")
    sources = {r["name"]: r["source"] for r in roles["items"]}
    assert sources["admin"] == "builtin" and sources["release-manager"] == "file" and sources["deployer"] == "tenant"
    assert (await api.call(api.admin, "GET", "/api/v1/roles", tenant=None))[0] == 200
    status, body = await api.call(api.admin, "PUT", "/api/v1/roles/admin", {"grants": ["*:*"]})
    assert (status, body["error"]["code"]) == (400, "invalid_role")
    status, body = await api.call(api.admin, "PUT", "/api/v1/roles/bad", {"grants": ["executions:fly"]})
    assert (status, body["error"]["code"]) == (400, "invalid_role")
    assert (await api.call(api.admin, "DELETE", "/api/v1/roles/deployer"))[0] == 200
    assert (await api.call(api.admin, "DELETE", "/api/v1/roles/deployer"))[0] == 404


async def test_nobody_hands_out_more_than_they_hold(api: Api) -> None:
    assert (await api.call(api.admin, "PUT", "/api/v1/roles/keymaster", {"grants": ["keys:read", "keys:write", "executions:read"]}))[0] == 200
    keymaster = await api.key("keymaster")
    status, body = await api.call(keymaster, "POST", "/api/v1/keys", {"name": "x", "roles": ["admin"]})
    assert (status, body["error"]["code"]) == (403, "exceeds_caller")
    status, body = await api.call(keymaster, "POST", "/api/v1/keys", {"name": "x", "roles": ["keymaster"]})
    assert status == 201
    own_id = body["key_id"]
    status, body = await api.call(keymaster, "PUT", f"/api/v1/keys/{own_id}/roles", {"roles": ["operator"]})
    assert (status, body["error"]["code"]) == (403, "exceeds_caller")
    status, body = await api.call(keymaster, "POST", "/api/v1/keys", {"name": "x", "roles": ["nope"]})
    assert (status, body["error"]["code"]) == (400, "invalid_role")


async def test_keys_and_roles_are_the_tenants(api: Api) -> None:
    status, _ = await api.call(api.admin, "POST", "/api/v1/keys", {"name": "acme admin", "roles": ["admin"]}, tenant="acme")
    assert status == 403  # the root key has no roles in acme
    runtime_control = access_control(api.runtime.access, api.runtime.settings)
    acme_admin = (await runtime_control.keys.create("acme admin", "acme", {"acme": ["admin"]})).key
    status, listed = await api.call(acme_admin, "GET", "/api/v1/keys")
    assert [k["name"] for k in listed["items"]] == ["acme admin"]
    root_id = api.admin[5:17]
    assert (await api.call(acme_admin, "GET", f"/api/v1/keys/{root_id}"))[0] == 404
    assert (await api.call(acme_admin, "POST", f"/api/v1/keys/{root_id}/revoke"))[0] == 404
    assert (await api.call(acme_admin, "PUT", "/api/v1/roles/deployer", {"grants": ["executions:read"]}))[0] == 200
    status, roles = await api.call(api.admin, "GET", "/api/v1/roles")
    assert "deployer" not in {r["name"] for r in roles["items"]}


async def test_payloads_are_redacted_without_payloads_read(api: Api) -> None:
    status, started = await api.call(api.admin, "POST", "/api/v1/executions", {"workflow": "deploy-web", "input": {"secret": "s3"}})
    execution_id = started["execution_id"]
    await api.runtime.wait(execution_id, timeout=5)
    viewer = await api.key("viewer")
    base = f"/api/v1/executions/{execution_id}"
    status, got = await api.call(viewer, "GET", base)
    assert status == 200 and got["status"] == "succeeded"
    assert got["input"] == REDACTED and got["output"] == REDACTED and got["steps"] == {"echo": REDACTED}
    status, history = await api.call(viewer, "GET", base + "/history")
    assert status == 200 and {e["data"] for e in history["events"]} == {REDACTED}
    for path in ("/state", "/timeline", f"/diff/{execution_id}"):
        status, body = await api.call(viewer, "GET", base + path)
        assert status == 200 and "s3" not in json.dumps(body), path
    status, full = await api.call(api.admin, "GET", base)
    assert full["input"] == {"secret": "s3"}


async def test_correlation_keys_are_payloads(api: Api) -> None:
    waiting = {
        "name": "awaits",
        "steps": [
            {"name": "w", "type": "wait_for_event", "event": "paid", "correlation_key": "input.order", "next": "end"},
            {"name": "end", "type": "succeed"},
        ],
    }
    assert (await api.call(api.admin, "POST", "/api/v1/definitions", waiting))[0] == 201
    status, started = await api.call(api.admin, "POST", "/api/v1/executions", {"workflow": "awaits", "input": {"order": "o-77"}})
    assert status == 202
    for _ in range(100):  # the wait is recorded by the start's first decision
        status, page = await api.call(api.admin, "GET", "/api/v1/executions?correlation_key=o-77")
        if page["items"]:
            break
        await asyncio.sleep(0.05)
    assert [item["execution_id"] for item in page["items"]] == [started["execution_id"]]
    viewer = await api.key("viewer")
    status, page = await api.call(viewer, "GET", "/api/v1/executions?workflow=awaits")
    assert status == 200 and page["items"][0]["correlation_key"] == REDACTED
    status, body = await api.call(viewer, "GET", "/api/v1/executions?correlation_key=o-77")
    assert status == 403 and body["error"]["code"] == "forbidden" and "o-77" not in json.dumps(body)


def test_roles_know_every_resource_and_action_a_route_can_declare() -> None:
    assert {p.resource for p in Permission} == RESOURCES
    assert {p.action for p in Permission} <= ACTIONS


async def test_restricted_reads_follow_the_executions_workflow(api: Api) -> None:
    ids = {}
    for name in ("deploy-web", "billing"):
        status, started = await api.call(api.admin, "POST", "/api/v1/executions", {"workflow": name, "input": {"n": name}})
        ids[name] = started["execution_id"]
    grants = ["executions:read:deploy-*", "payloads:read:deploy-*"]
    assert (await api.call(api.admin, "PUT", "/api/v1/roles/deploy-reader", {"grants": grants}))[0] == 200
    reader = await api.key("deploy-reader")
    status, got = await api.call(reader, "GET", f"/api/v1/executions/{ids['deploy-web']}")
    assert status == 200 and got["input"] == {"n": "deploy-web"}
    status, body = await api.call(reader, "GET", f"/api/v1/executions/{ids['billing']}")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await api.call(reader, "GET", "/api/v1/executions")  # a listing shows what the grant selects
    assert status == 200 and [i["execution_id"] for i in body["items"]] == [ids["deploy-web"]]
    status, body = await api.call(reader, "GET", "/api/v1/executions/nonexistent")
    assert (status, body["error"]["code"]) == (404, "unknown_execution")
