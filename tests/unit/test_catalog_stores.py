"""The catalog store contract on the memory and SQLite stores."""

from __future__ import annotations

from pathlib import Path

from orchestrator.catalog.memory import MemoryCatalog
from orchestrator.catalog.ports import CatalogStore
from orchestrator.catalog.sqlite import SQLiteCatalog
from tests.contracts.catalog import CatalogStoreContract


class TestMemoryCatalog(CatalogStoreContract):
    durable = False

    async def make_store(self, tmp_path: Path) -> CatalogStore:
        store = MemoryCatalog.from_url("memory://")
        await store.start()
        return store


class TestSQLiteCatalog(CatalogStoreContract):
    async def make_store(self, tmp_path: Path) -> CatalogStore:
        store = SQLiteCatalog.from_url(f"sqlite:///{tmp_path}/events.db")
        await store.start()
        return store
