"""Retrying what must not be lost: a jittered, bounded backoff, and ``Redo`` for post-commit work.

Once an append returned, its effects (dispatching tasks, arming timers, starting children, an
observer's export) must happen, but their failure must not be reported to the caller, who would
retry a command that is already durable. ``Redo`` keeps such work and retries it in the
background until it succeeds: one asyncio task, created in ``start`` and cancelled in ``stop``.

At most ``capacity`` jobs wait (no queue is unbounded). Past that, a job is not kept; instead
the ``rescan`` job (the runtime's recovery scan, which re-derives the effects of every running
execution from the log) is queued once, so dropped work is recovered rather than lost. Jobs that
are still pending when the process stops are recovered the same way by the scan at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from orchestrator.lifecycle import Lifecycle

log = logging.getLogger(__name__)
Job = Callable[[], Awaitable[object]]
RESCAN = ("rescan",)  # the key of the recovery scan queued when the queue overflows
BATCH = 64  # jobs retried at once


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays that double from ``first`` up to ``cap`` seconds, each scaled by a random factor in
    [1 - jitter, 1] so that many retries of one outage spread out."""

    first: float = 0.05
    cap: float = 5.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait before retry number ``attempt`` (1 for the first retry)."""
        base = min(math.ldexp(self.first, min(max(attempt - 1, 0), 30)), self.cap)
        return base * (1 - self.jitter * rng.random())


async def until_done(
    job: Job,
    what: str,
    backoff: Backoff,
    rng: random.Random,
    *,
    permanent: tuple[type[Exception], ...] = (),
) -> None:
    """Run ``job`` until it returns, sleeping ``backoff`` between failures (logged). An exception
    in ``permanent`` is not a transient fault: it is logged and ends the retries."""
    attempt = 0
    while True:
        try:
            await job()
            if attempt:
                log.info("%s succeeded after %d retries", what, attempt)
            return
        except permanent as exc:
            log.debug("%s not applied: %s", what, exc)
            return
        except Exception as exc:
            attempt += 1
            delay = backoff.delay(attempt, rng)
            level = logging.WARNING if attempt == 1 or attempt % 10 == 0 else logging.DEBUG
            log.log(level, "%s failed (%d): %r; retrying in %.2fs", what, attempt, exc, delay)
            await asyncio.sleep(delay)


@dataclass(slots=True)
class _Pending:
    job: Job
    what: str
    attempts: int
    due: float


class Redo(Lifecycle):
    """Work that failed after a commit, retried in the background until it succeeds.

    ``add`` never raises and never blocks. A key already pending keeps its first job (the work
    is idempotent: effects are at-least-once). Jobs run ``BATCH`` at a time, each once due.
    """

    def __init__(
        self,
        *,
        backoff: Backoff | None = None,
        capacity: int = 10_000,
        rescan: Job | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.backoff = backoff or Backoff()
        self.capacity = capacity
        self.rescan = rescan
        self._rng = rng or random.Random()
        self._pending: OrderedDict[Hashable, _Pending] = OrderedDict()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.retried = 0  # jobs that succeeded on a retry, for tests and metrics
        self.dropped = 0  # jobs not kept because the queue was full (the rescan covers them)

    @property
    def pending(self) -> int:
        """Jobs waiting for a retry."""
        return len(self._pending)

    def add(self, key: Hashable, job: Job, what: str, error: BaseException) -> None:
        """Retry ``job`` later: ``what`` names it in the log, ``error`` is why it failed first."""
        log.warning("%s failed: %r; retrying in the background", what, error)
        if key in self._pending:
            return
        if len(self._pending) >= self.capacity:
            self.dropped += 1
            if self.rescan is None:
                log.error("%s dropped: %d retries are pending already", what, len(self._pending))
                return
            if RESCAN in self._pending:
                return
            key, job, what = RESCAN, self.rescan, "the recovery scan (retries overflowed)"
        now = asyncio.get_running_loop().time()
        self._pending[key] = _Pending(job, what, 1, now + self.backoff.delay(1, self._rng))
        self._wake.set()

    def problem(self) -> str | None:
        """Why retries cannot run (the retry task ended), or None."""
        task = self._task
        if task is not None and task.done():
            return "the post-commit retry loop stopped"
        return None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="post-commit-retries")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pending:
            log.info("%d post-commit retries pending at stop: the next start's recovery redoes them", self.pending)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            now = loop.time()
            due = [(key, p) for key, p in self._pending.items() if p.due <= now][:BATCH]
            if due:
                await asyncio.gather(*(self._retry(key, pending) for key, pending in due))
                continue
            timeout = min((p.due for p in self._pending.values()), default=None)
            with contextlib.suppress(TimeoutError):  # not wait_for: it can swallow a cancel (3.11)
                async with asyncio.timeout(None if timeout is None else max(timeout - now, 0)):
                    await self._wake.wait()

    async def _retry(self, key: Hashable, pending: _Pending) -> None:
        try:
            await pending.job()
        except Exception as exc:
            pending.attempts += 1
            delay = self.backoff.delay(pending.attempts, self._rng)
            pending.due = asyncio.get_running_loop().time() + delay
            level = logging.WARNING if pending.attempts % 10 == 0 else logging.DEBUG
            log.log(level, "%s failed again (%d): %r; next try in %.2fs", pending.what, pending.attempts, exc, delay)
            return
        if self._pending.get(key) is pending:
            del self._pending[key]
        self.retried += 1
        log.info("%s succeeded on retry %d", pending.what, pending.attempts)
