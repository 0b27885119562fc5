"""The in-memory timers pass the Timers contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator.backends.memory_timers import MemoryTimers
from orchestrator.ports import Timers
from tests.contracts.timers import TimersContract


class TestMemoryTimers(TimersContract):
    async def make_timers(self, tmp_path: Path, clock: Callable[[], float]) -> Timers:
        return MemoryTimers.from_url("memory://", clock)
