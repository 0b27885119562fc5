"""The Cassandra feed passes the feed contract against a real Cassandra, and keeps its settle rule."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from orchestrator.backends.cassandra.event_log import CassandraEventLog
from orchestrator.backends.cassandra.feed import FeedWriter
from orchestrator.ports import BackendUnavailable, EventLog
from tests.contracts.factories import event, history, started
from tests.contracts.feed import FeedContract, read_all, settled
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration
DELAY = 2.0  # feed_delay of these tests: announcements must be acknowledged within 1 s


async def open_log(keyspace: TestKeyspace) -> CassandraEventLog:
    log = CassandraEventLog.from_url(f"{keyspace.url}?feed_delay={DELAY}")
    await log.start()
    return log


class TestCassandraFeed(FeedContract):
    @pytest.fixture(autouse=True)
    def _keyspace(self, cassandra_keyspace: TestKeyspace) -> None:
        self.keyspace = cassandra_keyspace

    async def make_log(self, tmp_path: Path) -> EventLog:
        await self.keyspace.empty_once(tmp_path)
        return await open_log(self.keyspace)


@pytest.fixture
async def log(cassandra_keyspace: TestKeyspace, tmp_path: Path) -> AsyncIterator[CassandraEventLog]:
    await cassandra_keyspace.empty_once(tmp_path)
    log = await open_log(cassandra_keyspace)
    try:
        yield log
    finally:
        await log.stop()


def writer_with_clock(log: CassandraEventLog, clock: Callable[[], float]) -> FeedWriter:
    writer = FeedWriter(log, clock)
    log._feed = writer  # as if this process's clock were this one
    return writer


async def test_nothing_is_served_before_it_settles(log: CassandraEventLog) -> None:
    feed = log.feed()
    before = await feed.head()
    await log.append("s", 0, [started("s")])

    early = await feed.read_after(before)
    await settled(feed)
    late = await feed.read_after(before)

    assert early.items == [] and early.last <= before + 1_000_000  # the reader did not move past it
    assert [e.subject for _, e in late.items] == ["s"]


async def test_an_announced_attempt_that_never_ran_resolves_to_nothing(log: CassandraEventLog) -> None:
    """A process that died between the announcement and the LWT leaves a row, not an event."""
    await log.append("ghost", 0, [started("ghost")])
    await log._feed.announce([event("ghost", 2)], after=0)  # never proposed
    await log._feed.announce([started("never")], after=0)  # an execution that never existed
    await log.append("ghost", 1, [event("ghost", 2, data={"real": True})])
    await settled(log.feed())

    page = await log.feed().read_after(0)

    assert [(e.subject, e.sequence, e.data) for _, e in page.items] == [
        ("ghost", 1, started("ghost").data),
        ("ghost", 2, {"real": True}),
    ]


async def test_an_execution_stays_in_order_when_a_process_with_a_slow_clock_continues_it(
    log: CassandraEventLog, cassandra_keyspace: TestKeyspace
) -> None:
    """The next owner's clock is 30 s behind: its position still follows the execution's last."""
    other = await open_log(cassandra_keyspace)
    try:
        writer_with_clock(other, lambda: time.time() - 30)
        await log.append("moved", 0, history("moved", 2))
        await other.append("moved", 2, [event("moved", 3)])  # reads feed_position from the log
        await settled(log.feed())

        keys, positions, _ = await read_all(log.feed())

        assert keys == [("moved", 1), ("moved", 2), ("moved", 3)]
        assert positions[1] < positions[2]
    finally:
        await other.stop()


async def test_a_late_acknowledgement_is_announced_again_and_served_once(
    log: CassandraEventLog, cassandra_keyspace: TestKeyspace
) -> None:
    base = time.time() - 20
    readings = iter([base, base + 10])  # the first announcement is acknowledged 10 s "late"
    writer_with_clock(log, lambda: next(readings, time.time()))

    await log.append("late", 0, [started("late")])
    await settled(log.feed())

    rows = cassandra_keyspace.admin.execute(
        f"SELECT position FROM {cassandra_keyspace.name}.feed WHERE execution_id = 'late' ALLOW FILTERING"
    )
    assert len(list(rows)) == 2  # announced twice...
    keys, _, _ = await read_all(log.feed())
    assert keys == [("late", 1)]  # ...served once


async def test_a_writer_whose_announcements_stay_late_gives_up(log: CassandraEventLog) -> None:
    ticks = iter(range(10**6))
    writer_with_clock(log, lambda: time.time() - 100 + next(ticks) * 5)  # each ack 5 s "late"

    with pytest.raises(BackendUnavailable, match=r"feed rows take longer than 1\.0s"):
        await log.append("slow", 0, [started("slow")])

    assert await log.summary("slow") is None  # never proposed


async def test_feed_delay_comes_from_the_url(cassandra_keyspace: TestKeyspace) -> None:
    assert CassandraEventLog.from_url(cassandra_keyspace.url).feed().delay == 5.0
    assert CassandraEventLog.from_url(f"{cassandra_keyspace.url}?feed_delay=0.5").feed().delay == 0.5
    with pytest.raises(ValueError, match="feed_delay must be positive"):
        CassandraEventLog.from_url(f"{cassandra_keyspace.url}?feed_delay=0")
