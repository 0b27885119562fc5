"""The in-memory event log's feed and checkpoints pass the feed contract."""

from __future__ import annotations

from pathlib import Path

from orchestrator.backends.memory import MemoryEventLog
from orchestrator.ports import EventLog
from tests.contracts.feed import FeedContract


class TestMemoryFeed(FeedContract):
    async def make_log(self, tmp_path: Path) -> EventLog:
        log = MemoryEventLog.from_url("memory://")
        await log.start()
        return log
