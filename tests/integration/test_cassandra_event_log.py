"""The Cassandra event log passes the EventLog contract against a real Cassandra, and more."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.backends.cassandra.event_log import (
    CassandraEventLog,
    CassandraRegistry,
    CassandraSettings,
    migrate,
)
from orchestrator.backends.cassandra.schema import LATEST, MIGRATIONS
from orchestrator.backends.memory import MemoryEventLog
from orchestrator.backends.urls import EVENT_LOGS, open_backend
from orchestrator.core.events import EVENT_AWAITED, EXECUTION_FAILED, EXECUTION_SUCCEEDED
from orchestrator.ports import BackendUnavailable, ConcurrencyError, EventLog, ExecutionQuery
from schemas.envelope import Envelope
from tests.contracts.event_log import EventLogContract, list_all
from tests.contracts.factories import event, history, started
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration


async def open_log(url: str) -> CassandraEventLog:
    log = CassandraEventLog.from_url(url)
    await log.start()
    return log


class TestCassandraEventLog(EventLogContract):
    @pytest.fixture(autouse=True)
    def _keyspace(self, cassandra_keyspace: TestKeyspace) -> None:
        self.keyspace = cassandra_keyspace

    async def make_log(self, tmp_path: Path) -> EventLog:
        await self.keyspace.empty_once(tmp_path)
        return await open_log(self.keyspace.url)

    async def test_data_survives_stop_and_reopen(self, tmp_path: Path) -> None:
        log = await self.make_log(tmp_path)
        await log.append("a", 0, history("a", 3))
        before = await log.summary("a"), await log.list_executions(ExecutionQuery())
        await log.stop()

        reopened = await self.make_log(tmp_path)
        try:
            assert await reopened.read("a") == history("a", 3)
            assert (
                await reopened.summary("a"),
                await reopened.list_executions(ExecutionQuery()),
            ) == before
            await reopened.append("a", 3, [event("a", 4)])
        finally:
            await reopened.stop()


@pytest.fixture
async def log(cassandra_keyspace: TestKeyspace, tmp_path: Path) -> AsyncIterator[CassandraEventLog]:
    await cassandra_keyspace.empty_once(tmp_path)
    log = await open_log(cassandra_keyspace.url)
    try:
        yield log
    finally:
        await log.stop()


async def test_two_writers_race_fifty_times_and_exactly_one_wins_each(
    log: CassandraEventLog, cassandra_keyspace: TestKeyspace
) -> None:
    other = await open_log(cassandra_keyspace.url)  # a second process: its own driver session
    try:
        starts = [started("race", input={"writer": n}) for n in range(2)]
        outcomes = await asyncio.gather(
            log.append("race", 0, [starts[0]]), other.append("race", 0, [starts[1]]),
            return_exceptions=True,
        )  # fmt: skip
        assert sorted(type(o).__name__ for o in outcomes) == ["ConcurrencyError", "NoneType"]
        winners = [starts[outcomes.index(None)]]
        for sequence in range(2, 52):
            candidates = [event("race", sequence, data={"writer": n}) for n in range(2)]
            outcomes = await asyncio.gather(
                log.append("race", sequence - 1, [candidates[0]]),
                other.append("race", sequence - 1, [candidates[1]]),
                return_exceptions=True,
            )
            assert outcomes.count(None) == 1, outcomes
            assert all(isinstance(o, ConcurrencyError) for o in outcomes if o is not None)
            winners.append(candidates[outcomes.index(None)])

        assert await log.read("race") == winners
        assert await other.read("race") == winners
        summary = await other.summary("race")
        assert summary is not None and summary.last_sequence == 51
    finally:
        await other.stop()


async def test_a_5000_event_history_is_read_back_in_pages(
    log: CassandraEventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = history("long", 5000)
    for start in range(0, 5000, 250):  # one LWT per 250-event batch
        await log.append("long", start, events[start : start + 250])
    requests: list[int] = []
    run = log._db.run

    async def counting_run(*args: object, **kwargs: object) -> object:
        result = await run(*args, **kwargs)  # type: ignore[arg-type]
        requests.append(len(result.current_rows))
        return result

    monkeypatch.setattr(log._db, "run", counting_run)

    assert await log.read("long") == events
    assert len(requests) >= 5 and max(requests) <= 1000  # PAGE_SIZE rows per request
    requests.clear()
    paged: list[Envelope] = []
    while page := await log.read("long", after_sequence=len(paged), limit=700):
        paged += page
    assert paged == events
    assert await log.read("long", after_sequence=4998) == events[4998:]
    assert await log.read("long", after_sequence=2500, limit=3) == events[2500:2503]


def at_day(day: int, seconds: int) -> str:
    return f"2024-03-{day:02}T{seconds // 3600:02}:{seconds // 60 % 60:02}:{seconds % 60:02}.000Z"


async def test_listing_by_workflow_status_and_time_across_two_day_buckets(
    log: CassandraEventLog,
) -> None:
    oracle = MemoryEventLog()
    for i in range(30):  # 15 before midnight on 1 March, 15 after it, on 2 March
        execution_id = f"d{i:02}"
        time_ = at_day(1, 86399 - 14 * 60 + i * 60) if i < 15 else at_day(2, (i - 15) * 60)
        workflow = ("orders", "billing", "ship")[i % 3]
        first = started(execution_id, workflow, time=time_, tenant="acme" if i % 2 else "globex")
        batches = [[first]]
        if i % 4 == 1:
            batches.append([event(execution_id, 2, EXECUTION_SUCCEEDED, workflow=workflow)])
        elif i % 4 == 2:
            batches.append([event(execution_id, 2, EXECUTION_FAILED, workflow=workflow)])
        for sink in (log, oracle):
            for last, batch in enumerate(batches):
                await sink.append(execution_id, last, batch)

    queries = [
        ExecutionQuery(limit=4),
        ExecutionQuery(limit=3, workflow="orders"),
        ExecutionQuery(limit=2, status="succeeded"),
        ExecutionQuery(limit=2, status="running", workflow="billing"),
        ExecutionQuery(limit=5, tenant="acme", status="failed"),
        ExecutionQuery(limit=4, started_after=at_day(1, 86399 - 5 * 60), started_before=at_day(2, 300)),
        ExecutionQuery(limit=100, started_before=at_day(2, 0)),
        ExecutionQuery(limit=100, started_after=at_day(2, 0)),
        ExecutionQuery(limit=3, workflow="ship", started_after=at_day(1, 86000)),
    ]
    for query in queries:
        expected = await list_all(oracle, query)
        assert await list_all(log, query) == expected, query
        assert {s.started_at[:10] for s in expected} <= {"2024-03-01", "2024-03-02"}
    crossing = await list_all(log, ExecutionQuery(limit=4))
    assert {s.started_at[:10] for s in crossing} == {"2024-03-01", "2024-03-02"}


async def test_the_index_is_a_projection_verified_on_read_and_rebuilt_by_reindex(
    log: CassandraEventLog, cassandra_keyspace: TestKeyspace
) -> None:
    ks = cassandra_keyspace.name
    await log.append("p1", 0, [started("p1", "orders", actor="webhook:shop")])
    awaited = {"step": "wait", "event": "paid", "correlation_key": "o-1"}
    await log.append("p1", 1, [event("p1", 2, EVENT_AWAITED, awaited, workflow="orders")])
    await log.append("p1", 2, [event("p1", 3, EXECUTION_SUCCEEDED, workflow="orders")])
    admin = cassandra_keyspace.admin
    summary = await log.summary("p1")
    assert summary is not None
    day = summary.started_at[:10]
    # a stale row (as left by a crash between the commit and the index batch) is never listed
    admin.execute(
        f"INSERT INTO {ks}.executions_by_status (status, day, started_at, execution_id, tenant)"
        " VALUES ('running', %s, %s, 'p1', 'default')",
        (day, summary.started_at),
    )
    assert (await log.list_executions(ExecutionQuery(status="running"))).items == []
    # lost rows are rebuilt from the events partition
    tables = ("day", "workflow", "status", "starter", "correlation")
    for table in tables:
        admin.execute(f"TRUNCATE {ks}.executions_by_{table}")
    assert (await log.list_executions(ExecutionQuery())).items == []

    assert await log.reindex("p1") is True
    assert await log.reindex("nobody") is False

    for query in (
        ExecutionQuery(),
        ExecutionQuery(workflow="orders"),
        ExecutionQuery(status="succeeded"),
        ExecutionQuery(started_by="webhook:shop"),
        ExecutionQuery(correlation_key="o-1", status="succeeded"),
    ):
        assert (await log.list_executions(query)).items == [summary]
    rows = admin.execute(
        f"SELECT status FROM {ks}.executions_by_status WHERE status = 'running' AND day = %s",
        (day,),
    )
    assert list(rows) == []


async def test_an_ambiguous_append_is_settled_by_reading_the_last_event_back(
    log: CassandraEventLog,
) -> None:
    await log.append("amb", 0, history("amb", 3))

    assert await log._landed(history("amb", 3)[-1]) is True  # ours: the append landed
    theirs = event("amb", 3, data={"other": True})
    assert await log._landed(theirs) is False  # someone else's content at that sequence
    assert await log._landed(dataclasses.replace(theirs, id="their-id")) is False
    assert await log._landed(event("amb", 4)) is None  # still free: safe to retry the LWT


async def test_appends_keep_working_from_many_executions_at_once(log: CassandraEventLog) -> None:
    ids = [f"m{i:03}" for i in range(100)]
    await asyncio.gather(*(log.append(i, 0, [started(i)]) for i in ids))
    for sequence in range(2, 5):
        await asyncio.gather(*(log.append(i, sequence - 1, [event(i, sequence)]) for i in ids))
    assert [len(await log.read(i)) for i in ids] == [4] * 100


async def test_migrate_is_idempotent_and_records_versions(
    cassandra_url: str, cassandra_keyspace: TestKeyspace
) -> None:
    name = f"test_migrate_{uuid.uuid4().hex[:8]}"
    url = f"{cassandra_url}/{name}"
    admin = cassandra_keyspace.admin
    try:
        with pytest.raises(BackendUnavailable, match=f"run `orchestrator migrate {url}`"):
            await CassandraEventLog.from_url(url).start()

        assert [m.version for m in await migrate(url)] == [m.version for m in MIGRATIONS]
        assert await migrate(url) == []

        rows = admin.execute(f"SELECT version, description FROM {name}.schema_migrations")
        assert sorted((r.version, r.description) for r in rows) == [
            (m.version, m.description) for m in MIGRATIONS
        ]
        started_log = await open_log(url)
        await started_log.stop()
        admin.execute(
            f"INSERT INTO {name}.schema_migrations (scope, version, description)"
            " VALUES ('orchestrator', %s, 'from the future')",
            (LATEST + 1,),
        )
        with pytest.raises(BackendUnavailable, match="newer than this code"):
            await CassandraRegistry.from_url(url).start()
    finally:
        admin.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=120)


async def test_migrate_auto_creates_the_schema_at_start(
    cassandra_url: str, cassandra_keyspace: TestKeyspace
) -> None:
    name = f"test_auto_{uuid.uuid4().hex[:8]}"
    try:
        log = open_backend(EVENT_LOGS, f"{cassandra_url}/{name}?migrate=auto", "event log")
        assert isinstance(log, CassandraEventLog)
        await log.start()
        try:
            await log.append("a", 0, [started("a")])
            assert await log.read("a") == [started("a")]
        finally:
            await log.stop()
    finally:
        cassandra_keyspace.admin.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=120)


@pytest.mark.parametrize("backend", [CassandraEventLog, CassandraRegistry])
async def test_an_unreachable_cluster_fails_start_quickly_and_clearly(
    backend: type[CassandraEventLog] | type[CassandraRegistry],
) -> None:
    url = "cassandra://127.0.0.1:1/orchestrator"
    began = time.monotonic()

    with pytest.raises(BackendUnavailable) as raised:
        await backend.from_url(url).start()

    assert time.monotonic() - began < 5
    message = str(raised.value)
    assert url in message and "no host available" in message and "127.0.0.1:1" in message


async def test_the_driver_runs_on_its_libev_reactor(log: CassandraEventLog) -> None:
    # the wheel bundles libev; asyncioreactor is the fallback, asyncorereactor is never used
    assert log._db.session.cluster.connection_class.__name__ == "LibevConnection"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "cassandra://127.0.0.1/orchestrator",
            CassandraSettings("cassandra://127.0.0.1/orchestrator", ("127.0.0.1",), "orchestrator"),
        ),
        (
            "cassandra://a:9043,b:9043/ks?consistency=quorum&replication=3&migrate=auto",
            CassandraSettings(
                "cassandra://a:9043,b:9043/ks?consistency=quorum&replication=3&migrate=auto",
                ("a", "b"), "ks", port=9043, consistency="QUORUM", replication=3,
                auto_migrate=True,
            ),
        ),
        (
            "cassandra://u:secret@h/ks?dc=dc1:3,dc2&replication=2&serial_consistency=SERIAL",
            CassandraSettings(
                "cassandra://u:***@h/ks?dc=dc1:3,dc2&replication=2&serial_consistency=SERIAL",
                ("h",), "ks", serial_consistency="SERIAL", replication=2,
                datacenters=(("dc1", 3), ("dc2", 2)), local_dc="dc1", username="u",
                password="secret",
            ),
        ),
    ],
)  # fmt: skip
def test_settings_from_url(url: str, expected: CassandraSettings) -> None:
    settings = CassandraSettings.from_url(url)
    assert settings == expected
    assert "secret" not in repr(settings)


def test_replication_options() -> None:
    simple = CassandraSettings.from_url("cassandra://h/ks?replication=3")
    assert simple.replication_options == {"class": "SimpleStrategy", "replication_factor": "3"}
    nts = CassandraSettings.from_url("cassandra://h/ks?dc=east:3,west:2")
    assert nts.replication_options == {"class": "NetworkTopologyStrategy", "east": "3", "west": "2"}


@pytest.mark.parametrize(
    "bad",
    [
        "sqlite:///x.db",
        "cassandra:///ks",
        "cassandra://h/",
        "cassandra://h/1bad",
        "cassandra://h/ks?consistency=SERIAL",
        "cassandra://h/ks?consistency=MOST",
        "cassandra://h/ks?serial_consistency=ONE",
        "cassandra://h/ks?replication=0",
        "cassandra://h/ks?migrate=sometimes",
        "cassandra://h/ks?colour=blue",
        "cassandra://a:1,b:2/ks",
    ],
)
def test_settings_reject_bad_urls(bad: str) -> None:
    with pytest.raises(ValueError):
        CassandraSettings.from_url(bad)


async def test_appends_that_time_out_are_settled_never_lost_nor_doubled(
    log: CassandraEventLog, cassandra_keyspace: TestKeyspace
) -> None:
    # A 2 ms client timeout makes LWTs time out after they were sent: a real ambiguous outcome.
    hasty = await open_log(f"{cassandra_keyspace.url}?request_timeout=0.002")
    outcomes: dict[str, list[str]] = {"ok": [], "unavailable": []}
    try:
        for n in range(8):
            execution_id = f"hasty{n}"
            try:
                await hasty.append(execution_id, 0, [started(execution_id)])
                outcomes["ok"].append(execution_id)
            except BackendUnavailable:  # could not tell: the caller must re-read
                outcomes["unavailable"].append(execution_id)
    finally:
        await hasty.stop()

    for execution_id in outcomes["ok"]:  # reported done: it is there, exactly once
        assert await log.read(execution_id) == [started(execution_id)]
    for execution_id in outcomes["unavailable"]:  # unknown: either there or still free
        stored = await log.read(execution_id)
        assert stored in ([], [started(execution_id)])
        if not stored:
            await log.append(execution_id, 0, [started(execution_id)])
