"""The doctor on Cassandra: a timer and a wait planted for a finished execution in the shared
tables are found by a full scan, released by ``fix``; the running execution keeps its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.api.doctor import run_doctor
from orchestrator.backends.cassandra.projections import CassandraTimers, CassandraWaitIndex
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.e2e.test_doctor import plant
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration


@pytest.fixture
async def url(cassandra_keyspace: TestKeyspace, tmp_path: Path) -> str:
    await cassandra_keyspace.empty_once(tmp_path)
    return cassandra_keyspace.url


async def test_planted_leaks_in_cassandra_are_found_and_fixed(url: str) -> None:
    settings = Settings(auth=False, event_log_url=url, retention_interval=0, doctor_interval=0)
    async with Runtime(settings) as runtime:
        assert isinstance(runtime.timers, CassandraTimers) and isinstance(runtime.waits, CassandraWaitIndex)
        finished, running = await plant(runtime)
        report = await run_doctor(runtime)
        found = {(leak.kind, leak.execution_id, leak.status) for leak in report.leaks}
        assert found == {
            ("timer", finished, "succeeded"),
            ("wait", finished, "succeeded"),
            ("timer", "no-such-execution", "missing"),
        }
        assert (await run_doctor(runtime, fix=True)).fixed
        assert (await run_doctor(runtime)).leaks == []
        assert running in {e for e, _, _ in await runtime.timers.armed()}
        assert await runtime.waits.waiting(("go", None)) == [running]
