"""What encryption at rest needs of the Cassandra event log: wrapped data keys, rewriting rows.

``data_keys`` holds each tenant's data key per master key, one partition per tenant; a key is
created with ``INSERT ... IF NOT EXISTS`` and read back at SERIAL consistency, so processes that
create one at once all end up with the one that won. ``data_key_ids`` lists which tenants have a
key under each master key (one partition), for the listing of all keys and for retiring one.
Rewriting a stored event or snapshot (re-encryption) is ``UPDATE ... IF body = <what was read>``:
it never undoes another writer, and never resurrects a row that retention deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from cassandra.query import PreparedStatement

from orchestrator.backends.cassandra.schema import Database
from orchestrator.ports import DataKeyRecord, StoredTransform

DATA_KEYS_CQL = {
    "data_keys_of": "SELECT tenant, key_id, wrapped, created_at FROM {ks}.data_keys WHERE tenant = ?",
    "data_key_ids": "SELECT key_id, tenant FROM {ks}.data_key_ids WHERE scope = 'all'",
    "data_key_listed": "INSERT INTO {ks}.data_key_ids (scope, key_id, tenant) VALUES ('all', ?, ?)",
    "drop_data_key": "DELETE FROM {ks}.data_keys WHERE tenant = ? AND key_id = ?",
    "drop_data_key_id": "DELETE FROM {ks}.data_key_ids WHERE scope = 'all' AND key_id = ? AND tenant = ?",
    "stored_events": "SELECT sequence, body FROM {ks}.events WHERE execution_id = ?",
    "stored_snapshots": "SELECT sequence, body FROM {ks}.snapshots WHERE execution_id = ?",
}
DATA_KEYS_CONDITIONAL = {
    "insert_data_key": "INSERT INTO {ks}.data_keys (tenant, key_id, wrapped, created_at)"
    " VALUES (?, ?, ?, ?) IF NOT EXISTS",
    "replace_event": "UPDATE {ks}.events SET body = ? WHERE execution_id = ? AND sequence = ? IF body = ?",
    "replace_snapshot": "UPDATE {ks}.snapshots SET body = ? WHERE execution_id = ? AND sequence = ? IF body = ?",
}


class Backend(Protocol):
    @property
    def database(self) -> Database: ...

    @property
    def statements(self) -> Mapping[str, PreparedStatement]: ...


class CassandraDataKeys:
    """The ``DataKeyStore`` and ``RewritesStored`` halves of the event log."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def insert(self, record: DataKeyRecord) -> DataKeyRecord:
        db, cql = self._backend.database, self._backend.statements
        await db.rows(cql["data_key_listed"], record.key_id, record.tenant)  # first: retiring sees it
        values = (record.tenant, record.key_id, record.wrapped, record.created_at)
        await db.run_repeatable(cql["insert_data_key"].bind(values), f"data key of {record.tenant}")
        statement = cql["data_keys_of"].bind((record.tenant,))
        statement.consistency_level = db.serial  # the winner of the conditional insert
        rows = (await db.run(statement)).current_rows
        return next(_record(row) for row in rows if row[1] == record.key_id)

    async def of(self, tenant: str | None) -> list[DataKeyRecord]:
        db, cql = self._backend.database, self._backend.statements
        tenants = [tenant] if tenant is not None else sorted({t for _, t in await db.rows(cql["data_key_ids"])})
        found: list[DataKeyRecord] = []
        for one in tenants:
            found += sorted((_record(r) for r in await db.rows(cql["data_keys_of"], one)), key=lambda r: r.created_at)
        return found

    async def delete(self, key_id: str) -> int:
        db, cql = self._backend.database, self._backend.statements
        tenants = [t for k, t in await db.rows(cql["data_key_ids"]) if k == key_id]
        for tenant in tenants:
            await db.rows(cql["drop_data_key"], tenant, key_id)
            await db.rows(cql["drop_data_key_id"], key_id, tenant)
        return len(tenants)

    async def rewrite(self, execution_id: str, transform: StoredTransform) -> int:
        db, cql = self._backend.database, self._backend.statements
        done = 0
        for kind in ("event", "snapshot"):
            rows: list[tuple[int, bytes]] = []
            async for page in db.pages(cql[f"stored_{kind}s"].bind((execution_id,))):
                rows += page
            for sequence, body in rows:
                new = await transform(kind, sequence, body)
                if new is None:
                    continue
                statement = cql[f"replace_{kind}"].bind((new, execution_id, sequence, body))
                result = await db.run(statement, idempotent=False)
                done += bool(result.current_rows[0][0])
        return done


def _record(row: tuple[str, str, bytes, str]) -> DataKeyRecord:
    return DataKeyRecord(row[0], row[1], bytes(row[2]), row[3])
