"""SQLite node directory: the heartbeats of every process on one database file, one row each."""

from __future__ import annotations

import builtins
import json

from orchestrator.backends.sqlite import SQLiteSettings, _Database
from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import NodeRecord

_DDL = (
    "CREATE TABLE IF NOT EXISTS nodes (node_id TEXT PRIMARY KEY, heartbeat_at REAL NOT NULL, body TEXT NOT NULL)",
)
KEEP_SECONDS = 86_400.0  # records whose last heartbeat is older than this are deleted on publish


class SQLiteNodeDirectory(Lifecycle):
    """``NodeDirectory`` over the event log's file: processes sharing the file see each other."""

    def __init__(self, settings: SQLiteSettings) -> None:
        self.settings = settings
        self._db = _Database(settings, "nodes", _DDL)

    @classmethod
    def from_url(cls, url: str) -> SQLiteNodeDirectory:
        return cls(SQLiteSettings.from_url(url))

    async def start(self) -> None:
        await self._db.open()

    async def stop(self) -> None:
        await self._db.close()

    async def publish(self, record: NodeRecord) -> None:
        await self._db.run(self._publish, record)

    async def nodes(self) -> builtins.list[NodeRecord]:
        return await self._db.run(self._nodes)

    def _publish(self, record: NodeRecord) -> None:
        body = json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"))
        connection = self._db.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(
                "INSERT INTO nodes VALUES (?, ?, ?) ON CONFLICT (node_id) DO UPDATE"
                " SET heartbeat_at = excluded.heartbeat_at, body = excluded.body",
                (record.node_id, record.heartbeat_at, body),
            )
            connection.execute("DELETE FROM nodes WHERE heartbeat_at < ?", (record.heartbeat_at - KEEP_SECONDS,))
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _nodes(self) -> builtins.list[NodeRecord]:
        rows = self._db.connection.execute("SELECT body FROM nodes ORDER BY node_id").fetchall()
        return [NodeRecord.from_dict(json.loads(body)) for (body,) in rows]
