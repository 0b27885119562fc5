"""Timers held in a heap (``memory://``), re-armed from the log at start by the runtime's recovery."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Callable

from orchestrator.instrumentation import NO_INSTRUMENTS, Instruments
from orchestrator.ports import Shards, TimerCallback


class MemoryTimers:
    instruments: Instruments = NO_INSTRUMENTS  # set by the runtime: reports each fire's lateness

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._heap: list[tuple[float, str, str]] = []
        self._live: dict[tuple[str, str], float] = {}
        self._changed = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._on_due: TimerCallback | None = None

    @classmethod
    def from_url(cls, url: str, clock: Callable[[], float]) -> MemoryTimers:
        return cls(clock)

    async def start(self, on_due: TimerCallback, shards: Shards) -> None:
        self._on_due = on_due
        self._loop_task = asyncio.create_task(self._run(), name="timers")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None

    async def schedule(self, execution_id: str, timer_id: str, due: float) -> None:
        key = (execution_id, timer_id)
        if self._live.get(key) == due:
            return
        self._live[key] = due
        heapq.heappush(self._heap, (due, execution_id, timer_id))
        if self._heap[0][0] == due:
            self._changed.set()

    async def cancel(self, execution_id: str, timer_id: str) -> None:
        self._live.pop((execution_id, timer_id), None)

    def __len__(self) -> int:
        return len(self._live)

    async def _run(self) -> None:
        assert self._on_due is not None
        while True:
            self._changed.clear()
            now = self._clock()
            while self._heap and self._heap[0][0] <= now:
                due, execution_id, timer_id = heapq.heappop(self._heap)
                if self._live.get((execution_id, timer_id)) != due:
                    continue  # cancelled or rescheduled
                del self._live[(execution_id, timer_id)]
                self.instruments.timer_fired("MemoryTimers", self._clock() - due)
                await self._on_due(execution_id, timer_id)
            timeout = self._heap[0][0] - self._clock() if self._heap else None
            with contextlib.suppress(TimeoutError):  # not wait_for: it can swallow a cancel (3.11)
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
