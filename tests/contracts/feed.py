"""The EventFeed and Checkpoints contract: each backend's test subclasses FeedContract.

The feed is served by the event log (``FeedSource``); a subclass says how to build a started log.
Reads wait the feed's ``delay`` first, so a backend that settles (Cassandra) passes the same tests.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.ports import ConcurrencyError, EventFeed, EventLog, FeedPage, FeedSource
from schemas.fields import FieldFeed, of_envelope
from tests.contracts.factories import event, history, started

Key = tuple[str, int]  # (execution id, sequence)


async def settled(feed: EventFeed) -> None:
    """Wait until every append made so far is past the feed's settle delay."""
    if feed.delay:
        await asyncio.sleep(feed.delay + 0.05)


async def read_all(feed: EventFeed, after: int = 0, limit: int = 1000) -> tuple[list[Key], list[int], int]:
    """Follow the feed page by page to its end: (events, their positions, where it ended)."""
    keys: list[Key] = []
    positions: list[int] = []
    for _ in range(10_000):
        page = await feed.read_after(after, limit)
        check_page(page, after, limit)
        keys += [(e.subject, e.sequence) for _, e in page.items]
        positions += [p for p, _ in page.items]
        if not page.items:
            return keys, positions, page.last
        after = page.last
    raise AssertionError("the feed does not end")


def check_page(page: FeedPage, after: int, limit: int) -> None:
    """Positions after ``after``, non-decreasing, at most ``last``; over ``limit`` only to finish
    a group of events sharing the last position."""
    positions = [p for p, _ in page.items]
    assert positions == sorted(positions)
    assert all(after < p <= page.last for p in positions)
    assert page.last >= after
    if len(positions) > limit:
        assert set(positions[limit - 1 :]) == {positions[-1]}


def feed_of(log: EventLog) -> EventFeed:
    assert isinstance(log, FeedSource)
    return log.feed()


class FeedContract(ABC):
    @abstractmethod
    async def make_log(self, tmp_path: Path) -> EventLog:
        """A started log that is a FeedSource; durable backends reopen the same data."""

    @pytest.fixture
    async def log(self, tmp_path: Path) -> AsyncIterator[EventLog]:
        log = await self.make_log(tmp_path)
        try:
            yield log
        finally:
            await log.stop()

    async def test_an_empty_feed_has_nothing_after_zero(self, log: EventLog) -> None:
        feed = feed_of(log)
        page = await feed.read_after(0)
        assert page.items == []
        assert page.last >= 0
        assert await feed.head() >= 0

    async def test_every_event_in_commit_order(self, log: EventLog) -> None:
        feed = feed_of(log)
        await log.append("a", 0, history("a", 2))
        await log.append("b", 0, [started("b")])
        await log.append("a", 2, [event("a", 3), event("a", 4)])
        await log.append("b", 1, [event("b", 2)])
        await settled(feed)

        keys, positions, _ = await read_all(feed)

        assert keys == [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("a", 4), ("b", 2)]
        assert positions[1] < positions[2] < positions[3] <= positions[4] < positions[5]
        page = await feed.read_after(0)
        assert [e for _, e in page.items][:2] == history("a", 2)  # the envelopes as appended

    async def test_a_reader_resumes_from_the_last_position(self, log: EventLog) -> None:
        feed = feed_of(log)
        for n in range(5):
            await log.append(f"x{n}", 0, [started(f"x{n}")])
        await settled(feed)
        first, _, mark = await read_all(feed)
        assert (await feed.read_after(mark)).items == []

        await log.append("x0", 1, [event("x0", 2)])
        await log.append("y", 0, history("y", 2))
        await settled(feed)
        rest, _, _ = await read_all(feed, after=mark)

        assert first == [(f"x{n}", 1) for n in range(5)]
        assert rest == [("x0", 2), ("y", 1), ("y", 2)]

    async def test_pages_respect_the_limit_and_join_up(self, log: EventLog) -> None:
        feed = feed_of(log)
        for n in range(7):
            await log.append(f"p{n}", 0, [started(f"p{n}")])
        await log.append("p0", 1, [event("p0", 2), event("p0", 3), event("p0", 4)])
        await settled(feed)

        whole, _, _ = await read_all(feed)
        paged, _, _ = await read_all(feed, limit=2)

        assert paged == whole
        assert len(whole) == 10 and len(set(whole)) == 10
        page = await feed.read_after(0, 3)
        assert 1 <= len(page.items) <= 5  # three, or up to the end of a shared position

    async def test_fields_are_the_envelopes_values(self, log: EventLog) -> None:
        feed = feed_of(log)
        assert isinstance(feed, FieldFeed)
        await log.append("f", 0, [started("f", "orders", version=3, tenant="acme", input={"n": 1})])
        await log.append("f", 1, [event("f", 2, data={"step": "a", "big": 12345678901234567890123})])
        await log.append("g", 0, history("g", 3))
        await settled(feed)
        wanted = {"StepSucceeded"}

        read = await feed.read_after(0, 100)
        envelopes = read.items
        whole = await feed.read_fields_after(0, 100, wanted)
        paged, after = [], 0
        while page := await feed.read_fields_after(after, 2, wanted):
            if not page.items:
                break
            paged += page.items
            after = page.last

        expected = [of_envelope(at, envelope, wanted) for at, envelope in envelopes]
        assert whole.items == expected == paged
        assert [item[1] for item in expected] == ["ExecutionStarted", "StepSucceeded", *["ExecutionStarted"],
                                                  "StepSucceeded", "StepSucceeded"]  # fmt: skip
        assert expected[0][5:8] == ("acme", "orders", 3) and expected[0][8] is None  # no data asked for
        assert expected[1][8] == {"step": "a", "big": 12345678901234567890123}  # exact, past 64 bits
        assert whole.last >= read.last  # the same, or later where the feed's horizon moves on

    async def test_head_is_at_or_after_every_event(self, log: EventLog) -> None:
        feed = feed_of(log)
        await log.append("h", 0, history("h", 3))
        await settled(feed)

        _, positions, _ = await read_all(feed)
        head = await feed.head()

        assert head >= max(positions)
        assert (await feed.read_after(head)).items == []

    async def test_concurrent_appends_are_never_skipped(self, log: EventLog) -> None:
        """Many executions append at once while a reader follows the feed page by page."""
        feed = feed_of(log)
        writers, length = 20, 6
        expected = {(f"c{w}", s) for w in range(writers) for s in range(1, length + 1)}
        done = asyncio.Event()

        async def write(w: int) -> None:
            execution_id = f"c{w}"
            await log.append(execution_id, 0, [started(execution_id)])
            for sequence in range(2, length + 1):
                await log.append(execution_id, sequence - 1, [event(execution_id, sequence)])
                await asyncio.sleep(0)

        async def follow() -> list[Key]:
            seen: list[Key] = []
            after = 0
            while True:
                finished = done.is_set()
                page = await feed.read_after(after, 7)
                check_page(page, after, 7)
                seen += [(e.subject, e.sequence) for _, e in page.items]
                after = page.last
                if finished and not page.items and set(seen) >= expected:
                    return seen
                if not page.items:
                    await asyncio.sleep(0.01)

        reader = asyncio.create_task(follow())
        await asyncio.gather(*(write(w) for w in range(writers)))
        await settled(feed)
        done.set()
        seen = await asyncio.wait_for(reader, 60)

        assert set(seen) == expected and len(seen) == len(expected)
        for w in range(writers):  # each execution's events in sequence order
            assert [s for e, s in seen if e == f"c{w}"] == list(range(1, length + 1))

    async def test_rejected_appends_are_not_in_the_feed(self, log: EventLog) -> None:
        feed = feed_of(log)
        await log.append("r", 0, [started("r")])
        candidates = [event("r", 2, data={"writer": n}) for n in range(5)]
        outcomes = await asyncio.gather(*(log.append("r", 1, [c]) for c in candidates), return_exceptions=True)
        with pytest.raises(ConcurrencyError):
            await log.append("r", 0, [started("r", input={"again": True})])
        await settled(feed)

        page = await feed.read_after(0)

        winner = candidates[outcomes.index(None)]
        assert [e for _, e in page.items] == [started("r"), winner]

    async def test_events_of_deleted_executions_are_absent(self, log: EventLog) -> None:
        feed = feed_of(log)
        await log.append("gone", 0, history("gone", 3))
        await log.append("kept", 0, history("kept", 2))
        await settled(feed)
        _, _, mark = await read_all(feed)

        assert await log.delete_execution("gone")
        await log.append("kept", 2, [event("kept", 3)])
        await settled(feed)

        keys, _, _ = await read_all(feed)
        assert keys == [("kept", 1), ("kept", 2), ("kept", 3)]
        later, _, _ = await read_all(feed, after=mark)
        assert later == [("kept", 3)]

    async def test_checkpoints_start_at_zero_and_keep_the_last_save(self, log: EventLog) -> None:
        assert isinstance(log, FeedSource)
        checkpoints = log.checkpoints()
        assert await checkpoints.load("audit") == 0
        await checkpoints.save("audit", 17)
        await checkpoints.save("search", 3)
        await checkpoints.save("audit", 42)
        assert await checkpoints.load("audit") == 42
        assert await checkpoints.load("search") == 3
        assert await log.checkpoints().load("audit") == 42  # another handle, same store
