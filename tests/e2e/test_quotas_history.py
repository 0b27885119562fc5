"""History quotas: events per execution (progress past it fails the execution with
``quota.events``; a start or signal past it is refused with 403) and stored bytes per tenant
(starts refused with 403 once the tenant's stored events reach it), on memory and SQLite."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.limits.quotas import QuotaExceeded, stored_bytes_by_tenant
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.validation import parse_definition

Client = TestClient[web.Request, web.Application]
ACME = {"X-Orchestrator-Tenant": "acme"}
CHAIN: dict[str, Any] = {
    "name": "chain",
    "steps": [{"name": f"s{i}", "type": "task", "connector": "noop", "next": f"s{i + 1}"} for i in range(7)]
    + [{"name": "s7", "type": "task", "connector": "noop"}],
}
WAITER: dict[str, Any] = {
    "name": "waiter",
    "steps": [
        {"name": "wait", "type": "wait_for_event", "event": "go", "next": "done"},
        {"name": "done", "type": "succeed"},
    ],
}


def settings(tmp_path: Path, backend: str, quotas: dict[str, Any]) -> Settings:
    path = tmp_path / "quotas.json"
    path.write_text(json.dumps(quotas))
    url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 'log.db'}"
    return Settings(auth=False, event_log_url=url, quotas_file=str(path))


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_progress_past_events_per_execution_fails_the_execution(tmp_path: Path, backend: str) -> None:
    async with Runtime(settings(tmp_path, backend, {"*": {"events_per_execution": 10}})) as runtime:
        await runtime.register(parse_definition(CHAIN))
        started = await runtime.start_execution("chain")
        final = await runtime.wait(started.execution_id, 10)
        assert final.status == "failed"
        assert final.error is not None and final.error["type"] == "quota.events"
        assert "events_per_execution" in final.error["message"]
        history = await runtime.history(started.execution_id)
        assert len(history) <= 10 and history[-1].type == "ExecutionFailed"


async def test_under_the_limit_nothing_changes(tmp_path: Path, backend: str) -> None:
    async with Runtime(settings(tmp_path, backend, {"*": {"events_per_execution": 1000}})) as runtime:
        await runtime.register(parse_definition(CHAIN))
        started = await runtime.start_execution("chain")
        assert (await runtime.wait(started.execution_id, 10)).status == "succeeded"


async def test_a_start_or_signal_past_the_limit_is_refused(tmp_path: Path, backend: str) -> None:
    async with Runtime(settings(tmp_path, backend, {"*": {"events_per_execution": 2}})) as runtime:
        await runtime.register(parse_definition(WAITER))
        with pytest.raises(QuotaExceeded) as refused:
            await runtime.start_execution("waiter")
        assert refused.value.quota == "events_per_execution" and refused.value.limit == 2
    async with Runtime(settings(tmp_path, backend, {"*": {"events_per_execution": 7}})) as runtime:
        await runtime.register(parse_definition(WAITER))
        started = await runtime.start_execution("waiter")
        for _ in range(10):  # buffered signals grow the history until the limit
            try:
                await runtime.signal(started.execution_id, "other")
            except QuotaExceeded as exc:
                assert exc.quota == "events_per_execution"
                break
        else:
            raise AssertionError("a signal past the limit was accepted")
        assert (await runtime.state(started.execution_id)).status == "running"
        assert len(await runtime.history(started.execution_id)) < 7


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    quotas = {"*": {"events_per_execution": 2}, "acme": {"stored_bytes": 4000, "events_per_execution": 100}}
    runtime = Runtime(settings(tmp_path, "sqlite", quotas))
    async with runtime, TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        for definition, headers in ((CHAIN, {}), ({**CHAIN, "name": "acme-chain"}, ACME)):  # names are owned
            assert (await client.post("/api/v1/definitions", json=definition, headers=headers)).status in (200, 201)
        yield client


async def test_http_answers_name_the_quota_and_show_usage(client: Client) -> None:
    refused = await client.post("/api/v1/executions", json={"workflow": "chain"})
    body = await refused.json()
    assert refused.status == 403 and body["error"]["code"] == "quota_exceeded"
    assert body["error"]["details"][0]["quota"] == "events_per_execution"
    codes = []
    for _ in range(10):  # each chain stores well over 400 bytes
        answer = await client.post("/api/v1/executions", json={"workflow": "acme-chain"}, headers=ACME)
        codes.append(answer.status)
        if answer.status == 403:
            details = (await answer.json())["error"]["details"][0]
            assert details["quota"] == "stored_bytes" and details["usage"] >= 4000
            break
    assert codes[0] == 202 and codes[-1] == 403
    usage = await (await client.get("/api/v1/quotas", headers=ACME)).json()
    assert usage["quotas"]["stored_bytes"]["limit"] == 4000
    assert usage["quotas"]["stored_bytes"]["usage"] >= 4000
    assert usage["quotas"]["events_per_execution"]["limit"] == 100


async def test_the_stored_bytes_counter_matches_a_scan(tmp_path: Path) -> None:
    async with Runtime(settings(tmp_path, "sqlite", {"*": {"stored_bytes": 10**9}})) as runtime:
        await runtime.register(parse_definition(CHAIN))
        assert await runtime.quotas.stored("default") == 0  # scanned: nothing stored yet
        for _ in range(3):
            await runtime.wait((await runtime.start_execution("chain")).execution_id, 10)
        counted = await runtime.quotas.stored("default")
        assert counted > 0 and counted == (await stored_bytes_by_tenant(runtime.log))["default"]
    async with Runtime(settings(tmp_path, "sqlite", {"*": {"stored_bytes": 10**9}})) as again:
        assert await again.quotas.stored("default") == counted  # rebuilt by scanning at first use
