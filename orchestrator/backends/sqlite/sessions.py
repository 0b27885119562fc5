"""SQLite session store (``sqlite:///path.db``): the sessions table in the event log's file,
so every server process over that file accepts the same sessions.

Only the SHA-256 of a session's secret is stored. Expired rows are deleted when a session is
created (one indexed range delete), so the table holds the live sessions and few others.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from orchestrator.backends.sqlite import SQLiteSettings, _Database
from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import StoredSession

_DDL = (
    "CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, secret_hash BLOB NOT NULL,"
    " principal TEXT NOT NULL, tenant TEXT NOT NULL, created_at REAL NOT NULL,"
    " expires_at REAL NOT NULL, revoked_at REAL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at)",
)
_COLUMNS = "session_id, secret_hash, principal, tenant, created_at, expires_at, revoked_at"
_INSERT = f"INSERT INTO sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_SELECT = f"SELECT {_COLUMNS} FROM sessions WHERE session_id = ?"
_REVOKE = "UPDATE sessions SET revoked_at = coalesce(revoked_at, ?) WHERE session_id = ?"
_SWEEP = "DELETE FROM sessions WHERE expires_at < ?"


class SQLiteSessionStore(Lifecycle):
    """Sessions in the ``sessions`` table; every call runs on the store's own thread."""

    def __init__(self, settings: SQLiteSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self._db = _Database(settings, "sessions", _DDL)

    @classmethod
    def from_url(cls, url: str, clock: Callable[[], float] = time.time) -> SQLiteSessionStore:
        return cls(SQLiteSettings.from_url(url), clock)

    async def start(self) -> None:
        await self._db.open()

    async def stop(self) -> None:
        await self._db.close()

    async def put(self, session: StoredSession) -> None:
        await self._db.run(self._put, session, self._clock())

    async def get(self, session_id: str) -> StoredSession | None:
        return await self._db.run(self._get, session_id)

    async def revoke(self, session_id: str, at: float) -> StoredSession | None:
        return await self._db.run(self._revoke, session_id, at)

    def _put(self, session: StoredSession, now: float) -> None:
        connection = self._db.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(_SWEEP, (now,))
            connection.execute(
                _INSERT,
                (
                    session.session_id,
                    session.secret_hash,
                    session.principal,
                    session.tenant,
                    session.created_at,
                    session.expires_at,
                    session.revoked_at,
                ),
            )
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _get(self, session_id: str) -> StoredSession | None:
        row = self._db.connection.execute(_SELECT, (session_id,)).fetchone()
        if row is None:
            return None
        sid, secret_hash, principal, tenant, created, expires, revoked = row
        return StoredSession(sid, bytes(secret_hash), principal, tenant, created, expires, revoked)

    def _revoke(self, session_id: str, at: float) -> StoredSession | None:
        self._db.connection.execute(_REVOKE, (at, session_id))
        return self._get(session_id)
