"""Sealed secrets in the event log's SQLite file (table ``secrets``, component ``secrets``).

The backend stores ciphertext and metadata only; ``orchestrator.secrets.sealed`` seals. Its
own connection and thread, like the event log's and the registry's.
"""

from __future__ import annotations

import builtins

from orchestrator.backends.sqlite import SQLiteSettings, _Database
from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import SecretInfo

_DDL = (
    "CREATE TABLE IF NOT EXISTS secrets (tenant TEXT NOT NULL, name TEXT NOT NULL, sealed BLOB NOT NULL,"
    " key_id TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    " PRIMARY KEY (tenant, name)) WITHOUT ROWID",
)
_PUT = (
    "INSERT INTO secrets (tenant, name, sealed, key_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (tenant, name) DO UPDATE SET sealed = excluded.sealed, key_id = excluded.key_id,"
    " updated_at = excluded.updated_at"
)
_INFO = "SELECT tenant, name, created_at, updated_at, key_id FROM secrets"


class SQLiteSecretRecords(Lifecycle):
    """``SecretRecords`` in one table of the SQLite file."""

    def __init__(self, settings: SQLiteSettings) -> None:
        self._db = _Database(settings, "secrets", _DDL)

    @classmethod
    def from_url(cls, url: str) -> SQLiteSecretRecords:
        return cls(SQLiteSettings.from_url(url))

    async def start(self) -> None:
        await self._db.open()

    async def stop(self) -> None:
        await self._db.close()

    async def put_sealed(self, tenant: str, name: str, sealed: bytes, key_id: str, now: str) -> SecretInfo:
        return await self._db.run(self._put, tenant, name, sealed, key_id, now)

    async def get_sealed(self, tenant: str, name: str) -> bytes | None:
        return await self._db.run(self._get, tenant, name)

    async def delete(self, tenant: str, name: str) -> bool:
        return await self._db.run(self._delete, tenant, name)

    async def list(self, tenant: str) -> builtins.list[SecretInfo]:
        return await self._db.run(self._list, tenant)

    async def tenants(self) -> builtins.list[str]:
        return await self._db.run(self._tenants)

    def _tenants(self) -> builtins.list[str]:
        rows = self._db.connection.execute("SELECT DISTINCT tenant FROM secrets ORDER BY tenant")
        return [str(row[0]) for row in rows]

    def _put(self, tenant: str, name: str, sealed: bytes, key_id: str, now: str) -> SecretInfo:
        connection = self._db.connection
        connection.execute(_PUT, (tenant, name, sealed, key_id, now, now))
        row = connection.execute(f"{_INFO} WHERE tenant = ? AND name = ?", (tenant, name)).fetchone()
        return SecretInfo(*row)

    def _get(self, tenant: str, name: str) -> bytes | None:
        sql = "SELECT sealed FROM secrets WHERE tenant = ? AND name = ?"
        row = self._db.connection.execute(sql, (tenant, name)).fetchone()
        return None if row is None else bytes(row[0])

    def _delete(self, tenant: str, name: str) -> bool:
        cursor = self._db.connection.execute("DELETE FROM secrets WHERE tenant = ? AND name = ?", (tenant, name))
        return cursor.rowcount > 0

    def _list(self, tenant: str) -> builtins.list[SecretInfo]:
        rows = self._db.connection.execute(f"{_INFO} WHERE tenant = ? ORDER BY name", (tenant,))
        return [SecretInfo(*row) for row in rows]
