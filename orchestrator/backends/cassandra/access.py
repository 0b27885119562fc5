"""API keys and custom roles in the event log's keyspace (migration 14 of ``schema.py``).

Keys are rows by id with the record as JSON and the last-used time in a column of its own;
``api_key_ids`` lists the ids (one small partition: keys are few). A key is added with
``IF NOT EXISTS``; a retried add that finds its own row (same digest) counts as done.
"""

from __future__ import annotations

import builtins
import json

from orchestrator.access_ports import ApiKeyRecord, KeyExists
from orchestrator.backends.cassandra.schema import (
    RETRY_ATTEMPTS,
    CassandraBackend,
    CassandraSettings,
    ambiguous,
    backoff,
    describe,
)
from orchestrator.ports import BackendUnavailable

_CQL = {
    "get": "SELECT body, last_used_at FROM {ks}.api_keys WHERE key_id = ?",
    "ids": "SELECT key_id FROM {ks}.api_key_ids WHERE scope = 'all'",
    "add_id": "INSERT INTO {ks}.api_key_ids (scope, key_id) VALUES ('all', ?)",
    "save": "UPDATE {ks}.api_keys SET tenant = ?, body = ? WHERE key_id = ?",
    "touch": "UPDATE {ks}.api_keys SET last_used_at = ? WHERE key_id = ?",
    "put_role": "INSERT INTO {ks}.custom_roles (tenant, name, grants) VALUES (?, ?, ?)",
    "role": "SELECT name FROM {ks}.custom_roles WHERE tenant = ? AND name = ?",
    "delete_role": "DELETE FROM {ks}.custom_roles WHERE tenant = ? AND name = ?",
    "roles": "SELECT name, grants FROM {ks}.custom_roles WHERE tenant = ?",
}
_ADD = {
    "add": "INSERT INTO {ks}.api_keys (key_id, tenant, body, last_used_at) VALUES (?, ?, ?, ?) IF NOT EXISTS",
}


def _body(key: ApiKeyRecord) -> str:
    data = key.to_dict()
    del data["last_used_at"]
    return json.dumps(data, sort_keys=True)


class CassandraAccessStore(CassandraBackend):
    STATEMENTS = _CQL
    CONDITIONAL = _ADD

    def __init__(self, settings: CassandraSettings) -> None:
        super().__init__(settings, "access")

    @classmethod
    def from_url(cls, url: str) -> CassandraAccessStore:
        return cls(CassandraSettings.from_url(url))

    async def add_key(self, key: ApiKeyRecord) -> None:
        await self._db.rows(self._cql["add_id"], key.key_id)  # first: a listing sees it
        values = (key.key_id, key.tenant, _body(key), key.last_used_at)
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                result = await self._db.run(self._cql["add"].bind(values), idempotent=False)
            except Exception as exc:
                if not ambiguous(exc):
                    raise
                if attempt == RETRY_ATTEMPTS:
                    raise BackendUnavailable(f"{self.settings.url}: adding API key {key.key_id}: {describe(exc)}") from exc
                await backoff(attempt)
                continue
            if result.current_rows[0][0]:
                return
            stored = await self.get_key(key.key_id)
            if stored is not None and stored.digest == key.digest:
                return  # our own earlier attempt landed
            raise KeyExists(f"API key {key.key_id} exists")

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        rows = await self._db.rows(self._cql["get"], key_id)
        if not rows or rows[0][0] is None:
            return None  # none, or only a last-used time written for an unknown id (an upsert)
        body, last_used_at = rows[0]
        return ApiKeyRecord.from_dict({**json.loads(body), "last_used_at": last_used_at})

    async def list_keys(self, tenant: str | None = None) -> builtins.list[ApiKeyRecord]:
        ids: builtins.list[str] = []
        async for rows in self._db.pages(self._cql["ids"].bind(())):
            ids += [key_id for (key_id,) in rows]
        keys = [key for key_id in ids if (key := await self.get_key(key_id)) is not None]
        keys.sort(key=lambda k: (k.created_at, k.key_id))
        return [k for k in keys if tenant is None or k.tenant == tenant]

    async def save_key(self, key: ApiKeyRecord) -> None:
        await self._db.rows(self._cql["save"], key.tenant, _body(key), key.key_id)

    async def touch_key(self, key_id: str, used_at: float) -> None:
        await self._db.rows(self._cql["touch"], used_at, key_id)

    async def put_role(self, tenant: str, name: str, grants: tuple[str, ...]) -> None:
        await self._db.rows(self._cql["put_role"], tenant, name, json.dumps(list(grants)))

    async def delete_role(self, tenant: str, name: str) -> bool:
        found = await self._db.rows(self._cql["role"], tenant, name)
        await self._db.rows(self._cql["delete_role"], tenant, name)
        return bool(found)

    async def roles(self, tenant: str) -> dict[str, tuple[str, ...]]:
        rows = await self._db.rows(self._cql["roles"], tenant)
        return {name: tuple(json.loads(grants)) for name, grants in sorted(rows)}
