"""Delivery over HTTP: signals with an Idempotency-Key arrive once, a full signal buffer is a 409,
a post-commit failure is not an error answer, and /readyz follows the workers and the log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.backends.memory import MemoryEventLog
from orchestrator.core.commands import DeliverEvent
from orchestrator.core.state import MAX_BUFFERED_SIGNALS
from orchestrator.engine.engine import Committed
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.faulty_log import FaultyLog

Client = TestClient[web.Request, web.Application]
WAITER = {
    "name": "waiter",
    "steps": [
        {"name": "first", "type": "wait_for_event", "event": "go", "next": "second"},
        {"name": "second", "type": "wait_for_event", "event": "never"},
    ],
}


@pytest.fixture
async def setup() -> AsyncIterator[tuple[Client, Runtime, FaultyLog]]:
    log = FaultyLog(MemoryEventLog())
    runtime = Runtime(Settings(auth=False, event_log_url="memory://"), event_log=log)
    async with runtime, TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        assert (await client.post("/api/v1/definitions", json=WAITER)).status == 201
        yield client, runtime, log


async def answer(response: Any, status: int) -> Any:
    text = await response.text()
    assert response.status == status, text
    return json.loads(text)


async def started(client: Client) -> str:
    body = await answer(await client.post("/api/v1/executions", json={"workflow": "waiter"}), 202)
    execution_id: str = body["execution_id"]
    return execution_id


async def test_a_signal_with_the_same_idempotency_key_is_delivered_once(
    setup: tuple[Client, Runtime, FaultyLog],
) -> None:
    client, runtime, _ = setup
    execution_id = await started(client)
    url = f"/api/v1/executions/{execution_id}/signals"
    for _ in range(3):  # a client retrying one signal
        body = await answer(await client.post(url, json={"name": "later"}, headers={"Idempotency-Key": "s-1"}), 202)
        assert body["buffered"] is True
    await answer(await client.post(url, json={"name": "later"}, headers={"Idempotency-Key": "s-2"}), 202)
    await answer(await client.post(url, json={"name": "later"}), 202)  # no key: every one counts
    history = await runtime.history(execution_id)
    assert [e.data.get("event_id") for e in history if e.type == "SignalReceived"] == ["s-1", "s-2", None]
    bad = await client.post(url, json={"name": "later"}, headers={"Idempotency-Key": "x" * 1000})
    assert bad.status == 400


async def test_a_signal_past_the_buffer_cap_is_refused_with_a_code(
    setup: tuple[Client, Runtime, FaultyLog],
) -> None:
    client, runtime, _ = setup
    execution_id = await started(client)
    for n in range(MAX_BUFFERED_SIGNALS):  # through the engine: no state read back each time
        await runtime.engine.handle(DeliverEvent(execution_id=execution_id, now=0.0, name="later", payload=n))
    url = f"/api/v1/executions/{execution_id}/signals"
    body = await answer(await client.post(url, json={"name": "later"}), 409)
    assert body["error"]["code"] == "signal_buffer_full"
    assert len((await runtime.state(execution_id)).signals) == MAX_BUFFERED_SIGNALS
    # the signal a step waits for still gets through
    await answer(await client.post(url, json={"name": "go"}), 202)


async def test_a_failure_after_the_commit_is_not_an_error_answer(
    setup: tuple[Client, Runtime, FaultyLog],
) -> None:
    client, runtime, _ = setup
    failures = 1

    async def export(committed: Committed) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("export target away")

    runtime.engine.observers.append(export)
    execution_id = await started(client)  # 202, not a 5xx that would invite a duplicate start
    assert (await runtime.summary(execution_id)).status == "running"


async def test_readiness_follows_the_workers_and_the_event_log(
    setup: tuple[Client, Runtime, FaultyLog],
) -> None:
    client, runtime, log = setup
    assert await answer(await client.get("/readyz"), 200) == {"status": "ok"}

    await runtime.transport.stop()  # the in-process workers are gone
    body = await answer(await client.get("/readyz"), 503)
    assert body["reason"] == "the in-process workers are stopped"
    await runtime.transport.start(runtime.engine.handle_quietly, runtime.worker.run)
    assert (await client.get("/readyz")).status == 200

    log.fail_appends("before", times=3)  # e.g. the disk is full: reads work, appends fail
    for _ in range(3):
        assert (await client.post("/api/v1/executions", json={"workflow": "waiter"})).status == 503
    body = await answer(await client.get("/readyz"), 503)
    assert body["reason"] == "the last 3 appends to the event log failed"
    await started(client)  # appends work again
    assert (await client.get("/readyz")).status == 200

    log.fail_reads(1)  # the probe read fails once, then answers
    body = await answer(await client.get("/readyz"), 503)
    assert "InjectedFault" in body["reason"]
    assert (await client.get("/readyz")).status == 200
