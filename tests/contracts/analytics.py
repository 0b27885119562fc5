"""The analytics store contract, and the projection over a real feed: each backend subclasses it.

A subclass says how to build a started event log that keeps an analytics store. The projection
tests append generated histories (known answers) to the log, follow its feed with the runner and
compare the stored figures with the pure fold's.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.analytics import queries
from orchestrator.analytics.cells import DAY_SECONDS, CellRow, is_daily
from orchestrator.analytics.fold import Aggregates
from orchestrator.analytics.projection import NAME, AnalyticsProjection
from orchestrator.analytics.reader import AnalyticsReader, Window
from orchestrator.analytics.store import AnalyticsSource, AnalyticsStore
from orchestrator.ports import EventLog, FeedSource
from orchestrator.projections.runner import ProjectionRunner
from schemas.envelope import Envelope
from tests.analytics_histories import StepPlan, history
from tests.contracts.feed import settled

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
EVERYTHING = Window(0, 2**40)


def store_of(log: EventLog) -> AnalyticsStore:
    assert isinstance(log, AnalyticsSource)
    return log.analytics()


def workload(tenant: str = "default") -> list[list[Envelope]]:
    """12 executions of two workflows over three hours; known outcomes (see the assertions)."""
    out = []
    for i in range(12):
        workflow = "order" if i % 2 == 0 else "refund"
        steps = [
            StepPlan("check", queue=0.2, run=0.5 + i / 10),
            StepPlan("pay", run=1.0, retried=("http.503",) * (i % 3), fails="card.declined" if i % 4 == 3 else None),
        ]
        out.append(history(f"{tenant}-{i}", workflow, T0 + 900 * i, steps, tenant=tenant))
    return out


async def append_all(log: EventLog, histories: list[list[Envelope]]) -> None:
    """Appended in time order, a few events at a time, as executions interleave."""
    pending = {h[0].subject: list(h) for h in histories}
    done: dict[str, int] = {}
    while pending:
        for execution_id in list(pending):
            events = pending[execution_id]
            chunk, pending[execution_id] = events[:3], events[3:]
            await log.append(execution_id, done.get(execution_id, 0), chunk)
            done[execution_id] = done.get(execution_id, 0) + len(chunk)
            if not pending[execution_id]:
                del pending[execution_id]


def expected(histories: list[list[Envelope]]) -> Aggregates:
    aggregates = Aggregates()
    for n, envelope in enumerate(sorted((e for h in histories for e in h), key=lambda e: e.time), 1):
        aggregates.apply(n, envelope)
    return aggregates


async def caught_up(log: EventLog, runner: ProjectionRunner, timeout: float = 30.0) -> None:
    assert isinstance(log, FeedSource)
    await settled(runner.feed)  # head() covers what has settled
    head = await runner.feed.head()
    deadline = asyncio.get_running_loop().time() + timeout + runner.feed.delay
    while runner.positions.get(NAME, 0) < head:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the projection stands at {runner.positions.get(NAME)}, not {head}")
        runner.nudge()
        await asyncio.sleep(0.05)


def days_workload() -> list[list[Envelope]]:
    """16 executions over four days (two failing), so three days close and are rolled up."""
    out = []
    for i in range(16):
        steps = [StepPlan("check", run=0.3 + i / 20), StepPlan("pay", run=1.0, fails="card.declined" if i % 8 == 7 else None)]
        out.append(history(f"d-{i}", "order" if i % 2 else "refund", T0 + 21_600 * i + 60, steps))
    return out


class Counting:
    """A store whose ``cells`` reads are counted (rows read), forwarding everything."""

    def __init__(self, store: AnalyticsStore) -> None:
        self.store, self.rows = store, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    async def cells(self, tenant: str, workflow: str | None, since: int, until: int) -> list[CellRow]:
        rows = await self.store.cells(tenant, workflow, since, until)
        self.rows += len(rows)
        return rows


class AnalyticsContract(ABC):
    @abstractmethod
    async def make_log(self, tmp_path: Path) -> EventLog:
        """A started, empty log keeping an analytics store; durable backends reopen the same data."""

    @pytest.fixture
    async def log(self, tmp_path: Path) -> AsyncIterator[EventLog]:
        log = await self.make_log(tmp_path)
        try:
            yield log
        finally:
            await log.stop()

    async def test_cells_by_tenant_workflow_and_hour_upserted(self, log: EventLog) -> None:
        store = store_of(log)
        await store.save(
            [("t1", "w", 1, "", 3600, '{"c":{"started":1}}'), ("t1", "w", 1, "a", 7200, "{}"),
             ("t1", "x", 2, "", 3600, "{}"), ("t2", "w", 1, "", 3600, "{}")],
            [("e1", '{"q":1}')],
            [("t1", "w", 7000.5, "e1", "", '{"n":1}'), ("t1", "x", 7200.0, "e2", "a", "{}"),
             ("t2", "w", 7100.0, "e3", "", "{}")],
        )  # fmt: skip
        await store.save(
            [("t1", "w", 1, "", 3600, '{"c":{"started":2}}')], [("e1", '{"q":2}')],
            [("t1", "w", 7000.5, "e1", "", '{"n":2}')],  # replayed: replaces
        )  # fmt: skip
        assert sorted(await store.cells("t1", "w", 0, 10_000)) == [
            ("t1", "w", 1, "", 3600, '{"c":{"started":2}}'), ("t1", "w", 1, "a", 7200, "{}"),
        ]  # fmt: skip
        assert sorted(r[1] for r in await store.cells("t1", None, 0, 10_000)) == ["w", "w", "x"]
        assert [r[4] for r in await store.cells("t1", "w", 3601, 10_000)] == [7200]
        assert await store.cells("t1", "w", 0, 3600) == []
        cells, tracks = await store.load()
        assert len(cells) == 4 and tracks == [("e1", '{"q":2}')]
        assert await store.breaches("t1", None, 0, 10_000, 10) == [
            ("t1", "x", 7200.0, "e2", "a", "{}"), ("t1", "w", 7000.5, "e1", "", '{"n":2}'),
        ]  # fmt: skip
        assert [b[3] for b in await store.breaches("t1", "w", 0, 10_000, 10)] == ["e1"]
        assert [b[3] for b in await store.breaches("t1", None, 0, 10_000, 1)] == ["e2"]
        assert await store.breaches("t1", None, 7000.5 + 1, 7200.0, 10) == []
        await store.clear()
        assert await store.load() == ([], [])
        assert await store.breaches("t1", None, 0, 10_000, 10) == []

    async def test_the_projection_stores_what_the_fold_computes(self, log: EventLog) -> None:
        histories = workload() + workload("other")
        await append_all(log, histories)
        assert isinstance(log, FeedSource)
        store = store_of(log)
        runner = ProjectionRunner(log.feed(), log.checkpoints(), poll_interval=0.05, page=7)
        runner.add(AnalyticsProjection(store))
        await runner.start()
        try:
            await caught_up(log, runner)
        finally:
            await runner.stop()
        reader = AnalyticsReader(store)
        cells = await reader.cells("default", EVERYTHING)
        want = [(k, c) for k, c in expected(histories).cells.items() if k.tenant == "default"]
        assert queries.overview(cells) == queries.overview(want)
        assert queries.steps(cells) == queries.steps(want)
        assert queries.failures(cells) == queries.failures(want)
        overview = queries.overview(cells)
        assert (overview["started"], overview["succeeded"], overview["failed"]) == (12, 9, 3)
        retries = {(r["workflow"], r["step"]): r["retries"] for r in queries.retries(cells)}
        assert retries == {("order", "pay"): 6, ("refund", "pay"): 6}  # i % 3 retries of order i
        only = await reader.cells("default", EVERYTHING, "refund")
        assert queries.overview(only)["started"] == 6

    async def test_a_restart_and_a_rebuild_count_nothing_twice(self, log: EventLog) -> None:
        histories = workload()
        await append_all(log, histories[:6])
        assert isinstance(log, FeedSource)
        store = store_of(log)

        async def follow() -> ProjectionRunner:
            runner = ProjectionRunner(log.feed(), log.checkpoints(), poll_interval=0.05, page=5)
            runner.add(AnalyticsProjection(store))
            await runner.start()
            await caught_up(log, runner)
            return runner

        await (await follow()).stop()
        await append_all(log, histories[6:])
        runner = await follow()  # a new process: loads the cells, resumes at the checkpoint
        reader = AnalyticsReader(store)
        want = list(expected(histories).cells.items())
        assert queries.steps(await reader.cells("default", EVERYTHING)) == queries.steps(want)
        await runner.rebuild(NAME)
        await caught_up(log, runner)
        await runner.stop()
        assert queries.steps(await reader.cells("default", EVERYTHING)) == queries.steps(want)
        assert queries.overview(await reader.cells("default", EVERYTHING)) == queries.overview(want)

    async def test_closed_days_are_rolled_up_and_answer_as_their_hours(self, log: EventLog) -> None:
        histories = days_workload()
        await append_all(log, histories)
        assert isinstance(log, FeedSource)
        store = store_of(log)
        runner = ProjectionRunner(log.feed(), log.checkpoints(), poll_interval=0.05, page=9)
        runner.add(AnalyticsProjection(store))
        await runner.start()
        try:
            await caught_up(log, runner)
        finally:
            await runner.stop()
        stored, _ = await store.load()
        days = sorted({(bucket - (-(2**62))) * DAY_SECONDS for *_, bucket, _ in stored if is_daily(bucket)})
        assert days == [int(T0), int(T0) + DAY_SECONDS, int(T0) + 2 * DAY_SECONDS]  # the fourth is open
        want = list(expected(histories).cells.items())
        window = Window(int(T0) - 7200, int(T0) + 5 * DAY_SECONDS)
        counting = Counting(store)
        daily = await AnalyticsReader(counting).cells("default", window, daily=True)  # type: ignore[arg-type]
        hourly = await AnalyticsReader(store).cells("default", window)
        for figure in (queries.overview, queries.steps, queries.failures, queries.retries, queries.bottlenecks):
            assert figure(daily) == figure(want) == figure(hourly)
        assert queries.rates(daily, 86400) == queries.rates(want, 86400)
        hours_read = len([r for r in stored if not is_daily(r[4])])
        assert counting.rows < hours_read  # the closed days came as one row per cell and day
        partial = Window(int(T0) + 3600 * 5, int(T0) + DAY_SECONDS * 2 + 3600 * 7)  # ends mid-day
        in_hours = [(k, c) for k, c in want if partial.since <= k.bucket < partial.until]
        assert queries.overview(await AnalyticsReader(store).cells("default", partial, daily=True)) == queries.overview(in_hours)
