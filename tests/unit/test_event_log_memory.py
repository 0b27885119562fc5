"""The in-memory event log passes the EventLog contract."""

from __future__ import annotations

from pathlib import Path

from orchestrator.backends.memory import MemoryEventLog
from orchestrator.ports import EventLog
from tests.contracts.event_log import EventLogContract


class TestMemoryEventLog(EventLogContract):
    async def make_log(self, tmp_path: Path) -> EventLog:
        log = MemoryEventLog.from_url("memory://")
        await log.start()
        return log
