"""The SQLite audit chain: table ``audit`` in the event log's file (``sqlite:///path.db``).

One row per record, ``sequence`` its primary key, ``body`` the record's canonical JSON as text
(readable with the ``sqlite3`` shell; ``orchestrator verify`` notices any edit). The append is a
plain INSERT: a sequence another process (sharing the file) took first violates the key and is
AuditConflict. Nothing here updates or deletes a row.
"""

from __future__ import annotations

import sqlite3

from orchestrator.backends.sqlite import SQLiteSettings, _Database
from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import AuditConflict, AuditEntry

_DDL = ("CREATE TABLE IF NOT EXISTS audit (sequence INTEGER PRIMARY KEY, body TEXT NOT NULL)",)
_INSERT = "INSERT INTO audit (sequence, body) VALUES (?, ?)"
_LAST = "SELECT sequence, body FROM audit ORDER BY sequence DESC LIMIT 1"
_READ = "SELECT sequence, body FROM audit WHERE sequence > ? ORDER BY sequence LIMIT ?"


class SQLiteAuditLog(Lifecycle):
    """Audit records on their own connection and thread, in the event log's file."""

    def __init__(self, settings: SQLiteSettings) -> None:
        self.settings = settings
        self._db = _Database(settings, "audit_log", _DDL)

    @classmethod
    def from_url(cls, url: str) -> SQLiteAuditLog:
        return cls(SQLiteSettings.from_url(url))

    async def start(self) -> None:
        await self._db.open()

    async def stop(self) -> None:
        await self._db.close()

    async def append(self, entry: AuditEntry) -> None:
        if entry.sequence < 1:
            raise ValueError(f"audit sequences start at 1, not {entry.sequence}")
        await self._db.run(self._insert, entry)

    async def last(self) -> AuditEntry | None:
        return await self._db.run(self._last)

    async def read(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        return await self._db.run(self._read, after, max(limit, 0))

    def _insert(self, entry: AuditEntry) -> None:
        try:  # autocommit: one statement, one transaction
            self._db.connection.execute(_INSERT, (entry.sequence, entry.body.decode()))
        except sqlite3.IntegrityError:
            raise AuditConflict(entry.sequence) from None

    def _last(self) -> AuditEntry | None:
        row = self._db.connection.execute(_LAST).fetchone()
        return None if row is None else AuditEntry(row[0], _bytes(row[1]))

    def _read(self, after: int, limit: int) -> list[AuditEntry]:
        rows = self._db.connection.execute(_READ, (after, limit)).fetchall()
        return [AuditEntry(sequence, _bytes(body)) for sequence, body in rows]


def _bytes(body: str | bytes) -> bytes:
    """Text as stored; bytes if someone wrote a blob into the row."""
    return body if isinstance(body, bytes) else body.encode()
