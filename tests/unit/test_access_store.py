"""The memory and SQLite access stores pass the AccessStore contract; SQLite keeps keys across
a reopen and shares the event log's file."""

from __future__ import annotations

from pathlib import Path

from orchestrator.access_ports import AccessStore
from orchestrator.backends.memory_access import MemoryAccessStore
from orchestrator.backends.sqlite.access import SQLiteAccessStore
from tests.contracts.access import AccessStoreContract, key


class TestMemoryAccessStore(AccessStoreContract):
    async def make_store(self, tmp_path: Path) -> AccessStore:
        store = MemoryAccessStore.from_url("memory://")
        await store.start()
        return store


class TestSQLiteAccessStore(AccessStoreContract):
    async def make_store(self, tmp_path: Path) -> AccessStore:
        store = SQLiteAccessStore.from_url(f"sqlite:///{tmp_path}/orchestrator.db")
        await store.start()
        return store

    async def test_keys_survive_a_reopen_and_other_processes_see_them(self, tmp_path: Path) -> None:
        first = await self.make_store(tmp_path)
        second = await self.make_store(tmp_path)
        try:
            await first.add_key(key())
            assert await second.get_key(key().key_id) == key()
        finally:
            await first.stop()
            await second.stop()
        reopened = await self.make_store(tmp_path)
        try:
            assert [k.key_id for k in await reopened.list_keys()] == [key().key_id]
        finally:
            await reopened.stop()
