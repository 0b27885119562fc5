"""The memory and SQLite analytics stores pass the analytics contract."""

from __future__ import annotations

from pathlib import Path

from orchestrator.backends.memory import MemoryEventLog
from orchestrator.backends.sqlite import SQLiteEventLog
from orchestrator.ports import EventLog
from tests.contracts.analytics import AnalyticsContract


class TestMemoryAnalytics(AnalyticsContract):
    async def make_log(self, tmp_path: Path) -> EventLog:
        log = MemoryEventLog.from_url("memory://")
        await log.start()
        return log


class TestSQLiteAnalytics(AnalyticsContract):
    async def make_log(self, tmp_path: Path) -> EventLog:
        log = SQLiteEventLog.from_url(f"sqlite:///{tmp_path}/orchestrator.db")
        await log.start()
        return log
