"""Timers and the wait index in Cassandra: projections shared by every process of a deployment.

Timers (``CassandraTimers``)
----------------------------
``timers ((shard, bucket), fire_at, execution_id, timer_id) -> due`` holds one row per armed
timer, in the shard of its execution (``Shards.shard_of``) and the minute bucket of its firing
time; ``fire_at = max(due, now)``, so a timer already due when scheduled lands in the current
bucket, never in one the poller has left behind. ``timers_by_execution ((execution_id),
timer_id)`` finds that row again for ``cancel`` and makes ``schedule`` idempotent; both tables
are written by one logged batch (all rows or, after a failure, all of them eventually).
``timer_shard_progress ((shard)) -> bucket`` is the low-water mark of a shard: every bucket
before it is empty for good. A shard's first ``schedule`` in a process creates the row
(``IF NOT EXISTS``) before any timer is written, so a shard without a row has no timers, and the
table also lists the shards a process polls when it owns them all (``owned_shards() is None``).

One poller task polls the owned shards every ``timer_poll_ms`` (200): it reads the rows that came
due since its last poll (``fire_at`` in ``(mark - LOOKBACK_SECONDS, now]``) and awaits
``on_due(execution_id, timer_id)`` for each, shard by shard in firing order (several shards at
once). A row is deleted only by ``cancel``, which the effects call once ``TimerFired`` is applied,
so a fire that got lost leaves its row in place. Every ``timer_retry_s`` (5) the poller sweeps
the shard from its progress bucket, fires again the rows still there whose retry time came
(after ``timer_retry_s``, doubling up to ``MAX_RETRY_SECONDS`` for a row nobody ever cancels),
fires rows written late (clock skew, retried writes), and moves the progress mark over buckets
that are empty and ended ``GRACE_SECONDS`` ago. Between sweeps a fired row is not fired again,
so a timer fires twice only when its first fire is not acknowledged in time (or its shard moves
to another process mid-flight); firing twice is harmless, losing a timer is not.

Wait index (``CassandraWaitIndex``)
-----------------------------------
``waits ((event, correlation_key), execution_id)``: one partition per key, read whole by
``waiting``. A key without correlation is stored as the empty string; a real empty key, or one
starting with NUL, is stored with a NUL in front, so the two never meet.

Both open their own ``Database`` from the URL (``cassandra.py``'s settings, retries and errors);
timer options (``timer_poll_ms``, ``timer_retry_s``) are taken off the URL first, so put them in
``ORCHESTRATOR_TIMERS_URL`` rather than in the event log's URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from cassandra.query import BatchStatement, BatchType, PreparedStatement

from orchestrator.backends.cassandra.backlog import COUNT_SECONDS, count_rows, every
from orchestrator.backends.cassandra.schema import (
    RETRY_ATTEMPTS,
    RETRY_MAX_SECONDS,
    CassandraBackend,
    CassandraSettings,
    Database,
    Row,
    describe,
)
from orchestrator.instrumentation import NO_INSTRUMENTS, Instruments
from orchestrator.ports import Shards, TimerCallback, WaitKey

__all__ = ["CassandraTimers", "CassandraWaitIndex", "TimerOptions", "bucket_of", "stored_key"]

log = logging.getLogger(__name__)

BUCKET_SECONDS = 60  # never change: stored buckets and progress marks count in these units
GRACE_SECONDS = 120.0  # at least: how late a schedule's write may land and still be fired
LOOKBACK_SECONDS = 2.0  # each poll re-reads this far behind its mark, for writes in flight
MAX_RETRY_SECONDS = 60.0  # the longest wait before firing a timer that was never cancelled again
PAGE_ROWS = 500
SHARD_CONCURRENCY = 16  # shards polled at once
LIST_SHARDS_SECONDS = 5.0  # how often the known shards are re-read when this process owns all
START_WAIT_SECONDS = 30.0  # how long schedule() and cancel() wait for start()
TIMER_OPTIONS = ("timer_poll_ms", "timer_retry_s")

Key = tuple[str, str]  # (execution id, timer id)


def bucket_of(moment: float) -> int:
    """The minute bucket of a time in epoch seconds."""
    return math.floor(moment / BUCKET_SECONDS)


def stored_key(correlation_key: str | None) -> str:
    """The ``correlation_key`` column for a wait key: ``""`` is no key, see the module docs."""
    if correlation_key is None:
        return ""
    if correlation_key == "" or correlation_key.startswith("\0"):
        return "\0" + correlation_key
    return correlation_key


def loaded_key(stored: str) -> str | None:
    """The wait key's correlation key from its stored column (the inverse of ``stored_key``)."""
    if stored == "":
        return None
    return stored[1:] if stored.startswith("\0") else stored


@dataclass(frozen=True, slots=True)
class TimerOptions:
    """How often the poller reads and how long a fired timer may stay before it fires again."""

    poll_seconds: float = 0.2
    retry_seconds: float = 5.0

    @classmethod
    def from_url(cls, url: str) -> tuple[TimerOptions, CassandraSettings]:
        """The timer options and the Cassandra settings of the rest of ``url``."""
        parts = urlsplit(url)
        segments = [s for s in parts.query.split("&") if s]
        ours = [s for s in segments if s.partition("=")[0] in TIMER_OPTIONS]
        rest = "&".join(s for s in segments if s not in ours)
        settings = CassandraSettings.from_url(urlunsplit(parts._replace(query=rest)))
        if ours:  # name the whole URL in errors (the password stays masked)
            shown = settings.url + ("&" if rest else "?") + "&".join(ours)
            settings = dataclasses.replace(settings, url=shown)
        values = dict(parse_qsl("&".join(ours)))
        return (
            cls(
                poll_seconds=_positive(values, "timer_poll_ms", 200, settings.url) / 1000,
                retry_seconds=_positive(values, "timer_retry_s", 5, settings.url),
            ),
            settings,
        )


def _positive(values: dict[str, str], name: str, default: float, shown: str) -> float:
    try:
        value = float(values.get(name, default))
    except ValueError:
        raise ValueError(f"{shown!r}: {name} must be a number") from None
    if not 0 < value < math.inf:
        raise ValueError(f"{shown!r}: {name} must be positive")
    return value


_TIMER_CQL = {
    "lookup": "SELECT shard, bucket, fire_at, due FROM {ks}.timers_by_execution"
    " WHERE execution_id = ? AND timer_id = ?",
    "add": "INSERT INTO {ks}.timers (shard, bucket, fire_at, execution_id, timer_id, due)"
    " VALUES (?, ?, ?, ?, ?, ?)",
    "add_lookup": "INSERT INTO {ks}.timers_by_execution"
    " (execution_id, timer_id, shard, bucket, fire_at, due) VALUES (?, ?, ?, ?, ?, ?)",
    "drop": "DELETE FROM {ks}.timers WHERE shard = ? AND bucket = ? AND fire_at = ?"
    " AND execution_id = ? AND timer_id = ?",
    "drop_lookup": "DELETE FROM {ks}.timers_by_execution WHERE execution_id = ? AND timer_id = ?",
    "due": "SELECT fire_at, execution_id, timer_id, due FROM {ks}.timers"
    " WHERE shard = ? AND bucket = ? AND fire_at <= ?",
    "due_since": "SELECT fire_at, execution_id, timer_id, due FROM {ks}.timers"
    " WHERE shard = ? AND bucket = ? AND fire_at > ? AND fire_at <= ?",
    "progress": "SELECT bucket FROM {ks}.timer_shard_progress WHERE shard = ?",
    "advance": "UPDATE {ks}.timer_shard_progress SET bucket = ? WHERE shard = ?",
    "shards": "SELECT shard FROM {ks}.timer_shard_progress",
    "armed": "SELECT execution_id, timer_id, due FROM {ks}.timers_by_execution",
    "count": "SELECT shard FROM {ks}.timers_by_execution",
}
_REGISTER_CQL = {
    "register": "INSERT INTO {ks}.timer_shard_progress (shard, bucket) VALUES (?, ?) IF NOT EXISTS",
}


@dataclass(slots=True)
class _Fired:
    attempts: int
    retry_at: float


@dataclass(slots=True)
class _Shard:
    """What the poller knows of one owned shard."""

    cursor: int  # the progress bucket: every bucket before it is empty for good
    mark: float | None = None  # rows firing up to here were read (None: sweep first)
    next_sweep: float = 0.0
    fired: dict[Key, _Fired] = field(default_factory=dict)


class CassandraTimers:
    """The ``Timers`` port over Cassandra: durable, sharded, polled by the shard's owner."""

    instruments: Instruments = NO_INSTRUMENTS  # set by the runtime: reports each first fire's lateness

    def __init__(
        self,
        settings: CassandraSettings,
        options: TimerOptions,
        clock: Callable[[], float],
        count_seconds: float = COUNT_SECONDS,
    ) -> None:
        self.settings = settings
        self.count_seconds = count_seconds  # how often orchestrator_timers_pending is counted
        self.options = options
        self._clock = clock
        # A write may be retried for about this long, and must still land before its bucket is left.
        self.grace = max(GRACE_SECONDS, RETRY_ATTEMPTS * (settings.request_timeout + RETRY_MAX_SECONDS))
        self._db = Database(settings, "timers")
        self._cql: dict[str, PreparedStatement] = {}
        self._on_due: TimerCallback | None = None
        self._shards: Shards | None = None
        self._started = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._counting: asyncio.Task[None] | None = None
        self._states: dict[int, _Shard] = {}
        self._registered: set[int] = set()  # shards whose progress row exists
        self._listed_at = -math.inf

    @classmethod
    def from_url(cls, url: str, clock: Callable[[], float]) -> CassandraTimers:
        options, settings = TimerOptions.from_url(url)
        return cls(settings, options, clock)

    async def start(self, on_due: TimerCallback, shards: Shards) -> None:
        """Connect, prepare, and start the poller task."""
        await self._db.open()
        try:
            self._cql = await self._db.prepare(_TIMER_CQL)
            self._cql.update(await self._db.prepare(_REGISTER_CQL, idempotent=False))
        except BaseException:
            await self._db.close()
            raise
        self._on_due, self._shards = on_due, shards
        self._task = asyncio.create_task(self._run(), name="cassandra-timers")
        self._counting = asyncio.create_task(every(self.count_seconds, self._count, "timers"), name="timers-count")
        self._started.set()

    async def stop(self) -> None:
        self._started.clear()
        tasks, self._task, self._counting = (self._task, self._counting), None, None
        for task in tasks:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._db.close()
        self._states.clear()
        self._registered.clear()
        self._listed_at = -math.inf

    async def schedule(self, execution_id: str, timer_id: str, due: float) -> None:
        """Arm a timer (idempotent); a new ``due`` for an armed timer replaces the old one."""
        shard = (await self._ready()).shard_of(execution_id)
        await self._register(shard)
        old = await self._lookup(execution_id, timer_id)
        if old is not None and old[0] == shard and old[3] == due:
            return
        fire_at = max(due, self._clock())
        row = (shard, bucket_of(fire_at), fire_at)
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.is_idempotent = True
        if old is not None and tuple(old[:3]) != row:
            batch.add(self._cql["drop"], (*old[:3], execution_id, timer_id))
        batch.add(self._cql["add"], (*row, execution_id, timer_id, due))
        batch.add(self._cql["add_lookup"], (execution_id, timer_id, *row, due))
        await self._db.run(batch)
        self._forget(execution_id, timer_id)
        if due <= self._clock():
            self._wake.set()

    async def cancel(self, execution_id: str, timer_id: str) -> None:
        """Disarm a timer; unknown timers are ignored."""
        await self._ready()
        old = await self._lookup(execution_id, timer_id)
        if old is not None:
            batch = BatchStatement(batch_type=BatchType.LOGGED)
            batch.is_idempotent = True
            batch.add(self._cql["drop"], (*old[:3], execution_id, timer_id))
            batch.add(self._cql["drop_lookup"], (execution_id, timer_id))
            await self._db.run(batch)
        self._forget(execution_id, timer_id)

    async def armed(self) -> list[tuple[str, str, float]]:
        """Every armed timer as (execution id, timer id, due): a full scan, for the doctor."""
        await self._ready()
        found: list[tuple[str, str, float]] = []
        async for rows in self._db.pages(self._cql["armed"].bind(())):
            found += [(execution_id, timer_id, due) for execution_id, timer_id, due in rows]
        return found

    async def _count(self) -> None:
        """The timers armed in the shards this process owns (so the gauges of all workers add up)."""
        owned = await self._owned()
        armed = await count_rows(self._db, self._cql["count"], lambda shard: shard in owned)
        self.instruments.timers_pending("CassandraTimers", armed)

    async def _ready(self) -> Shards:
        """The shards, once started (the transport may deliver commands just before that)."""
        if not self._started.is_set():
            try:
                async with asyncio.timeout(START_WAIT_SECONDS):
                    await self._started.wait()
            except TimeoutError:
                raise RuntimeError(f"{self.settings.url}: timers are not started") from None
        assert self._shards is not None
        return self._shards

    async def _lookup(self, execution_id: str, timer_id: str) -> Row | None:
        rows = await self._db.rows(self._cql["lookup"], execution_id, timer_id)
        return rows[0] if rows else None

    async def _register(self, shard: int) -> None:
        """Create the shard's progress row before its first timer (a no-op when it exists)."""
        if shard in self._registered:
            return
        await self._db.run_repeatable(self._cql["register"].bind((shard, bucket_of(self._clock() - self.grace))), f"registering timer shard {shard}")
        self._registered.add(shard)

    def _forget(self, execution_id: str, timer_id: str) -> None:
        for state in self._states.values():
            state.fired.pop((execution_id, timer_id), None)

    async def _run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self._poll()
                failures = 0
            except Exception as exc:
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(
                    level, "%s: polling timers failed (%d): %s", self.settings.url, failures, describe(exc)
                )
            delay = self.options.poll_seconds
            if failures:  # back off while Cassandra is away, up to 5 s
                delay = max(delay, min(delay * 2 ** min(failures, 10), 5.0))
            with contextlib.suppress(TimeoutError):  # not wait_for: it can swallow a cancel (3.11)
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _poll(self) -> None:
        """One pass over the owned shards; raises the first failure after trying them all."""
        owned = await self._owned()
        for lost in self._states.keys() - owned:
            del self._states[lost]  # its timers fire in the process that owns it now
        gate = asyncio.Semaphore(SHARD_CONCURRENCY)

        async def poll(shard: int) -> None:
            async with gate:
                state = self._states.get(shard)
                if state is None:
                    state = self._states[shard] = await self._load(shard)
                await self._poll_shard(shard, state)

        outcomes = await asyncio.gather(*(poll(shard) for shard in sorted(owned)), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _owned(self) -> set[int]:
        assert self._shards is not None
        owned = self._shards.owned_shards()
        if owned is not None:
            return set(owned)
        if time.monotonic() - self._listed_at >= LIST_SHARDS_SECONDS:
            async for rows in self._db.pages(self._cql["shards"].bind(())):
                self._registered.update(shard for (shard,) in rows)
            self._listed_at = time.monotonic()
        return set(self._registered)

    async def _load(self, shard: int) -> _Shard:
        """A gained shard starts at its progress bucket (no row: it never had timers)."""
        rows = await self._db.rows(self._cql["progress"], shard)
        if rows and rows[0][0] is not None:
            return _Shard(cursor=rows[0][0])
        return _Shard(cursor=bucket_of(self._clock() - self.grace))

    async def _poll_shard(self, shard: int, state: _Shard) -> None:
        """Fire what came due since the last poll, or sweep the shard from its progress bucket."""
        now = self._clock()
        sweep = (
            state.mark is None
            or now >= state.next_sweep
            or any(f.retry_at <= now for f in state.fired.values())
        )
        if sweep:
            first, since = state.cursor, None
        else:
            assert state.mark is not None
            since = state.mark - LOOKBACK_SECONDS
            first = max(state.cursor, bucket_of(since))
        seen: set[Key] = set()
        occupied: set[int] = set()  # buckets that still hold due timers
        for bucket in range(first, bucket_of(now) + 1):
            if since is None:
                statement = self._cql["due"].bind((shard, bucket, now))
            else:
                statement = self._cql["due_since"].bind((shard, bucket, since, now))
            async for rows in self._db.pages(statement, PAGE_ROWS):
                if rows:
                    occupied.add(bucket)
                for _, execution_id, timer_id, due in sorted(rows, key=lambda r: (r[3], r[1], r[2])):
                    seen.add((execution_id, timer_id))
                    if not await self._fire(shard, state, (execution_id, timer_id), now, due):
                        return  # the shard moved to another process
        state.mark = now
        if sweep:
            state.next_sweep = now + self.options.retry_seconds
            for key in state.fired.keys() - seen:
                del state.fired[key]  # cancelled, possibly by another process
            await self._advance(shard, state, min([bucket_of(now - self.grace), *occupied]))

    async def _fire(self, shard: int, state: _Shard, key: Key, now: float, due: float) -> bool:
        """Fire one due timer unless it fired lately; False when the shard is no longer ours."""
        assert self._shards is not None and self._on_due is not None
        owned = self._shards.owned_shards()
        if owned is not None and shard not in owned:
            return False
        previous = state.fired.get(key)
        if previous is not None and previous.retry_at > now:
            return True  # in flight: its cancel has not come yet
        attempts = previous.attempts + 1 if previous is not None else 1
        wait = min(self.options.retry_seconds * 2 ** min(attempts - 1, 16), MAX_RETRY_SECONDS)
        state.fired[key] = _Fired(attempts, now + max(wait, self.options.retry_seconds))
        if previous is not None:
            log.info("timer %s of %s not cancelled after firing: firing again", key[1], key[0])
        else:
            self.instruments.timer_fired("CassandraTimers", self._clock() - due)
        try:
            await self._on_due(*key)
        except Exception:
            log.exception("timer %s of %s: on_due failed; it fires again later", key[1], key[0])
        return True

    async def _advance(self, shard: int, state: _Shard, bucket: int) -> None:
        """Move the progress mark over buckets that are empty and settled."""
        if bucket > state.cursor:
            await self._db.run(self._cql["advance"].bind((bucket, shard)))
            state.cursor = bucket


_WAIT_CQL = {
    "add": "INSERT INTO {ks}.waits (event, correlation_key, execution_id) VALUES (?, ?, ?)",
    "remove": "DELETE FROM {ks}.waits WHERE event = ? AND correlation_key = ? AND execution_id = ?",
    "waiting": "SELECT execution_id FROM {ks}.waits WHERE event = ? AND correlation_key = ?",
    "entries": "SELECT event, correlation_key, execution_id FROM {ks}.waits",
    "count": "SELECT event FROM {ks}.waits",
}


class CassandraWaitIndex(CassandraBackend):
    """The ``WaitIndex`` port over Cassandra: one partition per (event, correlation key)."""

    STATEMENTS = _WAIT_CQL
    CONDITIONAL: ClassVar[dict[str, str]] = {}

    instruments: Instruments = NO_INSTRUMENTS  # set by the runtime: orchestrator_waits_parked

    def __init__(self, settings: CassandraSettings, count_seconds: float = COUNT_SECONDS) -> None:
        super().__init__(settings, "wait index")
        self.count_seconds = count_seconds
        self._counting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and prepare, then count the parked waits every ``count_seconds``."""
        await super().start()
        self._counting = asyncio.create_task(every(self.count_seconds, self._count, "waits"), name="waits-count")

    async def stop(self) -> None:
        counting, self._counting = self._counting, None
        if counting is not None:
            counting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await counting
        await super().stop()

    async def _count(self) -> None:
        """Every parked wait of the index: one index for the cluster, so every worker shows the
        same count (aggregate it with ``max``, not ``sum``)."""
        parked = await count_rows(self._db, self._cql["count"], lambda _event: True)
        self.instruments.waits_parked("CassandraWaitIndex", parked)

    @classmethod
    def from_url(cls, url: str) -> CassandraWaitIndex:
        return cls(CassandraSettings.from_url(url))

    async def update(self, execution_id: str, removed: set[WaitKey], added: set[WaitKey]) -> None:
        """Remove, then add, the keys ``execution_id`` waits on."""
        await self._write(self._cql["remove"], execution_id, removed)
        await self._write(self._cql["add"], execution_id, added)

    async def waiting(self, key: WaitKey) -> list[str]:
        """The executions waiting on ``key``, by id."""
        statement = self._cql["waiting"].bind((key[0], stored_key(key[1])))
        found: list[str] = []
        async for rows in self._db.pages(statement):
            found += [execution_id for (execution_id,) in rows]
        return found

    async def entries(self) -> list[tuple[WaitKey, str]]:
        """Every (key, execution id) of the index: a full scan, for the doctor."""
        found: list[tuple[WaitKey, str]] = []
        async for rows in self._db.pages(self._cql["entries"].bind(())):
            found += [((event, loaded_key(key)), execution_id) for event, key, execution_id in rows]
        return found

    async def _write(self, statement: PreparedStatement, execution_id: str, keys: Iterable[WaitKey]) -> None:
        await asyncio.gather(
            *(self._db.run(statement.bind((e, stored_key(k), execution_id))) for e, k in keys)
        )
