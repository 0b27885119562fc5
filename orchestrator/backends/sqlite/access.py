"""API keys and custom roles in the event log's SQLite file (``sqlite:///path.db``).

A key's record is its JSON (``body``) plus the last-used time in a column of its own, so
recording a use never rewrites the record. Tables are created IF NOT EXISTS at every open.
"""

from __future__ import annotations

import builtins
import json
import sqlite3

from orchestrator.access_ports import ApiKeyRecord, KeyExists
from orchestrator.backends.sqlite import SQLiteSettings, _Database
from orchestrator.lifecycle import Lifecycle

_DDL = (
    "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
    " created_at REAL NOT NULL, body TEXT NOT NULL, last_used_at REAL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS custom_roles (tenant TEXT NOT NULL, name TEXT NOT NULL,"
    " grants TEXT NOT NULL, PRIMARY KEY (tenant, name)) WITHOUT ROWID",
)
_SELECT = "SELECT body, last_used_at FROM api_keys"


def _record(body: str, last_used_at: float | None) -> ApiKeyRecord:
    data = json.loads(body)
    data["last_used_at"] = last_used_at
    return ApiKeyRecord.from_dict(data)


def _body(key: ApiKeyRecord) -> str:
    data = key.to_dict()
    del data["last_used_at"]
    return json.dumps(data, sort_keys=True)


class SQLiteAccessStore(Lifecycle):
    def __init__(self, settings: SQLiteSettings) -> None:
        self.settings = settings
        self._db = _Database(settings, "access", _DDL)

    @classmethod
    def from_url(cls, url: str) -> SQLiteAccessStore:
        return cls(SQLiteSettings.from_url(url))

    async def start(self) -> None:
        await self._db.open()

    async def stop(self) -> None:
        await self._db.close()

    async def add_key(self, key: ApiKeyRecord) -> None:
        await self._db.run(self._add, key)

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        return await self._db.run(self._get, key_id)

    async def list_keys(self, tenant: str | None = None) -> builtins.list[ApiKeyRecord]:
        return await self._db.run(self._list, tenant)

    async def save_key(self, key: ApiKeyRecord) -> None:
        sql = "UPDATE api_keys SET tenant = ?, body = ? WHERE key_id = ?"
        await self._db.run(self._execute, sql, (key.tenant, _body(key), key.key_id))

    async def touch_key(self, key_id: str, used_at: float) -> None:
        sql = "UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE key_id = ?"
        await self._db.run(self._execute, sql, (used_at, key_id))

    async def put_role(self, tenant: str, name: str, grants: tuple[str, ...]) -> None:
        sql = "INSERT OR REPLACE INTO custom_roles (tenant, name, grants) VALUES (?, ?, ?)"
        await self._db.run(self._execute, sql, (tenant, name, json.dumps(list(grants))))

    async def delete_role(self, tenant: str, name: str) -> bool:
        return await self._db.run(self._delete_role, tenant, name)

    async def roles(self, tenant: str) -> dict[str, tuple[str, ...]]:
        return await self._db.run(self._roles, tenant)

    def _execute(self, sql: str, params: tuple[object, ...]) -> None:
        self._db.connection.execute(sql, params)

    def _add(self, key: ApiKeyRecord) -> None:
        try:
            self._db.connection.execute(
                "INSERT INTO api_keys (key_id, tenant, created_at, body, last_used_at) VALUES (?, ?, ?, ?, ?)",
                (key.key_id, key.tenant, key.created_at, _body(key), key.last_used_at),
            )
        except sqlite3.IntegrityError:
            raise KeyExists(f"API key {key.key_id} exists") from None

    def _get(self, key_id: str) -> ApiKeyRecord | None:
        row = self._db.connection.execute(f"{_SELECT} WHERE key_id = ?", (key_id,)).fetchone()
        return None if row is None else _record(*row)

    def _list(self, tenant: str | None) -> builtins.list[ApiKeyRecord]:
        if tenant is None:
            rows = self._db.connection.execute(f"{_SELECT} ORDER BY created_at, key_id")
        else:
            rows = self._db.connection.execute(f"{_SELECT} WHERE tenant = ? ORDER BY created_at, key_id", (tenant,))
        return [_record(*row) for row in rows]

    def _delete_role(self, tenant: str, name: str) -> bool:
        cursor = self._db.connection.execute("DELETE FROM custom_roles WHERE tenant = ? AND name = ?", (tenant, name))
        return cursor.rowcount > 0

    def _roles(self, tenant: str) -> dict[str, tuple[str, ...]]:
        rows = self._db.connection.execute(
            "SELECT name, grants FROM custom_roles WHERE tenant = ? ORDER BY name", (tenant,)
        )
        return {name: tuple(json.loads(grants)) for name, grants in rows}
