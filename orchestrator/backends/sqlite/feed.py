"""The SQLite event log's global feed and the projection checkpoints stored beside it.

Every event row has a ``position``: the writer numbers a transaction's rows on from the last
position handed out, inside that transaction. Writers of one file are serialised by SQLite's
write lock (``BEGIN IMMEDIATE``), so positions are handed out in commit order, and a reader sees a
transaction's rows all at once or not at all: reading ``position > P`` never skips a committed
event. The last position handed out is the highest stored one (the end of the unique index, a
page the insert dirties anyway), or ``feed_head`` when higher: deleting an execution first raises
``feed_head`` to the highest position, so a position is never reused, not even after retention
deleted the newest rows. Schema 2 of the event log adds the column (see :func:`add_positions`);
a file of schema 1 is upgraded when it is opened.
"""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Sequence, Set
from typing import Protocol, TypeVar, TypeVarTuple

from orchestrator.ports import EventCodec, FeedPage
from schemas import fields
from schemas.envelope import Envelope

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# The bodies of positions this process holds in memory (``RecentEvents``) are not read: NULL.
_READ_AFTER = (
    "SELECT position, CASE WHEN position BETWEEN ? AND ? THEN NULL ELSE body END FROM events"
    " WHERE position > ? ORDER BY position LIMIT ?"
)
_BODIES_AT = "SELECT position, body FROM events WHERE position IN (SELECT value FROM json_each(?))"
_HEAD = (
    "SELECT max(coalesce((SELECT max(position) FROM events), 0),"
    " (SELECT position FROM feed_head WHERE id = 0))"
)
_KEEP_HEAD = (
    "UPDATE feed_head SET position = max(position, coalesce((SELECT max(position) FROM events), 0))"
    " WHERE id = 0"
)
_LOAD = "SELECT position FROM checkpoints WHERE name = ?"
_SAVE = (
    "INSERT INTO checkpoints (name, position) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET position = excluded.position"
)
# Events of a schema-1 file get positions in time order, kept in sequence order per execution
# (the running maximum of its times), which is the order they were committed in unless a clock
# went back.
_BACKFILL = (
    "UPDATE events SET position = ranked.n FROM (SELECT execution_id, sequence, row_number()"
    " OVER (ORDER BY upto, execution_id, sequence) AS n FROM (SELECT execution_id, sequence,"
    " max(time) OVER (PARTITION BY execution_id ORDER BY sequence) AS upto FROM events))"
    " AS ranked WHERE events.execution_id = ranked.execution_id AND events.sequence = ranked.sequence"
)
_SCHEMA_2 = (
    "ALTER TABLE events ADD COLUMN position INTEGER",
    _BACKFILL,
    "CREATE UNIQUE INDEX events_by_position ON events (position)",
    "CREATE TABLE feed_head (id INTEGER PRIMARY KEY CHECK (id = 0), position INTEGER NOT NULL)",
    "INSERT INTO feed_head VALUES (0, (SELECT coalesce(max(position), 0) FROM events))",
    "CREATE TABLE checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID",
)


def add_positions(connection: sqlite3.Connection) -> None:
    """Event log schema 1 -> 2: the position column, its index, the counter and checkpoints.

    Runs inside the transaction that opens the file, so it applies whole or not at all."""
    for statement in _SCHEMA_2:
        connection.execute(statement)


def last_position(connection: sqlite3.Connection) -> int:
    """The last position handed out (read inside the writer's transaction)."""
    (position,) = connection.execute(_HEAD).fetchone()
    return int(position)


def keep_head(connection: sqlite3.Connection) -> None:
    """Before deleting events (in the same transaction): remember the highest position."""
    connection.execute(_KEEP_HEAD)


class Database(Protocol):
    """What the feed needs of the event log's database: its connection, on its own thread."""

    @property
    def connection(self) -> sqlite3.Connection: ...

    async def run(self, function: Callable[[*Ts], T], *args: *Ts) -> T: ...


class Coded(Protocol):
    """The event log, whose codec (identity or AES-GCM) the feed decodes rows with."""

    codec: EventCodec


class RecentEvents:
    """The envelopes of the last ``capacity`` events this process committed, by feed position.

    A projection in the same process reads the feed just behind the writer; what it reads is
    taken from here rather than decoded again (with encryption on, decrypted and parsed: about
    27 µs an event). Only positions the database returned are looked up, and a position names
    one event for good (positions are never handed out twice; a re-encrypted row keeps its
    plaintext), so a hit is exactly what decoding the row would give.
    """

    def __init__(self, capacity: int = 8192) -> None:
        self._capacity = capacity
        # An OrderedDict drops its oldest entry in constant time; a dict's ``next(iter(...))``
        # walks over the slots of every entry deleted before it (quadratic in a long run).
        self._events: OrderedDict[int, Envelope] = OrderedDict()

    def add(self, first: int, events: Sequence[Envelope]) -> None:
        for offset, event in enumerate(events):
            self._events[first + offset] = event
        while len(self._events) > self._capacity:
            self._events.popitem(last=False)

    def get(self, position: int) -> Envelope | None:
        return self._events.get(position)

    def span(self) -> tuple[int, int]:
        """The oldest and newest positions held (``(0, -1)`` when none): the rows whose bodies a
        read may skip. Positions in between that are not held (another process wrote them, or
        they were dropped since) are read again by position."""
        if not self._events:
            return 0, -1
        return next(iter(self._events)), next(reversed(self._events))


class SQLiteFeed:
    """Reads of the feed run on the event log's thread and connection, between its commits."""

    delay = 0.0

    def __init__(self, db: Database, log: Coded, recent: RecentEvents | None = None) -> None:
        self._db = db
        self._log = log
        self._recent = recent or RecentEvents(0)

    async def read_after(self, position: int, limit: int = 1000) -> FeedPage:
        rows, last = await self._rows_after(position, limit)
        missing = [body for _, envelope, body in rows if envelope is None]
        decoded = iter(await self._log.codec.decode(missing) if missing else ())
        items = [(at, envelope or next(decoded)) for at, envelope, _ in rows]
        return FeedPage(items, last)

    async def read_fields_after(self, position: int, limit: int, wanted: Set[str]) -> fields.FieldsPage:
        """``read_after`` as fields (``schemas.fields``): recent events from their envelopes,
        other plaintext bodies read straight into tuples; an encrypting codec's go through its
        envelopes."""
        if self._log.codec.encrypts:
            page = await self.read_after(position, limit)
            of = fields.of_envelope
            return fields.FieldsPage([of(at, envelope, wanted) for at, envelope in page.items], page.last)
        rows, last = await self._rows_after(position, limit)
        read, of = fields.from_bytes, fields.of_envelope
        items = [read(at, body, wanted) if envelope is None else of(at, envelope, wanted) for at, envelope, body in rows]
        return fields.FieldsPage(items, last)

    async def _rows_after(self, position: int, limit: int) -> tuple[list[tuple[int, Envelope | None, bytes]], int]:
        """The events after ``position``, each with its envelope when this process holds it, else
        with its stored body; and the last position read. A body the first read skipped but
        the envelope is gone meanwhile is read again by position (a row deleted in between, by
        retention, is left out)."""
        low, high = self._recent.span()
        rows = await self._db.run(self._read_after, position, limit, low, high)
        recent = self._recent.get
        found: list[tuple[int, Envelope | None, bytes]] = []
        unread: list[int] = []
        for at, body in rows:
            if body is not None:
                found.append((at, None, body))
            elif (envelope := recent(at)) is not None:
                found.append((at, envelope, b""))
            else:
                unread.append(at)
                found.append((at, None, b""))
        if unread:
            bodies = await self._db.run(self._bodies_at, unread)
            found = [
                (at, envelope, body if envelope is not None or body else bodies[at])
                for at, envelope, body in found
                if envelope is not None or body or at in bodies
            ]
        return found, rows[-1][0] if rows else position

    async def head(self) -> int:
        return await self._db.run(self._head)

    def _read_after(self, position: int, limit: int, low: int, high: int) -> list[tuple[int, bytes | None]]:
        params = (low, high, position, max(limit, 0))
        return list(self._db.connection.execute(_READ_AFTER, params).fetchall())

    def _bodies_at(self, positions: list[int]) -> dict[int, bytes]:
        return dict(self._db.connection.execute(_BODIES_AT, (json.dumps(positions),)).fetchall())

    def _head(self) -> int:
        return last_position(self._db.connection)


class SQLiteCheckpoints:
    """``checkpoints (name, position)`` in the event log's file."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self, name: str) -> int:
        return await self._db.run(self._load, name)

    async def save(self, name: str, position: int) -> None:
        await self._db.run(self._save, name, position)

    def _load(self, name: str) -> int:
        row = self._db.connection.execute(_LOAD, (name,)).fetchone()
        return 0 if row is None else int(row[0])

    def _save(self, name: str, position: int) -> None:
        self._db.connection.execute(_SAVE, (name, position))  # autocommit: its own transaction
