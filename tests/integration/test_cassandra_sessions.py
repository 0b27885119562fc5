"""The Cassandra session store passes the SessionStore contract against a real Cassandra; rows
end with their session (TTL)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from orchestrator.backends.cassandra.sessions import CassandraSessionStore
from orchestrator.backends.urls import SESSION_STORES, open_backend
from orchestrator.ports import SessionStore
from tests.contracts.sessions import SessionStoreContract, stored
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration


class TestCassandraSessionStore(SessionStoreContract):
    @pytest.fixture(autouse=True)
    def _keyspace(self, cassandra_keyspace: TestKeyspace) -> None:
        self.keyspace = cassandra_keyspace

    async def make_store(self, tmp_path: Path) -> SessionStore:
        await self.keyspace.empty_once(tmp_path)
        store = open_backend(SESSION_STORES, self.keyspace.url, "session store")
        assert isinstance(store, CassandraSessionStore)
        await store.start()
        return store

    async def test_a_row_expires_with_its_session(self, tmp_path: Path) -> None:
        store = await self.make_store(tmp_path)
        try:
            short = stored(ttl=1.0)
            await store.put(short)
            await store.revoke(short.session_id, time.time())
            assert await store.get(short.session_id) is not None
            await asyncio.sleep(2.2)
            assert await store.get(short.session_id) is None
            rows = self.keyspace.admin.execute(
                f"SELECT session_id FROM {self.keyspace.name}.sessions WHERE session_id = %s",
                (short.session_id,),
            )
            assert list(rows) == []
        finally:
            await store.stop()
