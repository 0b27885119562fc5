"""The global feed in Cassandra: announce every append attempt, serve it once it has settled.

Cassandra has no global order, and an append is a lightweight transaction on the execution's own
partition, which cannot also write a row of another partition. So each append ATTEMPT is first
announced: a plain QUORUM write of one ``feed`` row (position, execution, first and last sequence,
a digest of the last event's bytes) into the minute bucket of its position, and only then
proposed. The position is this process's clock in microseconds, above the execution's previous
position (``events.feed_position``, written by the append's LWT) and above every position this
process handed out, so one execution's appends are in order in the feed.

The settle rule. A reader serves rows up to its horizon, ``now - delay``, and reports the feed
complete up to there; it never goes back. That is safe when every row at or before the horizon is
visible by then, so the writer checks that its announcement was acknowledged within ``delay / 2``
of its position, and announces again (a new row, a later position) otherwise, before proposing.
With clocks that agree within ``delay / 2``, a reader never passes a row it cannot see yet.

A row is a claim, not a fact: the attempt may lose (another writer took the sequence), fail, or
still be in flight. The reader checks each row against the events partition: the events are there
and the last one's digest matches, so it is served; they are someone else's, so it is skipped;
they are missing, so the partition is read at SERIAL first (which completes or voids a Paxos round
left in progress, like the append's own ambiguous-timeout check) and read again. ``delay`` must
therefore also exceed how long an LWT can stay in flight in the cluster (``cas_contention_timeout``
plus ``write_request_timeout``, 1 s + 2 s by default); as a last guard, an append whose commit
came back later than ``delay / 2`` is announced once more. Both repeats can make an event appear
twice in the feed, never zero times. Deleted executions (retention) leave rows behind that resolve
to nothing. Buckets that hold rows are listed in ``feed_buckets`` (per day) and ``feed_days``,
written before the first row of each, so a reader walks only non-empty buckets.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence, Set
from typing import NamedTuple, Protocol

from cassandra.query import BoundStatement, PreparedStatement

from orchestrator.backends.cassandra.schema import PAGE_SIZE, CassandraSettings, Database
from orchestrator.ports import BackendUnavailable, EventCodec, FeedPage
from schemas import fields
from schemas.envelope import Envelope

log = logging.getLogger(__name__)

BUCKET_MICROS = 60_000_000  # never change: stored buckets count in minutes
BUCKETS_PER_DAY = 1440
ANNOUNCE_ATTEMPTS = 5
CONCURRENT_READS = 32  # executions resolved at once while serving a page
_SEEN_BUCKETS = 4096  # bucket index rows this process remembers having written

_ROW = "position, attempt, execution_id, first_sequence, last_sequence, digest"
FEED_CQL = {
    "feed_announce": f"INSERT INTO {{ks}}.feed (bucket, {_ROW}) VALUES (?, ?, ?, ?, ?, ?, ?)",
    "feed_add_day": "INSERT INTO {ks}.feed_days (scope, day) VALUES ('all', ?)",
    "feed_add_bucket": "INSERT INTO {ks}.feed_buckets (day, bucket) VALUES (?, ?)",
    "feed_days": "SELECT day FROM {ks}.feed_days WHERE scope = 'all' AND day >= ? AND day <= ?",
    "feed_buckets": "SELECT bucket FROM {ks}.feed_buckets WHERE day = ? AND bucket >= ? AND bucket <= ?",
    "feed_rows": f"SELECT {_ROW} FROM {{ks}}.feed WHERE bucket = ? AND position > ? AND position <= ?",
    "feed_events": "SELECT sequence, body FROM {ks}.events"
    " WHERE execution_id = ? AND sequence >= ? AND sequence <= ?",
    "feed_serial": "SELECT last_sequence FROM {ks}.events WHERE execution_id = ? LIMIT 1",
    "checkpoint_load": "SELECT position FROM {ks}.checkpoints WHERE name = ?",
    "checkpoint_save": "INSERT INTO {ks}.checkpoints (name, position) VALUES (?, ?)",
}


class Backend(Protocol):
    """What the feed needs of the event log: its settings, session and prepared statements."""

    settings: CassandraSettings
    codec: EventCodec  # stored bytes -> envelopes (identity, or AES-GCM)

    @property
    def database(self) -> Database: ...

    @property
    def statements(self) -> Mapping[str, PreparedStatement]: ...


class FeedRow(NamedTuple):
    position: int
    attempt: uuid.UUID
    execution_id: str
    first: int
    last: int
    digest: bytes


def digest(body: bytes) -> bytes:
    """What a feed row knows of its append's last event: enough to tell it from a rival's."""
    return hashlib.blake2b(body, digest_size=16).digest()


def bucket_of(position: int) -> int:
    return position // BUCKET_MICROS


class FeedWriter:
    """Announces each append attempt before it is proposed (the event log calls it)."""

    def __init__(self, backend: Backend, clock: Callable[[], float] = time.time) -> None:
        self._backend = backend
        self._clock = clock
        self._last = 0  # the last position this process handed out
        self._indexed: set[tuple[str, int]] = set()  # ("day" | "bucket", n) rows written

    @property
    def budget(self) -> int:
        """Microseconds an announcement may take, from its position to its acknowledgement."""
        return int(self._backend.settings.feed_delay * 1e6 / 2)

    def _now(self) -> int:
        return int(self._clock() * 1e6)

    async def announce(self, events: Sequence[Envelope], after: int) -> int:
        """Write the feed row of one append attempt; its position (> ``after``)."""
        first, last = events[0], events[-1]
        db, cql = self._backend.database, self._backend.statements
        for _ in range(ANNOUNCE_ATTEMPTS):
            position = self._last = max(self._now(), after + 1, self._last + 1)
            await self._index(position)
            row = (position, uuid.uuid4(), last.subject, first.sequence, last.sequence, digest(last.to_bytes()))
            await db.rows(cql["feed_announce"], bucket_of(position), *row)
            if self._now() - position <= self.budget:
                return position
            log.info("feed row of %s at %d acknowledged late; announcing again", last.subject, position)
        raise BackendUnavailable(
            f"{self._backend.settings.url}: feed rows take longer than {self.budget / 1e6:.1f}s to write"
        )

    async def committed(self, events: Sequence[Envelope], position: int) -> int:
        """After the attempt at ``position`` applied: announce it again when the commit came back
        so late that a reader may have passed the position. The highest position used."""
        if self._now() - position <= self.budget:
            return position
        log.warning("append to %s committed late; announcing it again", events[-1].subject)
        return await self.announce(events, position)

    async def _index(self, position: int) -> None:
        bucket = bucket_of(position)
        day = bucket // BUCKETS_PER_DAY
        db, cql = self._backend.database, self._backend.statements
        if ("day", day) not in self._indexed:
            await db.rows(cql["feed_add_day"], day)
        if ("bucket", bucket) not in self._indexed:
            await db.rows(cql["feed_add_bucket"], day, bucket)
        if len(self._indexed) > _SEEN_BUCKETS:
            self._indexed.clear()
        self._indexed |= {("day", day), ("bucket", bucket)}


class CassandraFeed:
    """Serves the settled part of the feed: rows at or before ``now - delay``."""

    def __init__(self, backend: Backend, clock: Callable[[], float] = time.time) -> None:
        self._backend = backend
        self._clock = clock
        self.delay = backend.settings.feed_delay

    def _horizon(self) -> int:
        return int((self._clock() - self.delay) * 1e6)

    async def head(self) -> int:
        """The horizon: every event committed so far is at or before it once it has settled."""
        return self._horizon()

    async def read_after(self, position: int, limit: int = 1000) -> FeedPage:
        horizon = self._horizon()  # first: rows at or before it are visible from now on
        if limit <= 0 or horizon <= position:
            return FeedPage([], position)
        rows, complete = await self._rows(position, horizon, limit)
        items = await self._resolve(rows)
        return FeedPage(items, horizon if complete else rows[-1].position)

    async def read_fields_after(self, position: int, limit: int, wanted: Set[str]) -> fields.FieldsPage:
        """``read_after`` as fields (``schemas.fields``)."""
        page = await self.read_after(position, limit)
        return fields.FieldsPage([fields.of_envelope(at, e, wanted) for at, e in page.items], page.last)

    async def _rows(self, after: int, horizon: int, limit: int) -> tuple[list[FeedRow], bool]:
        """Rows in (after, horizon], in order, until ``limit`` events and the end of their
        position; True when the range was read to its end."""
        found: list[FeedRow] = []
        events = 0
        async with contextlib.aclosing(self._range(after, horizon, limit + 1)) as rows:
            async for row in rows:
                if events >= limit and row.position != found[-1].position:
                    return found, False
                found.append(row)
                events += row.last - row.first + 1
        return found, True

    async def _range(self, after: int, horizon: int, page: int) -> AsyncGenerator[FeedRow, None]:
        db, cql = self._backend.database, self._backend.statements
        low, high = bucket_of(after + 1), bucket_of(horizon)
        days = cql["feed_days"].bind((low // BUCKETS_PER_DAY, high // BUCKETS_PER_DAY))
        async for day_rows in db.pages(days):
            for (day,) in day_rows:
                first = max(low, day * BUCKETS_PER_DAY)
                last = min(high, (day + 1) * BUCKETS_PER_DAY - 1)
                async for bucket_rows in db.pages(cql["feed_buckets"].bind((day, first, last))):
                    for (bucket,) in bucket_rows:
                        statement = cql["feed_rows"].bind((bucket, after, horizon))
                        async for rows in db.pages(statement, min(page, PAGE_SIZE)):
                            for row in rows:
                                yield FeedRow(*row)

    async def _resolve(self, rows: list[FeedRow]) -> list[tuple[int, Envelope]]:
        """The events of the rows whose appends committed, in row order, each append once."""
        by_execution: dict[str, list[FeedRow]] = {}
        for row in rows:
            by_execution.setdefault(row.execution_id, []).append(row)
        gate = asyncio.Semaphore(CONCURRENT_READS)

        async def resolve(execution_id: str) -> dict[FeedRow, list[Envelope]]:
            async with gate:
                return await self._committed(execution_id, by_execution[execution_id])

        found: dict[FeedRow, list[Envelope]] = {}
        for part in await asyncio.gather(*(resolve(e) for e in by_execution)):
            found.update(part)
        items: list[tuple[int, Envelope]] = []
        served: set[tuple[str, int, int, bytes]] = set()
        for row in rows:
            key = (row.execution_id, row.first, row.last, row.digest)
            if row in found and key not in served:  # an append announced twice is served once
                served.add(key)
                items += [(row.position, envelope) for envelope in found[row]]
        return items

    async def _committed(self, execution_id: str, rows: list[FeedRow]) -> dict[FeedRow, list[Envelope]]:
        stored = await self._events(execution_id, rows)
        if any(row.last not in stored for row in rows if _bodies(row, stored) is None):
            # missing events: complete (or void) a Paxos round in progress, then look again
            statement = self._backend.statements["feed_serial"].bind((execution_id,))
            statement.consistency_level = self._backend.database.serial
            await self._backend.database.run(statement)
            stored = await self._events(execution_id, rows)
        matched = {row: _bodies(row, stored) for row in rows}
        return {row: bodies for row, bodies in matched.items() if bodies is not None}

    async def _events(self, execution_id: str, rows: list[FeedRow]) -> dict[int, Envelope]:
        """The stored events in the rows' range, decoded (the announced digest is of the
        plaintext form, so re-encrypting a stored event never hides it from the feed)."""
        low, high = min(r.first for r in rows), max(r.last for r in rows)
        statement: BoundStatement = self._backend.statements["feed_events"].bind((execution_id, low, high))
        stored: dict[int, Envelope] = {}
        async for page in self._backend.database.pages(statement):
            decoded = await self._backend.codec.decode([body for _, body in page])
            stored.update((envelope.sequence, envelope) for envelope in decoded)
        return stored


def _bodies(row: FeedRow, stored: dict[int, Envelope]) -> list[Envelope] | None:
    """The row's events when they are stored and its last one is the announced one."""
    bodies = [stored.get(sequence) for sequence in range(row.first, row.last + 1)]
    last = bodies[-1]
    if last is None or any(body is None for body in bodies) or digest(last.to_bytes()) != row.digest:
        return None
    return [body for body in bodies if body is not None]


class CassandraCheckpoints:
    """``checkpoints (name) -> position`` in the event log's keyspace."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def load(self, name: str) -> int:
        rows = await self._backend.database.rows(self._backend.statements["checkpoint_load"], name)
        return int(rows[0][0]) if rows else 0

    async def save(self, name: str, position: int) -> None:
        await self._backend.database.rows(self._backend.statements["checkpoint_save"], name, position)
