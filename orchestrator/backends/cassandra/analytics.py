"""The analytics store in the event log's keyspace: cells by (tenant, workflow), tracks.

Cells live in partitions of one tenant and workflow, clustered by hour bucket, so a query of a
workflow over a window is one partition slice; ``analytics_workflows`` lists a tenant's workflows
for a query over all of them. Cassandra has no transaction across partitions, so a save writes
the cells first and the tracks after them: a crash between the two leaves tracks behind, which
the replay from the checkpoint brings forward, while each cell's ``through`` position (in its
body) keeps the replay from counting it twice. Migration 11 creates the tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence

from orchestrator.backends.cassandra.feed import Backend

CellRow = tuple[str, str, int, str, int, str]  # tenant, workflow, version, step, bucket, body
BreachRow = tuple[str, str, float, str, str, str]  # tenant, workflow, at, execution, step, body
DAY = 86400
MAX_DAYS = 400  # days a breach listing reads at most (newest first)
CONCURRENT_WRITES = 64

ANALYTICS_CQL = {
    "analytics_cell": "INSERT INTO {ks}.analytics_cells (tenant, workflow, bucket, version, step, body)"
    " VALUES (?, ?, ?, ?, ?, ?)",
    "analytics_workflow": "INSERT INTO {ks}.analytics_workflows (tenant, workflow) VALUES (?, ?)",
    "analytics_track": "INSERT INTO {ks}.analytics_tracks (execution_id, body) VALUES (?, ?)",
    "analytics_workflows": "SELECT workflow FROM {ks}.analytics_workflows WHERE tenant = ?",
    "analytics_slice": "SELECT tenant, workflow, version, step, bucket, body FROM {ks}.analytics_cells"
    " WHERE tenant = ? AND workflow = ? AND bucket >= ? AND bucket < ?",
    "analytics_all_cells": "SELECT tenant, workflow, version, step, bucket, body FROM {ks}.analytics_cells",
    "analytics_all_tracks": "SELECT execution_id, body FROM {ks}.analytics_tracks",
    "analytics_breach": "INSERT INTO {ks}.analytics_breaches (tenant, day, at, execution_id, step, workflow,"
    " body) VALUES (?, ?, ?, ?, ?, ?, ?)",
    "analytics_breaches": "SELECT tenant, workflow, at, execution_id, step, body FROM {ks}.analytics_breaches"
    " WHERE tenant = ? AND day = ? AND at >= ? AND at < ?",
}
_TABLES = ("analytics_cells", "analytics_workflows", "analytics_tracks", "analytics_breaches")


class CassandraAnalytics:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._known: set[tuple[str, str]] = set()  # (tenant, workflow) rows written by this process

    async def load(self) -> tuple[list[CellRow], list[tuple[str, str]]]:
        cells = [
            (str(t), str(w), int(str(v)), str(s), int(str(b)), str(body))
            for t, w, v, s, b, body in await self._scan("analytics_all_cells")
        ]
        tracks = [(str(e), str(body)) for e, body in await self._scan("analytics_all_tracks")]
        self._known = {(t, w) for t, w, *_ in cells}
        return cells, tracks

    async def save(
        self, cells: Sequence[CellRow], tracks: Sequence[tuple[str, str]], breaches: Sequence[BreachRow]
    ) -> None:
        statements = self._backend.statements
        db = self._backend.database
        new = {(t, w) for t, w, *_ in cells} - self._known
        await _bounded(db.rows(statements["analytics_workflow"], t, w) for t, w in new)
        self._known |= new
        await _bounded(
            db.rows(statements["analytics_cell"], t, w, b, v, s, body) for t, w, v, s, b, body in cells
        )
        await _bounded(
            db.rows(statements["analytics_breach"], t, int(at // DAY), at, e, step, w, body)
            for t, w, at, e, step, body in breaches
        )
        await _bounded(db.rows(statements["analytics_track"], e, body) for e, body in tracks)

    async def breaches(
        self, tenant: str, workflow: str | None, since: float, until: float, limit: int
    ) -> list[BreachRow]:
        """Day partitions newest first until ``limit`` are found (at most MAX_DAYS of them)."""
        found: list[BreachRow] = []
        last = int((until - 1e-6) // DAY)
        first = max(int(since // DAY), last - MAX_DAYS + 1)
        for day in range(last, first - 1, -1):
            statement = self._backend.statements["analytics_breaches"].bind((tenant, day, since, until))
            async for page in self._backend.database.pages(statement):
                found += [
                    (str(t), str(w), float(at), str(e), str(s), str(body))
                    for t, w, at, e, s, body in page
                    if workflow is None or w == workflow
                ]
            if len(found) >= limit:
                break
        return sorted(found, key=lambda b: (-b[2], b[3], b[4]))[:limit]

    async def cells(self, tenant: str, workflow: str | None, since: int, until: int) -> list[CellRow]:
        statements = self._backend.statements
        db = self._backend.database
        if workflow is None:
            names = [row[0] for row in await db.rows(statements["analytics_workflows"], tenant)]
        else:
            names = [workflow]
        slices = await asyncio.gather(
            *(self._slice(tenant, name, since, until) for name in names)
        )
        return [row for part in slices for row in part]

    async def clear(self) -> None:
        for table in _TABLES:
            await self._backend.database.cql(f"TRUNCATE {self._backend.settings.keyspace}.{table}", ())
        self._known = set()

    async def _slice(self, tenant: str, workflow: str, since: int, until: int) -> list[CellRow]:
        statement = self._backend.statements["analytics_slice"].bind((tenant, workflow, since, until))
        rows: list[CellRow] = []
        async for page in self._backend.database.pages(statement):
            rows += [(t, w, int(v), s, int(b), body) for t, w, v, s, b, body in page]
        return rows

    async def _scan(self, name: str) -> list[tuple[object, ...]]:
        statement = self._backend.statements[name].bind(())
        rows: list[tuple[object, ...]] = []
        async for page in self._backend.database.pages(statement):
            rows += [tuple(row) for row in page]
        return rows


async def _bounded(calls: Iterable[Awaitable[object]]) -> None:
    """Await the calls, at most CONCURRENT_WRITES at a time; the first failure propagates."""
    gate = asyncio.Semaphore(CONCURRENT_WRITES)

    async def one(call: Awaitable[object]) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(call) for call in calls))
