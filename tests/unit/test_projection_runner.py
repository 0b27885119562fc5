"""The projection runner over the in-memory feed: order, checkpoints, wake-ups, failures, rebuilds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from orchestrator.backends.memory import MemoryEventLog
from orchestrator.ports import EventFeed, FeedPage
from orchestrator.projections.runner import ProjectionRunner
from schemas.envelope import Envelope
from schemas.fields import Fields, of_envelope
from tests.contracts.factories import event, history, started
from tests.fake_sources import eventually

Key = tuple[str, int]


class Recorder:
    """Keeps every event it is given; can be told to fail on some."""

    def __init__(self, name: str = "recorder") -> None:
        self.name = name
        self.applied: list[Key] = []
        self.flushed: list[Key] = []
        self.fail_on: dict[Key, int] = {}  # event -> how many more times to fail on it
        self.fail_flush = 0
        self.resets = 0

    async def apply(self, position: int, envelope: Envelope) -> None:
        key = (envelope.subject, envelope.sequence)
        if self.fail_on.get(key, 0) > 0:
            self.fail_on[key] -= 1
            raise RuntimeError(f"cannot take {key}")
        self.applied.append(key)

    async def flush(self) -> None:
        if self.fail_flush:
            self.fail_flush -= 1
            raise ConnectionError("sink down")
        self.flushed = list(self.applied)

    async def reset(self) -> None:
        self.resets += 1
        self.applied, self.flushed = [], []


class CountingFeed:
    """A feed that counts its reads."""

    def __init__(self, feed: EventFeed) -> None:
        self._feed = feed
        self.delay = feed.delay
        self.reads = 0

    async def read_after(self, position: int, limit: int = 1000) -> FeedPage:
        self.reads += 1
        return await self._feed.read_after(position, limit)

    async def head(self) -> int:
        return await self._feed.head()


@pytest.fixture
async def log() -> AsyncIterator[MemoryEventLog]:
    log = MemoryEventLog()
    await log.start()
    yield log
    await log.stop()


def runner_for(log: MemoryEventLog, *, poll: float = 30.0, page: int = 500) -> ProjectionRunner:
    return ProjectionRunner(log.feed(), log.checkpoints(), poll_interval=poll, page=page)


async def test_every_event_is_applied_in_feed_order_and_checkpointed(log: MemoryEventLog) -> None:
    await log.append("a", 0, history("a", 3))
    await log.append("b", 0, [started("b")])
    recorder = Recorder()
    runner = runner_for(log, page=2)  # several pages
    runner.add(recorder)

    async with runner:
        await eventually(lambda: len(recorder.applied) == 4)
        await eventually(lambda: runner.positions.get("recorder") == 4)

    assert recorder.applied == recorder.flushed == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    assert await log.checkpoints().load("recorder") == 4


async def test_a_restart_resumes_from_the_checkpoint(log: MemoryEventLog) -> None:
    await log.append("a", 0, history("a", 2))
    first = Recorder()
    runner = runner_for(log)
    runner.add(first)
    async with runner:
        await eventually(lambda: runner.positions.get("recorder") == 2)
    await log.append("a", 2, [event("a", 3)])

    again = Recorder()
    runner = runner_for(log)
    runner.add(again)
    async with runner:
        await eventually(lambda: runner.positions.get("recorder") == 3)

    assert again.applied == [("a", 3)]  # nothing before the checkpoint comes again


async def test_a_nudge_wakes_an_idle_projection_at_once(log: MemoryEventLog) -> None:
    recorder = Recorder()
    runner = runner_for(log, poll=60.0)  # the poll alone would take a minute
    runner.add(recorder)
    async with runner:
        await asyncio.sleep(0.05)
        await log.append("n", 0, [started("n")])
        runner.nudge()
        await eventually(lambda: recorder.applied == [("n", 1)], timeout=2.0)


async def test_an_idle_runner_polls_without_busy_looping(log: MemoryEventLog) -> None:
    feed = CountingFeed(log.feed())
    runner = ProjectionRunner(feed, log.checkpoints(), poll_interval=0.1)
    recorder = Recorder()
    runner.add(recorder)
    async with runner:
        await asyncio.sleep(0.55)
        idle_reads = feed.reads
        await log.append("p", 0, [started("p")])  # no nudge: the poll finds it
        await eventually(lambda: recorder.applied == [("p", 1)], timeout=2.0)

    assert 3 <= idle_reads <= 8


async def test_a_failing_projection_retries_the_same_event_and_others_go_on(log: MemoryEventLog) -> None:
    await log.append("f", 0, history("f", 3))
    failing, healthy = Recorder("failing"), Recorder("healthy")
    failing.fail_on[("f", 2)] = 3
    runner = runner_for(log)
    runner.add(failing)
    runner.add(healthy)

    async with runner:
        await eventually(lambda: healthy.applied == [("f", 1), ("f", 2), ("f", 3)])
        await eventually(lambda: "failing" in runner.failures)
        assert "cannot take ('f', 2)" in runner.failures["failing"]
        await eventually(lambda: runner.positions.get("failing") == 3, timeout=5.0)

    assert "failing" not in runner.failures
    # retried from its checkpoint (0): the event before the failing one came again, none skipped
    assert failing.applied == [("f", 1)] * 4 + [("f", 2), ("f", 3)]


async def test_a_failed_flush_saves_no_checkpoint_so_the_events_come_again(log: MemoryEventLog) -> None:
    await log.append("s", 0, history("s", 2))
    recorder = Recorder()
    recorder.fail_flush = 1
    runner = runner_for(log)
    runner.add(recorder)

    async with runner:
        await eventually(lambda: runner.positions.get("recorder") == 2)

    assert recorder.applied == [("s", 1), ("s", 2), ("s", 1), ("s", 2)]  # at least once
    assert recorder.flushed == recorder.applied


async def test_stop_applies_what_was_committed_before_it(log: MemoryEventLog) -> None:
    recorder = Recorder()
    runner = runner_for(log, poll=60.0)
    runner.add(recorder)
    await runner.start()
    await asyncio.sleep(0.01)
    await log.append("last", 0, history("last", 2))  # no nudge

    await runner.stop()

    assert recorder.applied == [("last", 1), ("last", 2)]


async def test_rebuild_resets_and_replays_from_position_zero(log: MemoryEventLog) -> None:
    await log.append("r", 0, history("r", 2))
    recorder = Recorder()
    runner = runner_for(log)
    runner.add(recorder)
    async with runner:
        await eventually(lambda: runner.positions.get("recorder") == 2)
        await runner.rebuild("recorder")
        await eventually(lambda: runner.positions.get("recorder") == 2)

    assert recorder.resets == 1
    assert recorder.applied == [("r", 1), ("r", 2)]


async def test_an_inactive_process_applies_nothing_and_reloads_the_checkpoint_when_active(
    log: MemoryEventLog,
) -> None:
    await log.append("i", 0, history("i", 3))
    active = False
    recorder = Recorder()
    runner = ProjectionRunner(log.feed(), log.checkpoints(), active=lambda: active, poll_interval=0.02)
    runner.add(recorder)
    async with runner:
        await asyncio.sleep(0.1)
        assert recorder.applied == []
        await log.checkpoints().save("recorder", 2)  # the active process got this far
        active = True
        await eventually(lambda: recorder.applied == [("i", 3)])


def test_projection_names_are_unique(log: MemoryEventLog) -> None:
    runner = runner_for(log)
    runner.add(Recorder("same"))
    with pytest.raises(ValueError, match="already added"):
        runner.add(Recorder("same"))


class Paced(Recorder):
    """A projection that asks to be read at most every ``interval`` seconds, a page at a time."""

    interval = 0.4

    def __init__(self) -> None:
        super().__init__("paced")
        self.pages: list[int] = []

    async def apply_page(self, items: list[tuple[int, Envelope]]) -> None:
        self.pages.append(len(items))
        for position, envelope in items:
            await self.apply(position, envelope)


async def test_a_paced_projection_takes_commits_in_pages_however_often_it_is_nudged(log: MemoryEventLog) -> None:
    feed = CountingFeed(log.feed())
    runner = ProjectionRunner(feed, log.checkpoints(), poll_interval=0.05, page=500)
    paced, eager = Paced(), Recorder("eager")
    runner.add(paced)
    runner.add(eager)
    async with runner:
        await eventually(lambda: paced.pages == [] and feed.reads >= 2, timeout=2.0)
        reads = feed.reads
        for n in range(20):  # a commit and a nudge every 10 ms, for 200 ms
            await log.append(f"e{n}", 0, [started(f"e{n}")])
            runner.nudge()
            await asyncio.sleep(0.01)
        await eventually(lambda: len(paced.applied) == 20, timeout=3.0)
        assert len(paced.pages) <= 2 and sum(paced.pages) == 20  # one read per interval, not per nudge
        assert len(eager.applied) == 20 and feed.reads - reads > len(paced.pages) + 5  # the eager one followed each
        began = asyncio.get_running_loop().time()
    assert asyncio.get_running_loop().time() - began < 0.3  # a stop ends the pause at once


class Lean(Recorder):
    """Takes pages of fields, the data of StepSucceeded only."""

    lean = frozenset({"StepSucceeded"})

    def __init__(self, name: str = "lean") -> None:
        super().__init__(name)
        self.items: list[Fields] = []

    async def apply_page(self, items: list[Fields]) -> None:
        self.items += items


async def test_a_lean_projection_gets_fields_from_a_feed_that_serves_them_or_not(log: MemoryEventLog) -> None:
    await log.append("a", 0, history("a", 2))
    await log.append("b", 0, [started("b", input={"n": 1}), event("b", 2, data={"step": "x"})])
    expected = [of_envelope(at, e, Lean.lean) for at, e in (await log.feed().read_after(0)).items]
    served, converted = Lean(), Lean()
    runner = runner_for(log, page=2)
    runner.add(served)
    other = ProjectionRunner(CountingFeed(log.feed()), log.checkpoints(), poll_interval=30.0, page=2)
    converted.name = "converted"
    other.add(converted)

    async with runner, other:
        await eventually(lambda: len(served.items) == len(converted.items) == 4)

    assert served.items == converted.items == expected
    assert expected[2][1] == "ExecutionStarted" and expected[2][8] is None  # data of StepSucceeded only
    assert expected[3][8] == {"step": "x"}


async def test_a_lean_projection_without_apply_page_fails(log: MemoryEventLog) -> None:
    await log.append("a", 0, history("a", 2))
    recorder = Recorder()
    recorder.lean = frozenset()  # type: ignore[attr-defined]
    runner = runner_for(log)
    runner.add(recorder)

    async with runner:
        await eventually(lambda: "recorder" in runner.failures)

    assert "lean but has no apply_page" in runner.failures["recorder"]
    assert recorder.applied == []
