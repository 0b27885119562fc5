"""The wait index in memory (``memory://``): for one process; rebuilt from the log at start."""

from __future__ import annotations

from orchestrator.instrumentation import NO_INSTRUMENTS, Instruments
from orchestrator.ports import WaitKey


class MemoryWaitIndex:
    instruments: Instruments = NO_INSTRUMENTS  # set by the runtime: (execution, key) pairs parked

    def __init__(self) -> None:
        self._waiting: dict[WaitKey, set[str]] = {}
        self._parked = 0

    @classmethod
    def from_url(cls, url: str) -> MemoryWaitIndex:
        return cls()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def update(self, execution_id: str, removed: set[WaitKey], added: set[WaitKey]) -> None:
        for key in removed:
            waiting = self._waiting.get(key)
            if waiting is not None and execution_id in waiting:
                waiting.discard(execution_id)
                self._parked -= 1
                if not waiting:
                    del self._waiting[key]
        for key in added:
            waiting = self._waiting.setdefault(key, set())
            if execution_id not in waiting:
                waiting.add(execution_id)
                self._parked += 1
        self.instruments.waits_parked("MemoryWaitIndex", self._parked)

    async def waiting(self, key: WaitKey) -> list[str]:
        return sorted(self._waiting.get(key, ()))

    async def entries(self) -> list[tuple[WaitKey, str]]:
        """Every (key, execution id) of the index, for the doctor."""
        return [(key, execution_id) for key, waiting in self._waiting.items() for execution_id in sorted(waiting)]
