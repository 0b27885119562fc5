"""The Cassandra catalog store passes the catalog store contract against a real Cassandra."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.catalog.cassandra import CassandraCatalog
from orchestrator.catalog.opening import open_catalog_store
from orchestrator.catalog.ports import CatalogStore
from tests.contracts.catalog import CatalogStoreContract
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration


class TestCassandraCatalog(CatalogStoreContract):
    @pytest.fixture(autouse=True)
    def _keyspace(self, cassandra_keyspace: TestKeyspace) -> None:
        self.keyspace = cassandra_keyspace

    async def make_store(self, tmp_path: Path) -> CatalogStore:
        await self.keyspace.empty_once(tmp_path)
        store = open_catalog_store(self.keyspace.url)
        assert isinstance(store, CassandraCatalog)
        await store.start()
        return store
