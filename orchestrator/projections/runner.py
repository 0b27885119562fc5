"""The projection runner: follows the event feed from a checkpoint and applies each event.

One task per projection, started in ``start()`` and stopped in ``stop()``. Each reads a page of
the feed after its checkpoint, applies the events in order, calls ``flush()``, saves the page's
``last`` position as its checkpoint, and reads on. Events since the last saved checkpoint are
applied again after a crash or a failure, so ``apply`` must be idempotent: delivery is at least
once, in feed order. When the feed has nothing new the task sleeps ``poll_interval`` seconds or
until ``nudge()`` (an engine observer calls it after every commit); a feed with a settle delay is
read that much after the nudge. A failing projection never stops the runner: the error is logged,
the task backs off (doubling up to ``MAX_BACKOFF``) and retries from the same position; other
projections go on. ``active()`` says whether this process should run projections now (in Kafka
mode, the owner of shard 0); a process that becomes active reloads the checkpoints first.
``rebuild(name)`` resets a projection and replays the feed from position 0. A projection with an
``idle()`` method (``Ticking``) is called there after a read that found nothing new.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Set
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import Checkpoints, EventFeed, FeedPage
from schemas import fields
from schemas.envelope import Envelope

if TYPE_CHECKING:
    from orchestrator.engine.engine import Committed

log = logging.getLogger(__name__)

PAGE = 500  # events per read of the feed
POLL_SECONDS = 1.0
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 30.0
STOP_SECONDS = 10.0  # how long stop() lets each projection catch up before cancelling it
Page = FeedPage | fields.FieldsPage


class Projection(Protocol):
    """Derived state built from the feed. ``name`` keys its checkpoint: keep it stable. A
    projection may also have an int ``page``: read that many events at once (one flush each),
    when it is more than the runner's page; an ``apply_page(items)`` coroutine taking a
    page's (position, envelope) pairs at once, used instead of ``apply`` per event; and a float
    ``interval``: once caught up, read the feed again only that many seconds later, however
    often commits nudge it (fewer, larger pages off the commit path: one flush per interval).
    A projection with ``apply_page`` may also set ``lean`` to a set of event types: its pages are
    then of fields (``schemas.fields``) rather than envelopes, read without building envelopes
    from a feed that can (``FieldFeed``), each event's data given only for those types."""

    name: str

    async def apply(self, position: int, envelope: Envelope) -> None:
        """Take one event; idempotent (events after the last checkpoint come again)."""

    async def flush(self) -> None:
        """Make everything applied so far durable; called before each checkpoint is saved."""

    async def reset(self) -> None:
        """Forget all derived state: a replay from position 0 follows."""


@runtime_checkable
class Ticking(Protocol):
    """A projection that also acts when the feed has nothing new (once per poll while active)."""

    async def idle(self) -> None: ...


class ProjectionRunner(Lifecycle):
    """Runs every added projection against one feed and checkpoint store."""

    def __init__(
        self,
        feed: EventFeed,
        checkpoints: Checkpoints,
        *,
        active: Callable[[], bool] = lambda: True,
        poll_interval: float = POLL_SECONDS,
        page: int = PAGE,
    ) -> None:
        self.feed = feed
        self.checkpoints = checkpoints
        self._active = active
        self._poll = poll_interval
        self._page = page
        self._projections: dict[str, Projection] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._running = False
        self._stopping = False
        self.positions: dict[str, int] = {}  # where each projection stands (after its last save)
        self.failures: dict[str, str] = {}  # the current error of a failing projection

    def add(self, projection: Projection) -> None:
        """Run this projection too (from its checkpoint); at once when the runner is started."""
        if projection.name in self._projections:
            raise ValueError(f"a projection named {projection.name!r} is already added")
        self._projections[projection.name] = projection
        self._wake[projection.name] = asyncio.Event()
        if self._running:
            self._launch(projection)

    @property
    def projections(self) -> list[Projection]:
        return list(self._projections.values())

    @property
    def names(self) -> set[str]:
        return set(self._projections)

    async def start(self) -> None:
        self._running, self._stopping = True, False
        for projection in self._projections.values():
            self._launch(projection)

    async def stop(self) -> None:
        """Let each projection apply what is committed (up to STOP_SECONDS), then cancel it."""
        self._running, self._stopping = False, True
        self.nudge()
        tasks, self._tasks = list(self._tasks.values()), {}
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_SECONDS)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def nudge(self) -> None:
        """Something was committed: read the feed now rather than at the next poll."""
        for wake in self._wake.values():
            wake.set()

    async def on_committed(self, committed: Committed) -> None:
        """Engine observer: nudge the projections (nothing to do while none is added)."""
        if self._projections:
            self.nudge()

    async def rebuild(self, name: str) -> None:
        """Reset a projection and replay the whole feed into it (from position 0)."""
        projection = self._projections[name]
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await projection.reset()
        await self.checkpoints.save(name, 0)
        self.positions[name] = 0
        if self._running:
            self._launch(projection)

    def _launch(self, projection: Projection) -> None:
        name = projection.name
        self._tasks[name] = asyncio.create_task(self._follow(projection), name=f"projection-{name}")

    async def _pause(self, wake: asyncio.Event, seconds: float) -> None:
        """Wait ``seconds``; only a stop ends the wait early (nudges do not)."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not self._stopping:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await _wait(wake, left)
            if not self._stopping:
                wake.clear()

    async def _follow(self, projection: Projection) -> None:
        """Follow the feed into ``projection``. While a full page is applied, the next one is
        already being read: a catch-up overlaps the log's reads with the projection's work."""
        ahead: list[asyncio.Task[Page]] = []  # the next page's read, started early
        try:
            await self._follow_pages(projection, ahead)
        finally:
            for task in ahead:
                task.cancel()

    def _reader(self, projection: Projection) -> Callable[[int, int], Awaitable[Page]]:
        """How the projection's pages are read: envelopes, or fields when it is ``lean``."""
        wanted: Set[str] | None = getattr(projection, "lean", None)
        if wanted is None:
            return self.feed.read_after
        feed = self.feed
        if isinstance(feed, fields.FieldFeed):
            return lambda position, size: feed.read_fields_after(position, size, wanted)

        async def converted(position: int, size: int) -> Page:
            page = await feed.read_after(position, size)
            return fields.FieldsPage([fields.of_envelope(at, e, wanted) for at, e in page.items], page.last)

        return converted

    async def _follow_pages(self, projection: Projection, ahead: list[asyncio.Task[Page]]) -> None:
        name, wake = projection.name, self._wake[projection.name]
        size = max(self._page, getattr(projection, "page", 0))  # a projection may read more at once
        apply_page = getattr(projection, "apply_page", None)
        read = self._reader(projection)
        interval = float(getattr(projection, "interval", 0.0))
        position: int | None = None  # None: (re)load the checkpoint
        backoff = FIRST_BACKOFF
        while True:
            if not self._active():
                position = None  # another process may move the checkpoint meanwhile
                if self._stopping:
                    return
                wake.clear()
                await _wait(wake, self._poll)
                continue
            wake.clear()  # a nudge from now on wakes the wait below
            try:
                if position is None:
                    for task in ahead:  # read from a position that may have moved meanwhile
                        task.cancel()
                    ahead.clear()
                    position = await self.checkpoints.load(name)
                    self.positions[name] = position
                page = await (ahead.pop() if ahead else read(position, size))
                if len(page.items) >= size:  # more is waiting: read it while this page is applied
                    task = asyncio.ensure_future(read(page.last, size))
                    task.add_done_callback(_retrieved)  # a read dropped after a failure is not an error
                    ahead.append(task)
                if apply_page is not None:
                    if page.items:
                        await apply_page(page.items)
                else:
                    if not isinstance(page, FeedPage):
                        raise TypeError(f"projection {name!r} is lean but has no apply_page")
                    for at, envelope in page.items:
                        await projection.apply(at, envelope)
                if page.items:
                    await projection.flush()
                elif isinstance(projection, Ticking):
                    await projection.idle()
                if page.last != position:
                    await self.checkpoints.save(name, page.last)
                    position = self.positions[name] = page.last
            except Exception as exc:
                for task in ahead:  # read after a position that is not saved: read again
                    task.cancel()
                ahead.clear()
                self.failures[name] = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "projection %s failed after position %s (%s); retrying in %.1fs",
                    name, position, self.failures[name], backoff, exc_info=True,
                )  # fmt: skip
                if self._stopping:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            self.failures.pop(name, None)
            backoff = FIRST_BACKOFF
            if len(page.items) >= size:
                continue  # more is waiting
            if self._stopping:
                return
            if interval > 0:
                await self._pause(wake, interval)
                continue
            if await _wait(wake, self._poll) and self.feed.delay:
                await asyncio.sleep(self.feed.delay)  # let the commit that woke us settle


def _retrieved(task: asyncio.Task[Page]) -> None:
    if not task.cancelled():
        task.exception()


async def _wait(wake: asyncio.Event, timeout: float) -> bool:
    """True when woken, False when the timeout passed."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await wake.wait()
            return True
    return False
