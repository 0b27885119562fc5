"""Export from SQLite, import into a real Cassandra: identical histories and states, verify clean."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from orchestrator.history import archive, integrity
from orchestrator.settings import Settings
from orchestrator.stores import open_stores
from tests.data_workloads import as_bytes, histories, seed, states
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration


async def test_sqlite_export_imports_into_cassandra(cassandra_keyspace: TestKeyspace, tmp_path: Path) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    source_url = f"sqlite:///{tmp_path}/source.db"
    ids = await seed(source_url)
    dump = io.StringIO()
    async with open_stores(Settings(event_log_url=source_url)) as (source, source_registry):
        exported = await archive.export(source, source_registry, dump, page_size=3)
        expected = await histories(source, ids)
        summaries = {x: await source.summary(x) for x in ids}
        definitions = {
            (d.name, v): await source_registry.get(d.name, v)
            for d in await source_registry.list()
            for v in await source_registry.versions(d.name)
        }
    assert (exported.executions, exported.definitions) == (len(ids), 5)

    async with open_stores(Settings(event_log_url=cassandra_keyspace.url)) as (target, target_registry):
        report = await archive.import_(target, target_registry, io.StringIO(dump.getvalue()), batch_size=4)
        assert report.ok, report.problems
        assert report.events_appended == exported.events

        imported = await histories(target, ids)
        assert as_bytes(imported) == as_bytes(expected)
        assert states(imported) == states(expected)
        assert {x: await target.summary(x) for x in ids} == summaries
        for (name, version), definition in definitions.items():
            assert await target_registry.get(name, version) == definition

        verified = await integrity.verify(target, target_registry)
        assert verified.problems == []
        assert (verified.executions, verified.events) == (len(ids), exported.events)

        again = await archive.import_(target, target_registry, io.StringIO(dump.getvalue()), batch_size=4)
        assert again.ok and again.events_appended == 0 and again.events_unchanged == exported.events

        # and back out of Cassandra: the same lines as the SQLite export (but the header's time)
        back = io.StringIO()
        await archive.export(target, target_registry, back)
    assert sorted(back.getvalue().splitlines()[1:]) == sorted(dump.getvalue().splitlines()[1:])
