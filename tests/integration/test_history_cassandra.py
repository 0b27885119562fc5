"""Snapshots and retention on a real Cassandra: the same behaviour as on the embedded backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.state import fold
from orchestrator.engine import snapshots
from orchestrator.ports import ExecutionQuery
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.validation import parse_definition
from tests.e2e.test_retention import (  # the embedded tests, run again on Cassandra
    test_archiving_without_an_archive_directory_deletes_nothing,
    test_finished_histories_expire_after_the_retention_period,
    test_the_policy_of_the_latest_version_applies,
)
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration
__all__ = [
    "test_archiving_without_an_archive_directory_deletes_nothing",
    "test_finished_histories_expire_after_the_retention_period",
    "test_the_policy_of_the_latest_version_applies",
]

LOOPS = 20
COUNTER = {
    "name": "counter",
    "steps": [
        {
            "name": "work",
            "type": "task",
            "connector": "python",
            "config": {"function": "tests.unit.python_funcs:add"},
            "input": {"a": "steps.work || `0`", "b": "`1`"},
            "next": "again",
        },
        {
            "name": "again",
            "type": "choice",
            "choices": [{"when": f"steps.work < `{LOOPS}`", "next": "work"}],
            "default": "done",
        },
        {"name": "done", "type": "succeed", "output": "steps.work"},
    ],
}


@pytest.fixture
async def url(cassandra_keyspace: TestKeyspace, tmp_path: Path) -> str:
    await cassandra_keyspace.empty_once(tmp_path)
    return cassandra_keyspace.url


async def test_long_histories_load_from_snapshots(url: str) -> None:
    settings = Settings(event_log_url=url, snapshot_every=10, retention_interval=0, python_allow=("tests",))
    async with Runtime(settings) as runtime:
        await runtime.register(parse_definition(COUNTER))
        started = await runtime.start_execution("counter", None)
        state = await runtime.wait(started.execution_id, timeout=60)
        assert (state.status, state.output) == ("succeeded", LOOPS)
        history = await runtime.history(started.execution_id)
        assert len(history) > 3 * LOOPS
        stored = await runtime.log.load_snapshot(started.execution_id)
        assert stored is not None and len(history) - 10 < stored.sequence <= len(history)  # at the crossing commit

        loaded = await snapshots.load(runtime.log, started.execution_id)
        assert loaded is not None
        assert loaded.from_snapshot == stored.sequence and loaded.folded == len(history) - stored.sequence
        assert loaded.state == fold(history)
        assert loaded.chainhash == history[-1].chainhash
        for at in (1, 9, 10, 11, 35, len(history)):
            assert await runtime.state(started.execution_id, at) == fold(history[:at])

        # a fresh process (empty cache) continues the chain from the snapshot's tail
        runtime.engine.forget(started.execution_id)
        assert await runtime.engine.load(started.execution_id) == state
        listed = await runtime.list_executions(ExecutionQuery(workflow="counter"))
        assert [s.execution_id for s in listed.items] == [started.execution_id]
