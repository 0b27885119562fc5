"""The Timers contract: each backend's test subclasses TimersContract to say how to build it.

The callback used here behaves like the effects layer: it cancels the timer it was told about
(the effects cancel a timer once its TimerFired event is applied), so "fires once" is checkable
on every backend, including those that keep a fired timer until it is cancelled.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.ports import Timers

PROMPT = 1.0  # a due timer fires within this many seconds
ON_TIME = 0.5  # a future timer fires at most this late


class OneShard:
    """``Shards`` for a single process: everything in shard 0, all shards owned."""

    def shard_of(self, execution_id: str) -> int:
        return 0

    def owned_shards(self) -> set[int] | None:
        return None


@dataclass
class Recorder:
    """An ``on_due`` that records each fire (execution, timer, clock time) and cancels the timer."""

    clock: Callable[[], float] = time.time
    cancel: bool = True
    timers: Timers | None = None
    fired: list[tuple[str, str, float]] = field(default_factory=list)

    async def __call__(self, execution_id: str, timer_id: str) -> None:
        self.fired.append((execution_id, timer_id, self.clock()))
        if self.cancel and self.timers is not None:
            await self.timers.cancel(execution_id, timer_id)

    @property
    def keys(self) -> list[tuple[str, str]]:
        return [(execution_id, timer_id) for execution_id, timer_id, _ in self.fired]

    async def until(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` fires were recorded; False on timeout."""
        deadline = time.monotonic() + timeout
        while len(self.fired) < count:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True


@dataclass
class Running:
    timers: Timers
    recorder: Recorder


class TimersContract(ABC):
    @abstractmethod
    async def make_timers(self, tmp_path: Path, clock: Callable[[], float]) -> Timers:
        """A timers backend, not started; durable backends share data between calls per path."""

    @pytest.fixture
    async def running(self, tmp_path: Path) -> AsyncIterator[Running]:
        timers = await self.make_timers(tmp_path, time.time)
        recorder = Recorder(timers=timers)
        await timers.start(recorder, OneShard())
        try:
            yield Running(timers, recorder)
        finally:
            await timers.stop()

    async def test_a_timer_due_in_the_past_fires_once_promptly(self, running: Running) -> None:
        began = time.time()
        await running.timers.schedule("e1", "t1", began - 30)

        assert await running.recorder.until(1, PROMPT)
        assert running.recorder.fired[0][2] - began < PROMPT
        await asyncio.sleep(0.6)
        assert running.recorder.keys == [("e1", "t1")]

    async def test_a_future_timer_fires_at_its_time(self, running: Running) -> None:
        due = time.time() + 1.0
        await running.timers.schedule("e1", "t1", due)

        assert await running.recorder.until(1, 1.0 + ON_TIME + 0.5)
        fired_at = running.recorder.fired[0][2]
        assert due <= fired_at <= due + ON_TIME

    async def test_cancel_prevents_firing(self, running: Running) -> None:
        await running.timers.schedule("e1", "t1", time.time() + 0.4)
        await running.timers.schedule("e1", "t2", time.time() + 0.4)
        await running.timers.cancel("e1", "t1")
        await running.timers.cancel("e1", "never-armed")
        await running.timers.cancel("nobody", "t1")

        assert await running.recorder.until(1, 1.0 + ON_TIME)
        await asyncio.sleep(0.5)
        assert running.recorder.keys == [("e1", "t2")]

    async def test_scheduling_again_with_a_new_due_time_moves_the_timer(self, running: Running) -> None:
        first = time.time() + 0.3
        await running.timers.schedule("e1", "t1", first)
        await running.timers.schedule("e1", "t1", first + 0.9)

        assert await running.recorder.until(1, 1.2 + ON_TIME + 0.5)
        assert running.recorder.fired[0][2] >= first + 0.9
        await asyncio.sleep(0.5)
        assert running.recorder.keys == [("e1", "t1")]

    async def test_scheduling_the_same_timer_twice_fires_it_once(self, running: Running) -> None:
        due = time.time() + 0.3
        await running.timers.schedule("e1", "t1", due)
        await running.timers.schedule("e1", "t1", due)

        assert await running.recorder.until(1, 0.3 + ON_TIME + 0.5)
        await asyncio.sleep(0.6)
        assert running.recorder.keys == [("e1", "t1")]

    async def test_timers_due_together_fire_in_due_order(self, running: Running) -> None:
        due = time.time() + 0.5
        for n in reversed(range(5)):  # scheduled latest first
            await running.timers.schedule(f"e{n}", "t", due + n * 0.01)

        assert await running.recorder.until(5, 0.5 + ON_TIME + 0.5)
        assert running.recorder.keys == [(f"e{n}", "t") for n in range(5)]

    async def test_many_timers_of_many_executions_each_fire_once(self, running: Running) -> None:
        now = time.time()
        expected = {(f"e{n}", f"t{n % 3}") for n in range(60)}
        for n, (execution_id, timer_id) in enumerate(sorted(expected)):
            await running.timers.schedule(execution_id, timer_id, now - 5 + (n % 12) * 0.5)

        assert await running.recorder.until(60, 1.5 + ON_TIME + PROMPT)
        await asyncio.sleep(0.5)
        assert sorted(running.recorder.keys) == sorted(expected)

    async def test_timers_scheduled_before_a_restart_fire_after_it(self, running: Running) -> None:
        await running.timers.stop()
        due = time.time() + 0.8
        await running.timers.start(running.recorder, OneShard())
        await running.timers.schedule("e1", "t1", due)
        await running.timers.stop()
        assert running.recorder.fired == []

        await running.timers.start(running.recorder, OneShard())
        restarted = time.time()  # a slow restart (a loaded Cassandra) may end after it was due
        assert await running.recorder.until(1, 0.8 + ON_TIME + 0.5)
        assert due <= running.recorder.fired[0][2] <= max(due, restarted) + ON_TIME

    async def test_schedule_called_before_start_takes_effect_once_started(self, tmp_path: Path) -> None:
        timers = await self.make_timers(tmp_path, time.time)
        recorder = Recorder(timers=timers)
        early = asyncio.create_task(timers.schedule("e1", "t1", time.time() - 1))
        await asyncio.sleep(0.05)
        await timers.start(recorder, OneShard())
        try:
            await asyncio.wait_for(early, 10)
            assert await recorder.until(1, PROMPT)
            assert recorder.keys == [("e1", "t1")]
        finally:
            await timers.stop()
