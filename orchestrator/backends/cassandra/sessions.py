"""Cassandra session store (``cassandra://host/keyspace``): the ``sessions`` table (migration 15),
shared by every server process over the keyspace.

Each row is written with a TTL that ends when the session expires, so expired sessions vanish
without a sweep; a revocation rewrites ``revoked_at`` with the TTL that remains. Reads and writes
use the URL's consistency (LOCAL_QUORUM by default), so a revocation acknowledged by one process
is seen by the next read in any other.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from orchestrator.backends.cassandra.schema import CassandraBackend, CassandraSettings
from orchestrator.ports import StoredSession

_COLUMNS = "session_id, secret_hash, principal, tenant, created_at, expires_at, revoked_at"
_CQL = {
    "put": f"INSERT INTO {{ks}}.sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?",
    "get": f"SELECT {_COLUMNS} FROM {{ks}}.sessions WHERE session_id = ?",
    "revoke": "UPDATE {ks}.sessions USING TTL ? SET revoked_at = ? WHERE session_id = ?",
}


def ttl(expires_at: float, now: float) -> int:
    """Seconds a row lives: until ``expires_at``, at least 1 (Cassandra refuses 0 as 'forever')."""
    return max(1, math.ceil(expires_at - now))


class CassandraSessionStore(CassandraBackend):
    """Sessions by id, each row expiring with its session."""

    STATEMENTS = _CQL
    CONDITIONAL = {}  # no lightweight transactions

    def __init__(self, settings: CassandraSettings, clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings, "sessions")
        self._clock = clock

    @classmethod
    def from_url(cls, url: str, clock: Callable[[], float] = time.time) -> CassandraSessionStore:
        return cls(CassandraSettings.from_url(url), clock)

    async def put(self, session: StoredSession) -> None:
        await self._db.rows(
            self._cql["put"],
            session.session_id,
            session.secret_hash,
            session.principal,
            session.tenant,
            session.created_at,
            session.expires_at,
            session.revoked_at,
            ttl(session.expires_at, self._clock()),
        )

    async def get(self, session_id: str) -> StoredSession | None:
        rows = await self._db.rows(self._cql["get"], session_id)
        if not rows:
            return None
        sid, secret_hash, principal, tenant, created, expires, revoked = rows[0]
        if secret_hash is None or expires is None:  # only a revocation outlived the row: gone
            return None
        return StoredSession(sid, bytes(secret_hash), principal, tenant, created, expires, revoked)

    async def revoke(self, session_id: str, at: float) -> StoredSession | None:
        session = await self.get(session_id)
        if session is None or session.revoked_at is not None:
            return session
        remaining = ttl(session.expires_at, self._clock())
        await self._db.rows(self._cql["revoke"], remaining, at, session_id)
        return StoredSession(
            session.session_id,
            session.secret_hash,
            session.principal,
            session.tenant,
            session.created_at,
            session.expires_at,
            at,
        )
