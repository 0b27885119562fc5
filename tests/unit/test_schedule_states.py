"""The memory and SQLite schedule states pass the ScheduleStates contract; SQLite shares the file."""

from __future__ import annotations

from pathlib import Path

from orchestrator.backends.memory_schedules import MemorySchedules
from orchestrator.backends.sqlite import SQLiteEventLog
from orchestrator.backends.sqlite.schedules import SQLiteSchedules
from orchestrator.backends.urls import SCHEDULE_STATES, open_backend
from orchestrator.ports import ScheduleStates
from tests.contracts.factories import started
from tests.contracts.schedule_states import ScheduleStatesContract


class TestMemorySchedules(ScheduleStatesContract):
    async def make_states(self, tmp_path: Path) -> tuple[ScheduleStates, ScheduleStates]:
        states = MemorySchedules()
        await states.start()
        return states, states  # one process: both handles are the one store


class TestSQLiteSchedules(ScheduleStatesContract):
    async def make_states(self, tmp_path: Path) -> tuple[ScheduleStates, ScheduleStates]:
        url = f"sqlite:///{tmp_path}/orchestrator.db"
        handles = [open_backend(SCHEDULE_STATES, url, "schedule states") for _ in range(2)]
        for handle in handles:
            assert isinstance(handle, SQLiteSchedules)
            await handle.start()
        return handles[0], handles[1]

    async def test_state_survives_reopen_beside_the_event_log(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path}/orchestrator.db"
        log = SQLiteEventLog.from_url(url)
        await log.start()
        states = SQLiteSchedules.from_url(url)
        await states.start()
        try:
            await log.append("e1", 0, [started("e1", "orders")])
            assert await states.save("k", 0, {"cursor": 10.0})
        finally:
            await states.stop()
        reopened = SQLiteSchedules.from_url(url)
        await reopened.start()
        try:
            record = await reopened.load("k")
            assert (record.version, record.body) == (1, {"cursor": 10.0})
            assert len(await log.read("e1")) == 1
        finally:
            await reopened.stop()
            await log.stop()
