"""The Cassandra schedule states pass the ScheduleStates contract against a real Cassandra."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.backends.cassandra.schedules import CassandraSchedules
from orchestrator.backends.urls import SCHEDULE_STATES, open_backend
from orchestrator.ports import ScheduleStates
from tests.contracts.schedule_states import ScheduleStatesContract
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration


class TestCassandraSchedules(ScheduleStatesContract):
    @pytest.fixture(autouse=True)
    def _keyspace(self, cassandra_keyspace: TestKeyspace) -> None:
        self.keyspace = cassandra_keyspace

    async def make_states(self, tmp_path: Path) -> tuple[ScheduleStates, ScheduleStates]:
        await self.keyspace.empty_once(tmp_path)
        handles = [open_backend(SCHEDULE_STATES, self.keyspace.url, "schedule states") for _ in range(2)]
        for handle in handles:
            assert isinstance(handle, CassandraSchedules)
            await handle.start()
        return handles[0], handles[1]
