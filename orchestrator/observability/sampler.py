"""The ``orchestrator_executions_running`` gauge, counted from the event log's index.

No process sees every execution's start and end (in Kafka mode the API commits starts and the
partition owners commit the ends), so the level is counted where it is kept: the index of
execution summaries, paged ``status=running`` every ``interval`` seconds, at most ``cap`` of them
(the gauge then reads ``cap``: use the API to count beyond it). Every process reports the same
number; aggregate it with ``max``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from orchestrator.ports import EventLog, ExecutionQuery

log = logging.getLogger(__name__)
PAGE = 1000


class RunningGauge(Protocol):
    def executions_running(self, count: int) -> None: ...


class RunningSampler:
    """``async with RunningSampler(log, gauge):`` samples until stopped (an explicit task)."""

    def __init__(self, log_: EventLog, gauge: RunningGauge, *, interval: float = 15.0, cap: int = 10_000) -> None:
        self.log = log_
        self.gauge = gauge
        self.interval = interval
        self.cap = cap
        self._task: asyncio.Task[None] | None = None

    async def sample(self) -> int:
        """Count running executions (up to ``cap``) and set the gauge; the count."""
        count, cursor = 0, None
        while count < self.cap:
            page = await self.log.list_executions(
                ExecutionQuery(status="running", limit=min(PAGE, self.cap - count), cursor=cursor)
            )
            count += len(page.items)
            cursor = page.next_cursor
            if cursor is None or not page.items:
                break
        count = min(count, self.cap)
        self.gauge.executions_running(count)
        return count

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:  # the log is away: keep the last value, try again later
                log.debug("counting running executions failed: %r", exc)
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metrics-running-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> RunningSampler:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
