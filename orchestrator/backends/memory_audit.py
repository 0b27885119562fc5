"""The in-memory audit chain (``memory://``): for tests and one-process runs without a file."""

from __future__ import annotations

import bisect

from orchestrator.ports import AuditConflict, AuditEntry


class MemoryAuditLog:
    """Entries by sequence; append-only."""

    def __init__(self) -> None:
        self._sequences: list[int] = []
        self._entries: dict[int, AuditEntry] = {}

    @classmethod
    def from_url(cls, url: str) -> MemoryAuditLog:
        return cls()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def append(self, entry: AuditEntry) -> None:
        if entry.sequence < 1:
            raise ValueError(f"audit sequences start at 1, not {entry.sequence}")
        if entry.sequence in self._entries:
            raise AuditConflict(entry.sequence)
        self._entries[entry.sequence] = AuditEntry(entry.sequence, bytes(entry.body))
        bisect.insort(self._sequences, entry.sequence)

    async def last(self) -> AuditEntry | None:
        return self._entries[self._sequences[-1]] if self._sequences else None

    async def read(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        start = bisect.bisect_right(self._sequences, after)
        return [self._entries[s] for s in self._sequences[start : start + max(limit, 0)]]
