"""Sealed secrets in the event log's keyspace (table ``secrets``, migration 13), one partition
per tenant. Ciphertext and metadata only; ``orchestrator.secrets.sealed`` seals."""

from __future__ import annotations

import builtins
from typing import ClassVar

from orchestrator.backends.cassandra.schema import CassandraBackend, CassandraSettings
from orchestrator.ports import SecretInfo

_CQL = {
    # created_at is written once (an UPDATE of the other columns keeps it): see put_sealed
    "put": "UPDATE {ks}.secrets SET sealed = ?, key_id = ?, updated_at = ? WHERE tenant = ? AND name = ?",
    "created": "UPDATE {ks}.secrets SET created_at = ? WHERE tenant = ? AND name = ?",
    "info": "SELECT tenant, name, created_at, updated_at, key_id FROM {ks}.secrets WHERE tenant = ? AND name = ?",
    "get": "SELECT sealed FROM {ks}.secrets WHERE tenant = ? AND name = ?",
    "delete": "DELETE FROM {ks}.secrets WHERE tenant = ? AND name = ?",
    "list": "SELECT tenant, name, created_at, updated_at, key_id FROM {ks}.secrets WHERE tenant = ?",
    "tenants": "SELECT DISTINCT tenant FROM {ks}.secrets",
}


class CassandraSecretRecords(CassandraBackend):
    """``SecretRecords`` in one Cassandra table."""

    STATEMENTS = _CQL
    CONDITIONAL: ClassVar[dict[str, str]] = {}

    def __init__(self, settings: CassandraSettings) -> None:
        super().__init__(settings, "secrets")

    @classmethod
    def from_url(cls, url: str) -> CassandraSecretRecords:
        return cls(CassandraSettings.from_url(url))

    async def put_sealed(self, tenant: str, name: str, sealed: bytes, key_id: str, now: str) -> SecretInfo:
        rows = await self._db.rows(self._cql["info"], tenant, name)
        await self._db.rows(self._cql["put"], sealed, key_id, now, tenant, name)
        if not rows or rows[0][2] is None:
            await self._db.rows(self._cql["created"], now, tenant, name)
        return _info((await self._db.rows(self._cql["info"], tenant, name))[0])

    async def get_sealed(self, tenant: str, name: str) -> bytes | None:
        rows = await self._db.rows(self._cql["get"], tenant, name)
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    async def delete(self, tenant: str, name: str) -> bool:
        existed = bool(await self._db.rows(self._cql["get"], tenant, name))
        await self._db.rows(self._cql["delete"], tenant, name)
        return existed

    async def list(self, tenant: str) -> builtins.list[SecretInfo]:
        found: builtins.list[SecretInfo] = []
        async for rows in self._db.pages(self._cql["list"].bind((tenant,))):
            found += [_info(row) for row in rows]
        return found

    async def tenants(self) -> builtins.list[str]:
        found: set[str] = set()
        async for rows in self._db.pages(self._cql["tenants"].bind(())):
            found.update(str(row[0]) for row in rows)
        return sorted(found)


def _info(row: tuple[object, ...]) -> SecretInfo:
    tenant, name, created, updated, key_id = row
    return SecretInfo(str(tenant), str(name), str(created or updated), str(updated), str(key_id or ""))
