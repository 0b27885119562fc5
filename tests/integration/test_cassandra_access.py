"""The Cassandra access store passes the AccessStore contract (migration 12 applied), and two
stores on one keyspace (two processes) see each other's keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.access_ports import AccessStore
from orchestrator.backends.cassandra.access import CassandraAccessStore
from orchestrator.backends.urls import ACCESS_STORES, open_backend
from tests.contracts.access import AccessStoreContract, key
from tests.integration.conftest import TestKeyspace


class TestCassandraAccessStore(AccessStoreContract):
    @pytest.fixture(autouse=True)
    def _keyspace(self, cassandra_keyspace: TestKeyspace) -> None:
        self.keyspace = cassandra_keyspace

    async def make_store(self, tmp_path: Path) -> AccessStore:
        await self.keyspace.empty_once(tmp_path)
        store = open_backend(ACCESS_STORES, self.keyspace.url, "access store")
        assert isinstance(store, CassandraAccessStore)
        await store.start()
        return store

    async def test_another_process_sees_a_key_at_once(self, tmp_path: Path) -> None:
        first = await self.make_store(tmp_path)
        second = await self.make_store(tmp_path)
        try:
            await first.add_key(key())
            assert await second.get_key(key().key_id) == key()
            assert [k.key_id for k in await second.list_keys()] == [key().key_id]
        finally:
            await first.stop()
            await second.stop()
