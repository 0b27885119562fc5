"""The schedule routes over HTTP as ``orchestrator serve`` composes them (``build_app``): each
answers with its documented shape, bad requests get a code, and every action is audited under
the permission its route declares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.audit.query import AuditQuery, search
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.definition import WorkflowDefinition

Client = TestClient[web.Request, web.Application]
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
T0 = 1_800_000_000.0
HELD = {
    "name": "held",
    "triggers": [{"type": "schedule", "name": "hourly", "every": "1h", "overlap": "skip"}],
    "steps": [{"name": "hold", "type": "wait_for_event", "event": "go"}],
}


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with Runtime(Settings(auth=False, event_log_url="memory://", retention_interval=0), clock=lambda: T0) as runtime:
        await runtime.register(WorkflowDefinition.model_validate(HELD))
        yield runtime


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        yield client


async def call(client: Client, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with client.request(method, path, json=body) as response:
        return response.status, await response.json()


async def test_each_route_answers_and_is_audited_with_its_permission(client: Client, runtime: Runtime) -> None:
    base = "/api/v1/schedules/held/hourly"
    status, listing = await call(client, "GET", "/api/v1/schedules")
    assert status == 200 and [s["name"] for s in listing["schedules"]] == ["hourly"]
    status, view = await call(client, "GET", base + "?count=3")
    assert status == 200 and len(view["next"]) == 3
    status, view = await call(client, "POST", base + "/pause", {"note": "migration"})
    assert status == 200 and view["paused"] and view["note"] == "migration"
    status, view = await call(client, "POST", base + "/unpause")
    assert status == 200 and not view["paused"]
    status, fired = await call(client, "POST", base + "/trigger", {})
    assert status == 200 and fired["outcome"] == "started"
    status, counted = await call(
        client, "POST", base + "/backfill", {"start": "2027-01-15T00:00:00Z", "end": "2027-01-15T05:00:00Z"}
    )
    assert status == 200 and counted["dry_run"] and counted["fire_times"] == 6
    records = (await search(runtime.audit.log, AuditQuery(limit=100))).items
    actions = [r.record.action for r in records if r.record.resource.type == "schedules"]
    assert actions.count("schedules:write") >= 4  # pause, unpause, trigger, backfill
    assert {r.record.outcome for r in records if r.record.resource.type == "schedules"} == {"ok"}


async def test_bad_requests_get_a_code_never_a_500(client: Client) -> None:
    base = "/api/v1/schedules/held/hourly"
    cases = [
        ("POST", base + "/backfill", {"start": "2027-01-15T00:00:00", "end": "2027-01-15T05:00:00Z"}, 400, "invalid_body"),
        ("POST", base + "/backfill", {"start": "2027-01-16T00:00:00Z", "end": "2027-01-15T05:00:00Z"}, 400, "invalid_range"),
        ("POST", base + "/backfill", {"start": "2026-01-01T00:00:00Z", "end": "2027-01-15T05:00:00Z"}, 400, "backfill_too_large"),
        ("POST", base + "/trigger", {"overlap": "queue"}, 400, "invalid_body"),
        ("POST", base + "/pause", {"note": "x" * 1001}, 400, "invalid_body"),
        ("GET", base + "?count=-1", None, 400, "invalid_parameter"),
        ("GET", "/api/v1/schedules/held/nope", None, 404, "unknown_trigger"),
        ("POST", "/api/v1/schedules/nope/hourly/trigger", {}, 404, "unknown_workflow"),
    ]
    for method, path, body, status, code in cases:
        answered, error = await call(client, method, path, body)
        assert (answered, error["error"]["code"]) == (status, code), (path, body, error)
