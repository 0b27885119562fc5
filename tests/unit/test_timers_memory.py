"""The in-memory timers pass the Timers contract; fired timers fire again until cancelled, and
cancelled ones free their heap entries."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.backends.memory_timers import COMPACT_AT, MemoryTimers
from orchestrator.ports import Timers
from tests.contracts.timers import OneShard, Recorder, TimersContract


class TestMemoryTimers(TimersContract):
    async def make_timers(self, tmp_path: Path, clock: Callable[[], float]) -> Timers:
        return MemoryTimers.from_url("memory://", clock)


async def test_a_timer_fires_again_until_cancelled() -> None:
    """A fire whose TimerFired was not recorded leaves the timer armed: it fires again."""
    timers = MemoryTimers.from_url("memory://?timer_retry_s=0.05", time.time)
    failures = 2

    async def on_due(execution_id: str, timer_id: str) -> None:
        nonlocal failures
        recorder.fired.append((execution_id, timer_id, time.time()))
        if failures:
            failures -= 1
            raise ConnectionError("the event log is away")
        await timers.cancel(execution_id, timer_id)

    recorder = Recorder()
    await timers.start(on_due, OneShard())
    try:
        await timers.schedule("e1", "t1", time.time())
        assert await recorder.until(3, 2.0)
        first, second, third = (at for *_, at in recorder.fired)
        assert second - first >= 0.025 and third - second >= 0.05  # backs off, doubling
        assert len(timers) == 0
        await recorder.until(4, 0.3)
        assert len(recorder.fired) == 3  # cancelled: no more fires
    finally:
        await timers.stop()


async def test_cancelled_timers_free_their_heap_entries() -> None:
    timers = MemoryTimers(time.time)
    later = time.time() + 3600
    for n in range(10_000):
        await timers.schedule(f"e{n}", "timeout", later + n)
    assert len(timers) == timers.heap_size == 10_000
    for n in range(9_990):
        await timers.cancel(f"e{n}", "timeout")
    assert len(timers) == 10
    assert timers.heap_size <= max(2 * len(timers), COMPACT_AT)  # not 10,000 entries kept
    for n in range(10):  # moving timers leaves stale entries too: they are compacted as well
        for step in range(20):
            await timers.schedule(f"e{9_990 + n}", "timeout", later + step)
    assert timers.heap_size <= max(2 * len(timers), COMPACT_AT)


def test_the_retry_delay_comes_from_the_url() -> None:
    assert MemoryTimers.from_url("memory://", time.time).retry_seconds == 1.0
    assert MemoryTimers.from_url("memory://?timer_retry_s=0.2", time.time).retry_seconds == 0.2
    with pytest.raises(ValueError, match="not a number"):
        MemoryTimers.from_url("memory://?timer_retry_s=soon", time.time)
    with pytest.raises(ValueError, match="must be > 0"):
        MemoryTimers.from_url("memory://?timer_retry_s=0", time.time)
