"""The EventLog contract: each backend's test subclasses EventLogContract to say how to build it."""

from __future__ import annotations

import asyncio
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.core.events import (
    EVENT_AWAITED,
    EXECUTION_CANCELLED,
    EXECUTION_FAILED,
    EXECUTION_STARTED,
    EXECUTION_SUCCEEDED,
    STEP_SCHEDULED,
    STEP_SUCCEEDED,
)
from orchestrator.ports import (
    ConcurrencyError,
    EventLog,
    ExecutionQuery,
    ExecutionSummary,
    Link,
    Snapshot,
)
from schemas.envelope import Envelope
from tests.contracts.factories import at, event, history, started


async def list_all(log: EventLog, query: ExecutionQuery) -> list[ExecutionSummary]:
    """Every page of ``query``, asserting that only the last page has no cursor."""
    items: list[ExecutionSummary] = []
    cursor: str | None = None
    for _ in range(1000):
        page = await log.list_executions(dataclasses.replace(query, cursor=cursor))
        items += page.items
        if page.next_cursor is None:
            return items
        assert len(page.items) == query.limit
        cursor = page.next_cursor
    raise AssertionError("paging does not end")


async def populate(log: EventLog) -> list[ExecutionSummary]:
    """Twelve executions over two workflows and tenants, some finished; returns their summaries."""
    for i in range(12):
        execution_id = f"x{i:02}"
        workflow = "orders" if i % 2 else "billing"
        first = started(
            execution_id, workflow, time=at(i * 10), tenant="acme" if i < 6 else "globex"
        )
        await log.append(execution_id, 0, [first])
        if i % 3 == 1:
            await log.append(
                execution_id, 1, [event(execution_id, 2, EXECUTION_SUCCEEDED, workflow=workflow)]
            )
        elif i % 3 == 2:
            await log.append(
                execution_id, 1, [event(execution_id, 2, EXECUTION_FAILED, workflow=workflow)]
            )
    summaries = [await log.summary(f"x{i:02}") for i in range(12)]
    assert all(s is not None for s in summaries)
    return [s for s in summaries if s is not None]


async def all_ids(log: EventLog) -> list[str]:
    return [execution_id async for execution_id in log.execution_ids()]


def newest_first(summaries: list[ExecutionSummary]) -> list[str]:
    ordered = sorted(summaries, key=lambda s: (s.started_at, s.execution_id), reverse=True)
    return [s.execution_id for s in ordered]


class EventLogContract(ABC):
    @abstractmethod
    async def make_log(self, tmp_path: Path) -> EventLog:
        """A started log; durable backends open the same data when called again with the path."""

    @pytest.fixture
    async def log(self, tmp_path: Path) -> AsyncIterator[EventLog]:
        log = await self.make_log(tmp_path)
        try:
            yield log
        finally:
            await log.stop()

    async def test_round_trip_is_byte_identical(self, log: EventLog) -> None:
        data = {"text": "héllo ✓ 😀", "nested": [1, 2.5, None, True, {"k": "v"}], "big": 2**53}
        events = [
            started("e1", input=data, tenant="acme"),
            dataclasses.replace(
                event("e1", 2, STEP_SCHEDULED, {"step": "call"}, tenant="acme"),
                actor="alice",
                source="/api",
            ),
            event("e1", 3, STEP_SUCCEEDED, {"output": data}, tenant="acme"),
        ]
        await log.append("e1", 0, events)

        back = await log.read("e1")

        assert back == events
        assert [e.to_bytes() for e in back] == [e.to_bytes() for e in events]

    async def test_batches_continue_the_sequence(self, log: EventLog) -> None:
        await log.append("e1", 0, [started("e1"), event("e1", 2)])
        await log.append("e1", 2, [event("e1", 3)])
        await log.append("e1", 3, [event("e1", 4), event("e1", 5), event("e1", 6)])

        assert [e.sequence for e in await log.read("e1")] == [1, 2, 3, 4, 5, 6]
        summary = await log.summary("e1")
        assert summary is not None and summary.last_sequence == 6

    @pytest.mark.parametrize("expected", [0, 1, 2, 4, 9])
    async def test_expected_sequence_must_be_the_last_one(
        self, log: EventLog, expected: int
    ) -> None:
        await log.append("e1", 0, history("e1", 3))
        batch = [started("e1")] if expected == 0 else [event("e1", expected + 1)]

        with pytest.raises(ConcurrencyError) as raised:
            await log.append("e1", expected, batch)

        assert (raised.value.execution_id, raised.value.expected) == ("e1", expected)
        assert await log.read("e1") == history("e1", 3)
        summary = await log.summary("e1")
        assert summary is not None and summary.last_sequence == 3

    async def test_continuing_an_unknown_execution_is_a_conflict(self, log: EventLog) -> None:
        with pytest.raises(ConcurrencyError):
            await log.append("ghost", 2, [event("ghost", 3)])
        assert await log.read("ghost") == []
        assert await log.summary("ghost") is None

    async def test_racing_writers_exactly_one_wins(self, log: EventLog) -> None:
        await log.append("e1", 0, history("e1", 2))
        candidates = [event("e1", 3, data={"writer": n}) for n in range(2)]

        outcomes = await asyncio.gather(
            *(log.append("e1", 2, [c]) for c in candidates), return_exceptions=True
        )

        assert sorted(type(o).__name__ for o in outcomes) == ["ConcurrencyError", "NoneType"]
        winner = candidates[outcomes.index(None)]
        assert await log.read("e1", after_sequence=2) == [winner]

    async def test_racing_starts_exactly_one_wins(self, log: EventLog) -> None:
        candidates = [started("race", input={"writer": n}) for n in range(10)]

        outcomes = await asyncio.gather(
            *(log.append("race", 0, [c]) for c in candidates), return_exceptions=True
        )

        assert outcomes.count(None) == 1
        assert all(isinstance(o, ConcurrencyError) for o in outcomes if o is not None)
        assert await log.read("race") == [candidates[outcomes.index(None)]]

    async def test_contending_writers_that_retry_build_one_gap_free_history(
        self, log: EventLog
    ) -> None:
        await log.append("e1", 0, [started("e1")])

        async def writer(n: int) -> None:
            while True:
                summary = await log.summary("e1")
                assert summary is not None
                last = summary.last_sequence
                try:
                    await log.append("e1", last, [event("e1", last + 1, data={"writer": n})])
                    return
                except ConcurrencyError:
                    await asyncio.sleep(0)

        await asyncio.gather(*(writer(n) for n in range(20)))

        events = await log.read("e1")
        assert [e.sequence for e in events] == list(range(1, 22))
        assert sorted(e.data["writer"] for e in events[1:]) == list(range(20))

    @pytest.mark.parametrize(
        ("expected", "sequences"),
        [(0, [1, 3]), (0, [2]), (1, [3]), (1, [2, 2]), (1, [1])],
        ids=["gap-in-batch", "new-not-at-1", "gap-after-last", "repeat", "backwards"],
    )
    async def test_malformed_batches_are_rejected(
        self, log: EventLog, expected: int, sequences: list[int]
    ) -> None:
        await log.append("e1", 0, [started("e1")])
        batch = [event("e1", s) for s in sequences]

        with pytest.raises(ValueError, match="sequence"):
            await log.append("e1", expected, batch)

        assert await log.read("e1") == [started("e1")]

    async def test_events_of_another_execution_are_rejected(self, log: EventLog) -> None:
        with pytest.raises(ValueError, match="belongs to"):
            await log.append("e1", 0, [started("e1"), event("e2", 2)])
        assert await log.read("e1") == []
        assert await log.read("e2") == []

    async def test_first_event_must_be_execution_started(self, log: EventLog) -> None:
        with pytest.raises(ValueError, match=EXECUTION_STARTED):
            await log.append("e1", 0, [event("e1", 1)])
        assert await log.read("e1") == []
        assert await log.summary("e1") is None

        await log.append("e1", 0, [started("e1")])
        assert await log.read("e1") == [started("e1")]

    async def test_read_pages_through_a_long_history(self, log: EventLog) -> None:
        events = history("long", 1000)
        for start in range(0, 1000, 100):
            await log.append("long", start, events[start : start + 100])

        pages: list[Envelope] = []
        while page := await log.read("long", after_sequence=len(pages), limit=64):
            assert len(page) == min(64, 1000 - len(pages))
            pages += page

        assert pages == events
        assert await log.read("long") == events
        assert await log.read("long", after_sequence=990) == events[990:]
        assert await log.read("long", after_sequence=500, limit=3) == events[500:503]
        assert await log.read("long", after_sequence=1000) == []
        assert await log.read("long", limit=0) == []

    async def test_summary_of_a_running_execution(self, log: EventLog) -> None:
        first = started("child", "orders", time=at(5), version=3, tenant="acme", parent="p1")
        await log.append("child", 0, [first, event("child", 2, workflow="orders", time=at(7))])

        assert await log.summary("child") == ExecutionSummary(
            execution_id="child",
            workflow="orders",
            version=3,
            tenant="acme",
            status="running",
            started_at=at(5),
            updated_at=at(7),
            last_sequence=2,
            parent_id="p1",
        )

    @pytest.mark.parametrize(
        ("terminal", "status"),
        [
            (EXECUTION_SUCCEEDED, "succeeded"),
            (EXECUTION_FAILED, "failed"),
            (EXECUTION_CANCELLED, "cancelled"),
        ],
    )
    async def test_terminal_event_sets_the_status(
        self, log: EventLog, terminal: str, status: str
    ) -> None:
        await log.append("e1", 0, history("e1", 3))
        running = await log.summary("e1")
        assert running is not None and running.status == "running"

        await log.append("e1", 3, [event("e1", 4, terminal, time=at(60))])

        assert await log.summary("e1") == dataclasses.replace(
            running, status=status, updated_at=at(60), last_sequence=4
        )
        page = await log.list_executions(ExecutionQuery(status=status))
        assert [s.execution_id for s in page.items] == ["e1"]
        assert (await log.list_executions(ExecutionQuery(status="running"))).items == []

    async def test_list_filters_newest_first(self, log: EventLog) -> None:
        everything = await populate(log)

        async def ids(**filters: str) -> list[str]:
            page = await log.list_executions(ExecutionQuery(limit=100, **filters))
            assert page.next_cursor is None
            for summary in page.items:
                assert summary == await log.summary(summary.execution_id)
            return [s.execution_id for s in page.items]

        assert await ids() == newest_first(everything)
        assert await ids(workflow="orders") == ["x11", "x09", "x07", "x05", "x03", "x01"]
        assert await ids(status="succeeded") == ["x10", "x07", "x04", "x01"]
        assert await ids(status="failed", workflow="orders") == ["x11", "x05"]
        assert await ids(tenant="globex", status="running") == ["x09", "x06"]
        assert await ids(tenant="acme") == ["x05", "x04", "x03", "x02", "x01", "x00"]
        assert await ids(tenant="acme", workflow="orders") == ["x05", "x03", "x01"]
        assert await ids(tenant="initech") == []
        assert await ids(started_after=at(30), started_before=at(70)) == [
            "x06",
            "x05",
            "x04",
            "x03",
        ]
        assert await ids(started_before=at(20)) == ["x01", "x00"]
        assert await ids(started_after=at(200)) == []
        assert await ids(workflow="nope") == []

    async def test_list_filters_by_definition_version(self, log: EventLog) -> None:
        for n, (workflow, version) in enumerate([("orders", 1), ("orders", 2), ("billing", 2), ("orders", 2)]):
            await log.append(f"v{n}", 0, [started(f"v{n}", workflow, time=at(n * 10), version=version)])

        async def ids(**filters: object) -> list[str]:
            page = await log.list_executions(ExecutionQuery(limit=100, **filters))  # type: ignore[arg-type]
            return [s.execution_id for s in page.items]

        assert await ids(workflow="orders", version=2) == ["v3", "v1"]
        assert await ids(version=2) == ["v3", "v2", "v1"]
        assert await ids(workflow="orders", version=1, status="running") == ["v0"]
        assert await ids(version=3) == []

    async def test_list_filters_by_who_started_and_by_correlation_key(self, log: EventLog) -> None:
        starters = ["trigger:orders/paid", "webhook:shop", "trigger:orders/paid", None]
        for n, actor in enumerate(starters):
            await log.append(f"c{n}", 0, [started(f"c{n}", time=at(n * 10), actor=actor)])
        awaited = {"c0": ["o-1"], "c1": ["o-1"], "c2": ["o-2", "o-3"]}  # c2 waits twice
        for execution_id, keys in awaited.items():
            for offset, key in enumerate(keys):
                data = {"step": "wait", "visit": offset + 1, "event": "paid", "correlation_key": key}
                await log.append(execution_id, offset + 1, [event(execution_id, offset + 2, EVENT_AWAITED, data)])
        await log.append("c3", 1, [event("c3", 2, EVENT_AWAITED, {"step": "w", "event": "e", "correlation_key": None})])

        async def ids(**filters: object) -> list[str]:
            page = await log.list_executions(ExecutionQuery(limit=100, **filters))  # type: ignore[arg-type]
            return [s.execution_id for s in page.items]

        assert await ids(started_by="trigger:orders/paid") == ["c2", "c0"]
        assert await ids(started_by="webhook:shop", correlation_key="o-1") == ["c1"]
        assert await ids(correlation_key="o-1") == ["c1", "c0"]
        assert await ids(correlation_key="o-3") == ["c2"]
        assert await ids(correlation_key="o-2") == []  # the latest wait's key counts
        assert await ids(correlation_key="o-1", workflow="wf", status="running") == ["c1", "c0"]
        assert await ids(started_by="nobody") == []
        summary = await log.summary("c2")
        assert summary is not None
        assert (summary.started_by, summary.correlation_key) == ("trigger:orders/paid", "o-3")
        unkeyed = await log.summary("c3")
        assert unkeyed is not None
        assert (unkeyed.started_by, unkeyed.correlation_key, unkeyed.last_sequence) == (None, None, 2)

    async def test_cursor_paging_covers_every_execution_once(self, log: EventLog) -> None:
        for i in range(45):  # groups of three share a start time: the id breaks the tie
            await log.append(f"e{i:02}", 0, [started(f"e{i:02}", time=at(i // 3))])
        everything = [s for i in range(45) if (s := await log.summary(f"e{i:02}"))]

        paged = await list_all(log, ExecutionQuery(limit=7))

        assert [s.execution_id for s in paged] == newest_first(everything)
        in_range = await list_all(
            log, ExecutionQuery(limit=4, started_after=at(3), started_before=at(9))
        )
        assert [s.execution_id for s in in_range] == [f"e{i:02}" for i in range(26, 8, -1)]

    async def test_cursor_paging_with_filters(self, log: EventLog) -> None:
        everything = await populate(log)
        for query in (
            ExecutionQuery(limit=2, workflow="billing"),
            ExecutionQuery(limit=1, status="running"),
            ExecutionQuery(limit=5, tenant="acme"),
            ExecutionQuery(limit=2, tenant="globex", workflow="orders"),
            ExecutionQuery(limit=1, tenant="globex", status="succeeded"),
            ExecutionQuery(limit=12),
            ExecutionQuery(limit=11),
        ):
            expected = [
                s
                for s in everything
                if query.workflow in (None, s.workflow)
                and query.status in (None, s.status)
                and query.tenant in (None, s.tenant)
            ]
            found = await list_all(log, query)
            assert [s.execution_id for s in found] == newest_first(expected), query

    async def test_concurrent_appends_to_many_executions_all_succeed(self, log: EventLog) -> None:
        ids = [f"c{i:03}" for i in range(200)]

        assert await asyncio.gather(*(log.append(i, 0, [started(i)]) for i in ids)) == [None] * 200
        await asyncio.gather(
            *(log.append(i, 1, [event(i, 2), event(i, 3, EXECUTION_SUCCEEDED)]) for i in ids)
        )

        for execution_id in ids:
            assert await log.read(execution_id) == [
                started(execution_id),
                event(execution_id, 2),
                event(execution_id, 3, EXECUTION_SUCCEEDED),
            ]
        page = await log.list_executions(ExecutionQuery(status="succeeded", limit=500))
        assert sorted(s.execution_id for s in page.items) == ids
        assert {s.last_sequence for s in page.items} == {3}

    async def test_unknown_execution_reads_nothing(self, log: EventLog) -> None:
        assert await log.read("nobody") == []
        assert await log.summary("nobody") is None
        page = await log.list_executions(ExecutionQuery())
        assert (page.items, page.next_cursor) == ([], None)

    async def test_snapshots_latest_at_most_and_replaced(self, log: EventLog) -> None:
        await log.append("s1", 0, history("s1", 12))
        await log.append("s2", 0, history("s2", 3))
        body = bytes(range(256)) * 800  # binary, 200 KiB
        for sequence in (7, 3, 12):
            await log.save_snapshot(Snapshot("s1", sequence, body + bytes([sequence])))
        await log.save_snapshot(Snapshot("s2", 2, b"other"))

        latest = await log.load_snapshot("s1")
        assert latest == Snapshot("s1", 12, body + bytes([12]))
        assert await log.load_snapshot("s1", at_most=100) == latest
        assert await log.load_snapshot("s1", at_most=12) == latest
        assert await log.load_snapshot("s1", at_most=11) == Snapshot("s1", 7, body + bytes([7]))
        assert await log.load_snapshot("s1", at_most=7) == Snapshot("s1", 7, body + bytes([7]))
        assert await log.load_snapshot("s1", at_most=6) == Snapshot("s1", 3, body + bytes([3]))
        assert await log.load_snapshot("s1", at_most=2) is None
        assert await log.load_snapshot("s1", at_most=0) is None
        assert await log.load_snapshot("s2") == Snapshot("s2", 2, b"other")

        await log.save_snapshot(Snapshot("s1", 7, b"replaced"))

        assert await log.load_snapshot("s1", at_most=10) == Snapshot("s1", 7, b"replaced")
        assert await log.load_snapshot("s1") == latest
        assert await log.load_snapshot("s2", at_most=5) == Snapshot("s2", 2, b"other")

    async def test_no_snapshot_is_none(self, log: EventLog) -> None:
        assert await log.load_snapshot("nobody") is None
        assert await log.load_snapshot("nobody", at_most=5) is None
        await log.append("e1", 0, history("e1", 3))
        assert await log.load_snapshot("e1") is None

    async def test_links_are_idempotent_and_oldest_first(self, log: EventLog) -> None:
        await log.append("a", 0, [started("a")])
        links = [
            Link("a", "b", "redriven_as", at(30)),
            Link("a", "c", "redriven_as", at(10)),
            Link("a", "z", "redrive_of", at(20)),
            Link("a", "c", "child", at(40)),  # same other_id, another relation
        ]
        for link in links:
            await log.add_link(link)
        await log.add_link(Link("b", "a", "redrive_of", at(30)))

        await log.add_link(links[0])  # the same link again
        await log.add_link(dataclasses.replace(links[1], created_at=at(50)))  # recorded again

        assert await log.links("a") == [links[1], links[2], links[0], links[3]]
        assert await log.links("b") == [Link("b", "a", "redrive_of", at(30))]
        assert await log.links("nobody") == []

    async def test_execution_ids_yields_every_execution_once(self, log: EventLog) -> None:
        assert await all_ids(log) == []
        ids = [f"i{i:04}" for i in range(1005)]  # more than one page of 1000
        await asyncio.gather(*(log.append(i, 0, [started(i)]) for i in ids))
        await log.append("i0003", 1, [event("i0003", 2)])

        found = await all_ids(log)

        assert len(found) == len(ids)
        assert sorted(found) == ids

    async def test_delete_execution_removes_everything_of_it_and_nothing_else(
        self, log: EventLog
    ) -> None:
        everything = await populate(log)
        for execution_id in ("x03", "x04"):
            await log.save_snapshot(Snapshot(execution_id, 1, b"one"))
            await log.save_snapshot(Snapshot(execution_id, 2, b"two"))
        x03_links = [Link("x03", "x04", "redriven_as", at(1)), Link("x03", "x05", "child", at(2))]
        for link in [*x03_links, Link("x04", "x03", "redrive_of", at(1))]:
            await log.add_link(link)
        kept = {s.execution_id: (await log.read(s.execution_id), s) for s in everything}
        del kept["x03"]

        assert await log.delete_execution("x03") is True

        assert await log.read("x03") == []
        assert await log.summary("x03") is None
        assert await log.load_snapshot("x03") is None
        assert await log.links("x03") == []
        assert sorted(await all_ids(log)) == sorted(kept)
        rest = [s for s in everything if s.execution_id != "x03"]
        for query in (  # x03: orders, running, acme, started at 30
            ExecutionQuery(),
            ExecutionQuery(limit=2),
            ExecutionQuery(workflow="orders"),
            ExecutionQuery(status="running"),
            ExecutionQuery(status="running", workflow="orders", limit=1),
            ExecutionQuery(tenant="acme"),
            ExecutionQuery(started_after=at(30), started_before=at(31)),
        ):
            expected = [
                s
                for s in rest
                if query.workflow in (None, s.workflow)
                and query.status in (None, s.status)
                and query.tenant in (None, s.tenant)
                and (query.started_after is None or s.started_at >= query.started_after)
                and (query.started_before is None or s.started_at < query.started_before)
            ]
            found = await list_all(log, query)
            assert [s.execution_id for s in found] == newest_first(expected), query
        for execution_id, (events, summary) in kept.items():  # the others are untouched
            assert await log.read(execution_id) == events
            assert await log.summary(execution_id) == summary
        assert await log.load_snapshot("x04") == Snapshot("x04", 2, b"two")
        assert await log.links("x04") == [Link("x04", "x03", "redrive_of", at(1))]

        assert await log.delete_execution("x03") is False
        assert await log.delete_execution("ghost") is False
        await log.append("x00", 1, [event("x00", 2, workflow="billing")])  # still writable
        assert [e.sequence for e in await log.read("x00")] == [1, 2]

    async def test_deleting_every_execution_leaves_an_empty_log(self, log: EventLog) -> None:
        everything = await populate(log)

        deleted = await asyncio.gather(*(log.delete_execution(s.execution_id) for s in everything))

        assert deleted == [True] * len(everything)
        assert await all_ids(log) == []
        page = await log.list_executions(ExecutionQuery())
        assert (page.items, page.next_cursor) == ([], None)
