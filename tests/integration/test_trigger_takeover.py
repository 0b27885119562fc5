"""Version takeover with the real Kafka source: a continuous stream while v2 is registered.

The trigger manager stops the v1 source (it commits what it finished) and starts the v2 source in
the same consumer group, which resumes at the committed offsets. Every message ends up as exactly
one execution; the executions started after the switch run on v2; the group's committed offsets
cover the whole stream; the v2 source did not read the stream again from the beginning.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from orchestrator.ports import ExecutionQuery, ExecutionSummary
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.definition import WorkflowDefinition
from triggers.manager import TriggerManager

pytestmark = pytest.mark.integration
TOTAL = 400  # messages in the stream
BEFORE = 80  # executions on v1 before v2 is registered
AFTER = 120  # messages published after the v2 source runs


def bootstrap(kafka_url: str) -> str:
    return kafka_url.removeprefix("kafka://").split("?", 1)[0]


def definition(name: str, topic: str, description: str) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "name": name,
            "description": description,
            "triggers": [{"type": "kafka", "name": "orders", "topics": [topic], "start_from": "earliest"}],
            "steps": [
                {
                    "name": "record",
                    "type": "task",
                    "connector": "noop",
                    "input": {"n": "input.n"},
                    "next": "done",
                },
                {"name": "done", "type": "succeed", "output": "steps.record.n"},
            ],
        }
    )


async def executions(runtime: Runtime, workflow: str) -> list[ExecutionSummary]:
    found: list[ExecutionSummary] = []
    cursor = None
    while True:
        page = await runtime.log.list_executions(ExecutionQuery(workflow=workflow, limit=500, cursor=cursor))
        found += page.items
        cursor = page.next_cursor
        if cursor is None:
            return found


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def runtime(kafka_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(
        event_log_url=f"sqlite:///{tmp_path}/takeover.db",
        retention_interval=0,
        connections={"kafka": kafka_url},
    )
    async with Runtime(settings) as runtime:
        yield runtime


async def test_a_new_version_takes_over_a_continuous_stream_without_loss_or_duplicates(
    runtime: Runtime, kafka_url: str
) -> None:
    workflow, topic = f"takeover-{uuid.uuid4().hex[:8]}", f"kt.takeover.{uuid.uuid4().hex[:10]}"
    await runtime.register(definition(workflow, topic, "v1"))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(kafka_url), acks="all")
    await producer.start()
    published = 0
    switched_at: int | None = None

    async def publish(until: Callable[[], bool]) -> None:
        nonlocal published
        while not until() and published < TOTAL:
            await producer.send_and_wait(topic, json.dumps({"n": published}).encode())
            published += 1
            await asyncio.sleep(0.005)

    async with TriggerManager(runtime, poll_interval=30.0) as manager:  # takeover by the observer
        try:
            assert (await manager.view(workflow, "orders")).running, await manager.views()
            stream = asyncio.create_task(publish(lambda: False))

            async def some_on_v1() -> bool:
                return len(await executions(runtime, workflow)) >= BEFORE

            await eventually(some_on_v1, 60, f"{BEFORE} executions on v1")
            registered_at = published
            await runtime.register(definition(workflow, topic, "v2"))

            async def v2_runs() -> bool:
                return (await manager.view(workflow, "orders")).running_version == 2

            await eventually(v2_runs, 60, "the v2 source running")
            switched_at = published
            assert not stream.done(), "the stream must still run after the switch; raise TOTAL"
            await stream  # AFTER more messages at least, published while v2 runs
            assert published - switched_at >= AFTER
        finally:
            await producer.stop()
        assert published == TOTAL

        async def all_started() -> bool:
            return len(await executions(runtime, workflow)) >= TOTAL

        await eventually(all_started, 60, f"{TOTAL} executions")
        await asyncio.sleep(1.0)  # a late duplicate would show up now
        v2 = await manager.view(workflow, "orders")

    found = await executions(runtime, workflow)
    inputs = sorted([(await runtime.state(e.execution_id)).input["n"] for e in found])
    assert inputs == list(range(TOTAL))  # every message exactly once
    by_n = {(await runtime.state(e.execution_id)).input["n"]: e.version for e in found}
    assert {n: v for n, v in by_n.items() if n >= switched_at and v != 2} == {}
    assert {v for n, v in by_n.items() if n < registered_at} >= {1}  # v1 ran before
    assert sum(1 for v in by_n.values() if v == 2) >= TOTAL - switched_at

    stats: dict[str, Any] = v2.stats or {}
    print("takeover", registered_at, switched_at, stats)
    assert stats["received"] - stats["duplicates"] <= TOTAL - BEFORE, stats  # resumed, no re-read
    assert stats["duplicates"] <= 64, stats  # at most what was in flight at the switch

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(kafka_url))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"orchestrator.{workflow}.orders")
    finally:
        await admin.close()
    assert sum(o.offset for tp, o in offsets.items() if tp.topic == topic) == TOTAL


def test_api_only_servers_run_no_source_but_list_and_change_triggers(kafka_url: str, tmp_path: Path) -> None:
    """``serve`` with Kafka ``role=api`` only produces: it runs no trigger source, yet lists the
    triggers and changes their overrides (which the workers apply)."""
    from tests.e2e.serverproc import ServerProcess, cli_env, http_json

    run = uuid.uuid4().hex[:8]
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "orders.json").write_text(
        definition(f"api-only-{run}", f"kt.api-only.{run}", "v1").model_dump_json(exclude_none=True)
    )
    transport = f"{kafka_url}?role=api&partitions=2&commands=tt.{run}.commands&tasks=tt.{run}.tasks"
    env = cli_env(
        f"sqlite:///{tmp_path}/api.db",
        {"ORCHESTRATOR_TRANSPORT_URL": transport, "ORCHESTRATOR_CONNECTION_KAFKA": kafka_url},
    )
    server = ServerProcess(env, ["--definitions", str(tmp_path / "defs")], tmp_path / "server.log")
    server.start()
    try:
        status, body = http_json("GET", server.url + "/api/v1/triggers")
        assert status == 200 and body["runs_sources"] is False, body
        (trigger,) = body["triggers"]
        assert (trigger["enabled"], trigger["running"], trigger["error"]) == (True, False, None)
        status, view = http_json("POST", server.url + f"/api/v1/triggers/api-only-{run}/orders/disable")
        assert status == 200 and (view["enabled"], view["override"]) == (False, False)
    finally:
        server.stop()
    assert "consuming" not in server.output(), server.output()
