"""The Cassandra registry passes the Registry contract against a real Cassandra, and more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.backends.cassandra.event_log import CassandraEventLog, CassandraRegistry
from orchestrator.backends.urls import REGISTRIES, open_backend
from orchestrator.ports import NameTaken, Registry, VersionConflict
from tests.contracts.factories import definition, started
from tests.contracts.registry import RegistryContract, rich_definition
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration


async def open_registry(url: str) -> CassandraRegistry:
    registry = open_backend(REGISTRIES, url, "registry")
    assert isinstance(registry, CassandraRegistry)
    await registry.start()
    return registry


class TestCassandraRegistry(RegistryContract):
    @pytest.fixture(autouse=True)
    def _keyspace(self, cassandra_keyspace: TestKeyspace) -> None:
        self.keyspace = cassandra_keyspace

    async def make_registry(self, tmp_path: Path) -> Registry:
        await self.keyspace.empty_once(tmp_path)
        return await open_registry(self.keyspace.url)

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


@pytest.fixture
async def registries(
    cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> AsyncIterator[list[CassandraRegistry]]:
    """Three registries with their own driver sessions, as three processes would have."""
    await cassandra_keyspace.empty_once(tmp_path)
    opened = [await open_registry(cassandra_keyspace.url) for _ in range(3)]
    try:
        yield opened
    finally:
        for registry in opened:
            await registry.stop()


async def test_concurrent_registrars_never_get_the_same_version(
    registries: list[CassandraRegistry],
) -> None:
    contents = [f"https://v{n}" for n in range(12)]

    stored = await asyncio.gather(
        *(registries[n % 3].register(definition(url=url)) for n, url in enumerate(contents))
    )

    assert sorted(d.version or 0 for d in stored) == list(range(1, 13))
    assert await registries[0].versions("orders") == list(range(1, 13))
    for d in stored:
        assert d.version is not None
        assert await registries[1].get("orders", d.version) == d


async def test_concurrent_registrations_of_the_same_content_make_one_version(
    registries: list[CassandraRegistry],
) -> None:
    stored = await asyncio.gather(
        *(registries[n % 3].register(definition(url="https://same")) for n in range(9))
    )

    assert {d.version for d in stored} == {1}
    assert await registries[2].versions("orders") == [1]


async def test_racing_explicit_versions_with_different_content_one_wins(
    registries: list[CassandraRegistry],
) -> None:
    outcomes = await asyncio.gather(
        *(registries[n].register(definition(version=7, url=f"https://{n}")) for n in range(3)),
        return_exceptions=True,
    )

    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(o, VersionConflict) for o in outcomes if isinstance(o, BaseException))
    assert await registries[0].get("orders") == winners[0]


async def test_racing_tenants_for_a_new_name_one_owns_it(registries: list[CassandraRegistry]) -> None:
    tenants = ("acme", "globex", "initech")
    outcomes = await asyncio.gather(
        *(
            registries[n].register(definition(url=f"https://{n}").model_copy(update={"tenant": tenant}))
            for n, tenant in enumerate(tenants)
        ),
        return_exceptions=True,
    )

    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(o, NameTaken) for o in outcomes if isinstance(o, BaseException))
    assert await registries[0].versions("orders") == [1]
    assert (await registries[1].get("orders")).tenant == winners[0].tenant


async def test_definitions_stored_before_tenants_read_as_the_default_tenant(
    registries: list[CassandraRegistry],
) -> None:
    """A row written without a tenant field (as before definitions had owners) is the default tenant's."""
    old = definition(url="https://old", version=1)
    body = old.model_dump_json(exclude={"tenant"})
    assert '"tenant"' not in body.split('"steps"')[0]
    insert = registries[0].statements["insert"].bind(("orders", 1, body))
    await registries[0].database.run(insert, idempotent=False)
    assert (await registries[1].get("orders", 1)).tenant == "default"
    with pytest.raises(NameTaken):
        await registries[2].register(definition(url="https://new").model_copy(update={"tenant": "acme"}))


async def test_trigger_overrides_are_shared_between_processes(
    registries: list[CassandraRegistry],
) -> None:
    await registries[0].set_trigger_enabled("orders", "paid", False)
    await registries[1].set_trigger_enabled("orders", "refunds", False)

    assert await registries[2].trigger_states() == {("orders", "paid"): False, ("orders", "refunds"): False}
    await registries[2].set_trigger_enabled("orders", "paid", True)
    assert (await registries[0].trigger_states())[("orders", "paid")] is True


async def test_shares_one_keyspace_with_the_event_log(
    registries: list[CassandraRegistry], cassandra_keyspace: TestKeyspace
) -> None:
    log = CassandraEventLog.from_url(cassandra_keyspace.url)
    await log.start()
    try:
        stored = await registries[0].register(definition())
        await log.append("e1", 0, [started("e1", stored.name)])
        assert [e.workflow for e in await log.read("e1")] == [stored.name]
        assert await registries[1].list() == [stored]
    finally:
        await log.stop()
