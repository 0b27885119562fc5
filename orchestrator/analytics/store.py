"""The analytics store port: cells and tracks kept in the event log's backend.

Every API process reads the same cells, so the figures agree whichever process answers. The
projection is the only writer (one process runs projections). Rows are plain tuples and JSON
text, so an event log backend implements the port without importing this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from orchestrator.analytics.cells import CellRow

TrackRow = tuple[str, str]  # (execution id, JSON body)
# An SLA breach: tenant, workflow, when it ended (epoch seconds), execution id, step ("" for the
# execution), JSON body (version, seconds, limit). (execution id, step) is its key.
BreachRow = tuple[str, str, float, str, str, str]


class AnalyticsStore(Protocol):
    async def load(self) -> tuple[list[CellRow], list[TrackRow]]:
        """Every stored cell and track (when the projection starts)."""

    async def save(self, cells: Sequence[CellRow], tracks: Sequence[TrackRow], breaches: Sequence[BreachRow]) -> None:
        """Upsert cells, tracks and breaches; atomically where the backend can (SQLite, memory)."""

    async def cells(self, tenant: str, workflow: str | None, since: int, until: int) -> list[CellRow]:
        """The tenant's cells of one workflow (every workflow when None) with since <= bucket < until."""

    async def breaches(self, tenant: str, workflow: str | None, since: float, until: float, limit: int) -> list[BreachRow]:
        """The tenant's breaches that ended in [since, until), newest first, at most ``limit``."""

    async def clear(self) -> None:
        """Forget everything (a rebuild follows)."""


@runtime_checkable
class AnalyticsSource(Protocol):
    """An event log that keeps the analytics store beside its events."""

    def analytics(self) -> AnalyticsStore: ...
