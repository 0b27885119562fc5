"""Backpressure: a process holding ``max_in_flight`` step tasks answers new starts with 429 and
Retry-After (API and webhooks), instead of queueing without bound; and takes them again once
the work drains. Nothing accepted is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.base import Connectors
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.e2e.gate import Gate

Client = TestClient[web.Request, web.Application]
LIMIT = 3
HELD: dict[str, Any] = {
    "name": "held",
    "triggers": [{"type": "webhook", "name": "held-hook"}],
    "steps": [{"name": "wait", "type": "task", "connector": "gate"}],
}



@pytest.fixture
async def gated() -> AsyncIterator[tuple[Client, Gate, Runtime]]:
    gate = Gate()
    settings = Settings(auth=False, event_log_url="memory://", transport_url="inprocess://?concurrency=1", max_in_flight=LIMIT)
    runtime = Runtime(settings, connectors=Connectors([gate]))
    async with runtime, TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        assert (await client.post("/api/v1/definitions", json=HELD)).status == 201
        yield client, gate, runtime


async def test_starts_past_the_bound_get_429_then_pass_once_work_drains(gated: tuple[Client, Gate, Runtime]) -> None:
    client, gate, runtime = gated
    accepted = []
    for _ in range(LIMIT):
        response = await client.post("/api/v1/executions", json={"workflow": "held"})
        assert response.status == 202
        accepted.append((await response.json())["execution_id"])
    for _ in range(20):  # until the tasks are queued or running
        if runtime.transport.in_flight() >= LIMIT:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.01)
    refused = await client.post("/api/v1/executions", json={"workflow": "held"})
    assert refused.status == 429 and refused.headers["Retry-After"] == "1"
    assert (await refused.json())["error"]["code"] == "overloaded"
    hook = await client.post("/hooks/held-hook", json={"n": 1})
    assert hook.status == 429 and "Retry-After" in hook.headers
    gate.open.set()
    for execution_id in accepted:
        assert (await runtime.wait(execution_id, timeout=10)).status == "succeeded"
    again = await client.post("/api/v1/executions", json={"workflow": "held"})
    assert again.status == 202


async def test_zero_turns_the_bound_off() -> None:
    gate = Gate()
    settings = Settings(auth=False, event_log_url="memory://", transport_url="inprocess://?concurrency=1", max_in_flight=0)
    async with Runtime(settings, connectors=Connectors([gate])) as runtime:
        async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
            assert (await client.post("/api/v1/definitions", json=HELD)).status == 201
            for _ in range(LIMIT * 3):
                assert (await client.post("/api/v1/executions", json={"workflow": "held"})).status == 202
        gate.open.set()
