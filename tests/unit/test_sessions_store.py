"""The memory and SQLite session stores pass the SessionStore contract."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from orchestrator.backends.urls import SESSION_STORES, open_backend
from orchestrator.ports import SessionStore
from tests.contracts.sessions import SessionStoreContract, stored


class TestMemorySessionStore(SessionStoreContract):
    durable = False

    async def make_store(self, tmp_path: Path) -> SessionStore:
        store: SessionStore = open_backend(SESSION_STORES, "memory://", "session store")
        await store.start()
        return store


class TestSQLiteSessionStore(SessionStoreContract):
    async def make_store(self, tmp_path: Path) -> SessionStore:
        store: SessionStore = open_backend(SESSION_STORES, f"sqlite:///{tmp_path}/o.db", "session store")
        await store.start()
        return store

    async def test_the_file_holds_no_secret_and_expired_rows_are_swept(self, tmp_path: Path) -> None:
        store = await self.make_store(tmp_path)
        try:
            old = stored(ttl=-10.0)
            await store.put(old)
            await store.put(stored())  # sweeps the expired one
        finally:
            await store.stop()
        with sqlite3.connect(tmp_path / "o.db") as connection:
            rows = connection.execute("SELECT session_id, expires_at FROM sessions").fetchall()
            columns = [row[1] for row in connection.execute("PRAGMA table_info(sessions)")]
        assert len(rows) == 1 and rows[0][0] != old.session_id and rows[0][1] > time.time()
        assert "secret" not in columns and "secret_hash" in columns
