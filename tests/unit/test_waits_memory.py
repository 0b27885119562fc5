"""The in-memory wait index passes the WaitIndex contract."""

from __future__ import annotations

from pathlib import Path

from orchestrator.backends.memory_waits import MemoryWaitIndex
from orchestrator.ports import WaitIndex
from tests.contracts.waits import WaitIndexContract


class TestMemoryWaitIndex(WaitIndexContract):
    async def make_waits(self, tmp_path: Path) -> WaitIndex:
        waits = MemoryWaitIndex.from_url("memory://")
        await waits.start()
        return waits
