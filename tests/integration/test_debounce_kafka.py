"""Debounced starts on Kafka + Cassandra, with the definition used embedded: starts through two
processes with one key become one execution (the quiet one is found in the Cassandra wait index),
which a worker runs once with the last input after the period; another key runs on its own."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.validation import parse_definition
from tests.e2e.test_debounce import DEBOUNCED
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration


def settings(kafka_url: str, keyspace: TestKeyspace) -> Settings:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    transport = f"{kafka_url}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}&partitions=4"
    return Settings(auth=False, event_log_url=f"{keyspace.url}?feed_delay=0.3", transport_url=transport, retention_interval=0)


async def test_starts_through_two_processes_run_once_with_the_last_input(
    kafka_url: str, cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    s = settings(kafka_url, cassandra_keyspace)
    async with AsyncExitStack() as stack:
        runtimes = [await stack.enter_async_context(Runtime(s)) for _ in range(2)]
        await runtimes[0].register(parse_definition({**DEBOUNCED, "debounce": {"key": "input.customer", "period": 2}}))
        started = [await runtimes[n % 2].start_execution("debounced", {"customer": "a", "n": n}) for n in range(1, 6)]
        other = await runtimes[1].start_execution("debounced", {"customer": "b", "n": 9})
        assert len({s.execution_id for s in started}) == 1 and all(s.debounced for s in started[1:])
        assert other.created and other.execution_id != started[0].execution_id
        final = await runtimes[0].wait(started[0].execution_id, 60)
        assert final.status == "succeeded" and final.output == {"n": 5}
        assert (await runtimes[1].wait(other.execution_id, 60)).output == {"n": 9}
        history = await runtimes[1].history(started[0].execution_id)
        kinds = [e.type for e in history]
        assert kinds.count("StartDebounced") == 4 and kinds.count("StepScheduled") == 1
        await asyncio.sleep(0.5)  # a stale timer firing late would show as a second run
        assert [e.type for e in await runtimes[0].history(started[0].execution_id)] == kinds
