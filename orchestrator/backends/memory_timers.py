"""Timers held in a heap (``memory://``), re-armed from the log at start by the runtime's recovery.

A fired timer stays armed until it is cancelled (the effects cancel it once its ``TimerFired``
is applied): if the fire failed, it fires again after ``timer_retry_s`` seconds (default 1),
doubling up to ``MAX_RETRY_SECONDS``. ``memory://?timer_retry_s=0.2`` sets it.

Cancelling is lazy: the heap entry stays until it comes due or until stale entries (cancelled or
moved timers) outnumber live ones, when the heap is rebuilt from the live timers. So a process
that arms and cancels many timers (step timeouts, event timeouts) holds at most about twice as
many heap entries as armed timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from orchestrator.instrumentation import NO_INSTRUMENTS, Instruments
from orchestrator.ports import Shards, TimerCallback

log = logging.getLogger(__name__)
DEFAULT_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0
COMPACT_AT = 64  # below this many heap entries, never bother rebuilding

Key = tuple[str, str]  # (execution id, timer id)


@dataclass(slots=True)
class _Armed:
    due: float  # as scheduled
    fire_at: float  # the heap entry that counts: ``due``, or the next retry after a fire
    fires: int = 0


class MemoryTimers:
    instruments: Instruments = NO_INSTRUMENTS  # set by the runtime: first fires' lateness, armed count

    def __init__(self, clock: Callable[[], float], *, retry_seconds: float = DEFAULT_RETRY_SECONDS) -> None:
        if retry_seconds <= 0:
            raise ValueError(f"memory timers: timer_retry_s must be > 0, got {retry_seconds}")
        self._clock = clock
        self.retry_seconds = retry_seconds
        self._heap: list[tuple[float, str, str]] = []
        self._live: dict[Key, _Armed] = {}
        self._changed = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._on_due: TimerCallback | None = None

    @classmethod
    def from_url(cls, url: str, clock: Callable[[], float]) -> MemoryTimers:
        given = parse_qs(urlsplit(url).query).get("timer_retry_s")
        if not given:
            return cls(clock)
        try:
            retry = float(given[0])
        except ValueError:
            raise ValueError(f"timer_retry_s in {url!r} is not a number") from None
        return cls(clock, retry_seconds=retry)

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
        armed = self._live.get(key)
        if armed is not None and armed.due == due:
            return  # armed already (perhaps firing again after a failed fire)
        self._live[key] = _Armed(due, due)
        self._push(due, key)
        if armed is not None:
            self._compact()
        else:
            self.instruments.timers_pending("MemoryTimers", len(self._live))

    async def cancel(self, execution_id: str, timer_id: str) -> None:
        if self._live.pop((execution_id, timer_id), None) is not None:
            self._compact()
            self.instruments.timers_pending("MemoryTimers", len(self._live))

    async def armed(self) -> list[tuple[str, str, float]]:
        """Every armed timer as (execution id, timer id, due), for the doctor."""
        return [(execution_id, timer_id, armed.due) for (execution_id, timer_id), armed in self._live.items()]

    def __len__(self) -> int:
        """Armed timers."""
        return len(self._live)

    @property
    def heap_size(self) -> int:
        """Heap entries, stale ones included (at most about twice ``len`` once compacted)."""
        return len(self._heap)

    def problem(self) -> str | None:
        """Why timers cannot fire (the timer loop ended), or None."""
        task = self._loop_task
        return "the timer loop stopped" if task is not None and task.done() else None

    def _push(self, fire_at: float, key: Key) -> None:
        heapq.heappush(self._heap, (fire_at, *key))
        if self._heap[0][0] == fire_at:
            self._changed.set()

    def _compact(self) -> None:
        """Rebuild the heap from the live timers once stale entries are the majority."""
        if len(self._heap) >= COMPACT_AT and len(self._heap) > 2 * len(self._live):
            self._heap = [(armed.fire_at, *key) for key, armed in self._live.items()]
            heapq.heapify(self._heap)

    async def _run(self) -> None:
        assert self._on_due is not None
        while True:
            self._changed.clear()
            now = self._clock()
            while self._heap and self._heap[0][0] <= now:
                fire_at, execution_id, timer_id = heapq.heappop(self._heap)
                key = (execution_id, timer_id)
                armed = self._live.get(key)
                if armed is None or armed.fire_at != fire_at:
                    continue  # cancelled or moved: a stale entry
                await self._fire(key, armed)
            timeout = self._heap[0][0] - self._clock() if self._heap else None
            with contextlib.suppress(TimeoutError):  # not wait_for: it can swallow a cancel (3.11)
                async with asyncio.timeout(timeout):
                    await self._changed.wait()

    async def _fire(self, key: Key, armed: _Armed) -> None:
        """Fire once, and arm the retry that stands unless the timer is cancelled meanwhile."""
        assert self._on_due is not None
        armed.fires += 1
        if armed.fires == 1:
            self.instruments.timer_fired("MemoryTimers", self._clock() - armed.due)
        else:
            log.info("timer %s of %s not cancelled after firing: firing again", key[1], key[0])
        wait = min(self.retry_seconds * 2 ** min(armed.fires - 1, 16), MAX_RETRY_SECONDS)
        armed.fire_at = self._clock() + wait
        self._push(armed.fire_at, key)
        try:
            await self._on_due(*key)
        except Exception:
            log.exception("timer %s of %s: on_due failed; it fires again later", key[1], key[0])
