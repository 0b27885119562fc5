"""The wait index in memory (``memory://``): for one process; rebuilt from the log at start."""

from __future__ import annotations

from orchestrator.ports import WaitKey


class MemoryWaitIndex:
    def __init__(self) -> None:
        self._waiting: dict[WaitKey, set[str]] = {}

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
            if waiting is not None:
                waiting.discard(execution_id)
                if not waiting:
                    del self._waiting[key]
        for key in added:
            self._waiting.setdefault(key, set()).add(execution_id)

    async def waiting(self, key: WaitKey) -> list[str]:
        return sorted(self._waiting.get(key, ()))
