"""The SQLite registry passes the Registry contract, survives restarts and shares the log's file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orchestrator.backends.sqlite import SQLiteEventLog, SQLiteRegistry
from orchestrator.ports import BackendUnavailable, NameTaken, Registry, VersionConflict
from tests.contracts.factories import definition, started
from tests.contracts.registry import RegistryContract, rich_definition


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/orchestrator.db"


class TestSQLiteRegistry(RegistryContract):
    async def make_registry(self, tmp_path: Path) -> Registry:
        registry = SQLiteRegistry.from_url(url(tmp_path))
        await registry.start()
        return registry

    async def test_data_survives_stop_and_reopen(self, tmp_path: Path) -> None:
        registry = await self.make_registry(tmp_path)
        await registry.register(definition(url="https://a"))
        await registry.register(rich_definition())
        await registry.stop()

        reopened = await self.make_registry(tmp_path)
        try:
            assert await reopened.versions("orders") == [1]
            assert await reopened.get("rich") == rich_definition().with_version(1)
            with pytest.raises(VersionConflict):
                await reopened.register(definition(version=1, url="https://b"))
            assert (await reopened.register(definition(url="https://b"))).version == 2
        finally:
            await reopened.stop()

    async def test_definitions_stored_before_tenants_read_as_the_default_tenant(self, tmp_path: Path) -> None:
        registry = await self.make_registry(tmp_path)
        await registry.stop()
        body = definition(url="https://old", version=1).model_dump_json(exclude={"tenant"})
        with sqlite3.connect(tmp_path / "orchestrator.db") as db:  # a row as written before definitions had owners
            db.execute("INSERT INTO definitions VALUES (?, ?, ?)", ("orders", 1, body))
        reopened = await self.make_registry(tmp_path)
        try:
            assert (await reopened.get("orders")).tenant == "default"
            with pytest.raises(NameTaken):
                await reopened.register(definition(url="https://new").model_copy(update={"tenant": "acme"}))
        finally:
            await reopened.stop()

    async def test_trigger_overrides_survive_reopen_and_are_shared(self, tmp_path: Path) -> None:
        first = await self.make_registry(tmp_path)
        second = await self.make_registry(tmp_path)  # another process on the same file
        try:
            await first.set_trigger_enabled("orders", "paid", False)
            assert await second.trigger_states() == {("orders", "paid"): False}
            await second.set_trigger_enabled("orders", "paid", True)
            assert await first.trigger_states() == {("orders", "paid"): True}
        finally:
            await first.stop()
            await second.stop()

        reopened = await self.make_registry(tmp_path)
        try:
            assert await reopened.trigger_states() == {("orders", "paid"): True}
        finally:
            await reopened.stop()

    async def test_shares_one_file_with_the_event_log(self, tmp_path: Path) -> None:
        registry = await self.make_registry(tmp_path)
        log = SQLiteEventLog.from_url(url(tmp_path))
        await log.start()
        try:
            stored = await registry.register(definition())
            await log.append("e1", 0, [started("e1", stored.name)])
            assert await registry.get(stored.name) == stored
            assert [e.workflow for e in await log.read("e1")] == ["orders"]
        finally:
            await log.stop()
            await registry.stop()

    async def test_unopenable_path_names_the_url(self, tmp_path: Path) -> None:
        bad = f"sqlite:///{tmp_path}/missing/dir/orchestrator.db"
        with pytest.raises(BackendUnavailable, match="unable to open") as raised:
            await SQLiteRegistry.from_url(bad).start()
        assert bad in str(raised.value)
