"""The analytics store in the event log's SQLite file: cells by (tenant, workflow, hour), tracks.

Runs on the event log's thread and connection (``feed.Database``), between its commits. A save is
one transaction, so the cells and tracks of a flush land together or not at all. The tables are
created with the event log's other tables (``ANALYTICS_DDL``).
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.backends.sqlite.feed import Database

CellRow = tuple[str, str, int, str, int, str]  # tenant, workflow, version, step, bucket, body
BreachRow = tuple[str, str, float, str, str, str]  # tenant, workflow, at, execution, step, body

ANALYTICS_DDL = (
    "CREATE TABLE IF NOT EXISTS analytics_cells (tenant TEXT NOT NULL, workflow TEXT NOT NULL,"
    " bucket INTEGER NOT NULL, version INTEGER NOT NULL, step TEXT NOT NULL, body TEXT NOT NULL,"
    " PRIMARY KEY (tenant, workflow, bucket, version, step)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS analytics_cells_by_bucket ON analytics_cells (tenant, bucket)",
    "CREATE TABLE IF NOT EXISTS analytics_tracks (execution_id TEXT PRIMARY KEY, body TEXT NOT NULL)"
    " WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS analytics_breaches (execution_id TEXT NOT NULL, step TEXT NOT NULL,"
    " tenant TEXT NOT NULL, workflow TEXT NOT NULL, at REAL NOT NULL, body TEXT NOT NULL,"
    " PRIMARY KEY (execution_id, step)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS analytics_breaches_by_time ON analytics_breaches (tenant, at)",
)
_COLUMNS = "tenant, workflow, version, step, bucket, body"
_UPSERT_CELL = (
    f"INSERT INTO analytics_cells ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (tenant, workflow, bucket, version, step) DO UPDATE SET body = excluded.body"
)
_UPSERT_TRACK = (
    "INSERT INTO analytics_tracks (execution_id, body) VALUES (?, ?)"
    " ON CONFLICT (execution_id) DO UPDATE SET body = excluded.body"
)
_UPSERT_BREACH = (
    "INSERT INTO analytics_breaches (tenant, workflow, at, execution_id, step, body) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (execution_id, step) DO UPDATE SET body = excluded.body, at = excluded.at"
)
_BREACHES = (
    "SELECT tenant, workflow, at, execution_id, step, body FROM analytics_breaches"
    " WHERE tenant = ? AND at >= ? AND at < ? AND (? IS NULL OR workflow = ?)"
    " ORDER BY at DESC, execution_id, step LIMIT ?"
)
_ALL_CELLS = f"SELECT {_COLUMNS} FROM analytics_cells"
_ALL_TRACKS = "SELECT execution_id, body FROM analytics_tracks"
_CELLS_OF = f"SELECT {_COLUMNS} FROM analytics_cells WHERE tenant = ? AND workflow = ? AND bucket >= ? AND bucket < ?"
_CELLS_ALL = f"SELECT {_COLUMNS} FROM analytics_cells WHERE tenant = ? AND bucket >= ? AND bucket < ?"


class SQLiteAnalytics:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self) -> tuple[list[CellRow], list[tuple[str, str]]]:
        return await self._db.run(self._load)

    async def save(
        self, cells: Sequence[CellRow], tracks: Sequence[tuple[str, str]], breaches: Sequence[BreachRow]
    ) -> None:
        await self._db.run(self._save, cells, tracks, breaches)

    async def breaches(
        self, tenant: str, workflow: str | None, since: float, until: float, limit: int
    ) -> list[BreachRow]:
        return await self._db.run(self._breaches, tenant, workflow, since, until, limit)

    async def cells(self, tenant: str, workflow: str | None, since: int, until: int) -> list[CellRow]:
        return await self._db.run(self._cells, tenant, workflow, since, until)

    async def clear(self) -> None:
        await self._db.run(self._clear)

    def _load(self) -> tuple[list[CellRow], list[tuple[str, str]]]:
        connection = self._db.connection
        return connection.execute(_ALL_CELLS).fetchall(), connection.execute(_ALL_TRACKS).fetchall()

    def _save(
        self, cells: Sequence[CellRow], tracks: Sequence[tuple[str, str]], breaches: Sequence[BreachRow]
    ) -> None:
        connection = self._db.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(_UPSERT_CELL, cells)
            connection.executemany(_UPSERT_TRACK, tracks)
            connection.executemany(_UPSERT_BREACH, breaches)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _cells(self, tenant: str, workflow: str | None, since: int, until: int) -> list[CellRow]:
        if workflow is None:
            return self._db.connection.execute(_CELLS_ALL, (tenant, since, until)).fetchall()
        return self._db.connection.execute(_CELLS_OF, (tenant, workflow, since, until)).fetchall()

    def _breaches(
        self, tenant: str, workflow: str | None, since: float, until: float, limit: int
    ) -> list[BreachRow]:
        params = (tenant, since, until, workflow, workflow, limit)
        return self._db.connection.execute(_BREACHES, params).fetchall()

    def _clear(self) -> None:
        connection = self._db.connection
        connection.execute("BEGIN IMMEDIATE")
        for table in ("analytics_cells", "analytics_tracks", "analytics_breaches"):
            connection.execute(f"DELETE FROM {table}")
        connection.execute("COMMIT")
