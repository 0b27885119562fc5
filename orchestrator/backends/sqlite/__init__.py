"""SQLite event log and registry (``sqlite:///path.db``): the embedded, durable backend.

Every blocking sqlite3 call of an instance runs on that instance's one dedicated thread, on its
own connection (``check_same_thread`` enforces it). Appends are committed by one writer
coroutine: alone when nothing else waits, otherwise together with every append that queued up
during the previous commit, in one transaction with one SAVEPOINT per append (group commit).
The global feed over the same file (positions, checkpoints, schema 2) is ``sqlite/feed.py``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, TypeVarTuple
from urllib.parse import parse_qs, unquote

import orjson

from orchestrator.backends.paging import cursor_of
from orchestrator.backends.sqlite import encryption
from orchestrator.backends.sqlite.analytics import ANALYTICS_DDL, SQLiteAnalytics
from orchestrator.backends.sqlite.execution_tags import add_execution_tags
from orchestrator.backends.sqlite.feed import (
    RecentEvents,
    SQLiteCheckpoints,
    SQLiteFeed,
    add_positions,
    keep_head,
    last_position,
)
from orchestrator.backends.summary import check_sequences, summarize
from orchestrator.backends.versions import check_owner, same_content
from orchestrator.crypto.identity import IDENTITY
from orchestrator.instrumentation import NO_INSTRUMENTS, Instruments
from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import (
    BackendUnavailable,
    Checkpoints,
    ConcurrencyError,
    DataKeyRecord,
    EventCodec,
    EventFeed,
    ExecutionPage,
    ExecutionQuery,
    ExecutionSummary,
    Link,
    Snapshot,
    StoredTransform,
    UnknownWorkflow,
    VersionConflict,
)
from schemas.definition import WorkflowDefinition
from schemas.envelope import Envelope

PREFIX = "sqlite:///"
SCHEMA_VERSION = 1  # of a new file, before its component's migrations
MAX_BATCH = 512  # appends per group-commit transaction
ID_PAGE = 1000  # execution ids per query of execution_ids()
BUSY_TIMEOUT_SECONDS = 5.0
# Group commits dirty a page per execution they touch: a bigger page cache and fewer, larger
# checkpoints cut the cost of a 500-append commit by about a fifth (bench/sqlite_log.py).
_TUNING = (
    "PRAGMA cache_size = -65536",  # KiB
    "PRAGMA wal_autocheckpoint = 10000",  # pages
    "PRAGMA journal_size_limit = 67108864",  # bytes of WAL kept after a checkpoint
)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
EventRow = tuple[str, int, str, str, bytes]
Migration = Callable[[sqlite3.Connection], None]
# Schema upgrades after version 1, in order: entry i takes a file from version i + 1 to i + 2.
# 2: the global feed; 3: the executions index by who started them and by correlation key
_EVENT_LOG_MIGRATIONS: tuple[Migration, ...] = (add_positions, add_execution_tags)

_SCHEMA_VERSION_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_version"
    " (component TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID"
)
_EVENT_LOG_DDL = (
    "CREATE TABLE IF NOT EXISTS events (execution_id TEXT NOT NULL, sequence INTEGER NOT NULL,"
    " type TEXT NOT NULL, time TEXT NOT NULL, body BLOB NOT NULL,"
    " PRIMARY KEY (execution_id, sequence)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS executions (execution_id TEXT PRIMARY KEY, workflow TEXT NOT NULL,"
    " version INTEGER NOT NULL, tenant TEXT NOT NULL, status TEXT NOT NULL,"
    " started_at TEXT NOT NULL, updated_at TEXT NOT NULL, last_sequence INTEGER NOT NULL,"
    " parent_id TEXT) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS executions_by_workflow ON executions (workflow, started_at, execution_id)",
    "CREATE INDEX IF NOT EXISTS executions_by_status ON executions (status, started_at, execution_id)",
    "CREATE INDEX IF NOT EXISTS executions_by_start ON executions (started_at, execution_id)",
    # Added after schema 1 shipped: new tables only, created IF NOT EXISTS at every open, so
    # older files gain them and older code ignores them (no version bump needed). Snapshots
    # keep rowids: their bodies can be large, which WITHOUT ROWID tables handle badly.
    "CREATE TABLE IF NOT EXISTS snapshots (execution_id TEXT NOT NULL, sequence INTEGER NOT NULL,"
    " body BLOB NOT NULL, PRIMARY KEY (execution_id, sequence))",
    "CREATE TABLE IF NOT EXISTS links (execution_id TEXT NOT NULL, other_id TEXT NOT NULL,"
    " relation TEXT NOT NULL, created_at TEXT NOT NULL,"
    " PRIMARY KEY (execution_id, relation, other_id)) WITHOUT ROWID",
    encryption.DATA_KEYS_DDL,
    *ANALYTICS_DDL,
)
_REGISTRY_DDL = (
    "CREATE TABLE IF NOT EXISTS definitions (name TEXT NOT NULL, version INTEGER NOT NULL,"
    " body TEXT NOT NULL, PRIMARY KEY (name, version)) WITHOUT ROWID",
    # Operator overrides of triggers' enabled flags (added later: created IF NOT EXISTS at open).
    "CREATE TABLE IF NOT EXISTS trigger_states (workflow TEXT NOT NULL, trigger TEXT NOT NULL,"
    " enabled INTEGER NOT NULL, PRIMARY KEY (workflow, trigger)) WITHOUT ROWID",
)
_SET_TRIGGER_STATE = (
    "INSERT INTO trigger_states (workflow, trigger, enabled) VALUES (?, ?, ?)"
    " ON CONFLICT (workflow, trigger) DO UPDATE SET enabled = excluded.enabled"
)

_COLUMNS = (
    "execution_id, workflow, version, tenant, status, started_at, updated_at, last_sequence,"
    " parent_id, started_by, correlation_key"
)
_INSERT_EXECUTION = f"INSERT INTO executions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SELECT_SUMMARY = f"SELECT {_COLUMNS} FROM executions WHERE execution_id = ?"
_ADVANCE = "UPDATE executions SET updated_at = ?, last_sequence = ? WHERE execution_id = ?"
_ADVANCE_STATUS = "UPDATE executions SET status = ?, updated_at = ?, last_sequence = ? WHERE execution_id = ?"
_SET_CORRELATION = "UPDATE executions SET correlation_key = ? WHERE execution_id = ?"
_INSERT_EVENTS = (
    "INSERT INTO events (execution_id, sequence, type, time, body, position) VALUES (?, ?, ?, ?, ?, ?)"
)
# Set-based statements for a whole group commit: one parameter holds a JSON array of rows, so a
# batch of any size costs a handful of statements (each sqlite3 call releases and retakes the
# GIL, which under load costs far more than the work itself).
_SELECT_HEADS = f"SELECT {_COLUMNS} FROM executions WHERE execution_id IN (SELECT value FROM json_each(?))"
# The bodies travel as one blob beside the JSON (each row names its offset and length in it):
# escaping them into JSON text cost more than the rest of the statement.
_INSERT_EVENTS_JSON = (
    "INSERT INTO events (execution_id, sequence, type, time, body, position) SELECT value ->> 0,"
    " value ->> 1, value ->> 2, value ->> 3, substr(?2, value ->> 4, value ->> 5), value ->> 6 FROM json_each(?1)"
)
_UPSERT_SUMMARIES_JSON = (
    f"INSERT INTO executions ({_COLUMNS}) SELECT value ->> 0, value ->> 1, value ->> 2,"
    " value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8,"
    " value ->> 9, value ->> 10 FROM json_each(?) WHERE true ON CONFLICT (execution_id) DO UPDATE"
    " SET status = excluded.status, updated_at = excluded.updated_at,"
    " last_sequence = excluded.last_sequence, correlation_key = excluded.correlation_key"
)


def _json_text(rows: list[Any]) -> str:
    """Rows for ``json_each`` as JSON text (orjson: about a tenth of the standard encoder's time)."""
    return orjson.dumps(rows).decode()


_READ = "SELECT body FROM events WHERE execution_id = ? AND sequence > ? ORDER BY sequence LIMIT ?"
_IDS_AFTER = "SELECT execution_id FROM executions WHERE execution_id > ? ORDER BY execution_id LIMIT ?"
_SAVE_SNAPSHOT = "INSERT OR REPLACE INTO snapshots (execution_id, sequence, body) VALUES (?, ?, ?)"
_LOAD_SNAPSHOT = (
    "SELECT sequence, body FROM snapshots WHERE execution_id = ? AND sequence <= ?"
    " ORDER BY sequence DESC LIMIT 1"
)
_ADD_LINK = "INSERT OR IGNORE INTO links (execution_id, other_id, relation, created_at) VALUES (?, ?, ?, ?)"
_LINKS = (
    "SELECT execution_id, other_id, relation, created_at FROM links WHERE execution_id = ?"
    " ORDER BY created_at, relation, other_id"
)
_DELETE_EXECUTION = tuple(
    f"DELETE FROM {table} WHERE execution_id = ?" for table in ("events", "executions", "snapshots", "links")
)
_MAX_SEQUENCE = 2**63 - 1


@dataclass(frozen=True, slots=True)
class SQLiteSettings:
    """Where the database file is and how hard each commit is flushed to disk."""

    url: str
    path: str
    synchronous: Literal["full", "normal"] = "full"

    @classmethod
    def from_url(cls, url: str) -> SQLiteSettings:
        """``sqlite:///relative.db``, ``sqlite:////abs.db``, optional ``?synchronous=normal``."""
        if not url.startswith(PREFIX):
            raise ValueError(f"{url!r} is not sqlite:///relative.db or sqlite:////absolute.db")
        path, _, query = url.removeprefix(PREFIX).partition("?")
        if not path:
            raise ValueError(f"{url!r} names no database file")
        params = parse_qs(query, keep_blank_values=True)
        if unknown := sorted(set(params) - {"synchronous"}):
            raise ValueError(f"{url!r}: unknown parameters {unknown}; known: synchronous")
        synchronous = params.get("synchronous", ["full"])[-1].lower()
        if synchronous == "full":
            return cls(url, unquote(path), "full")
        if synchronous == "normal":
            return cls(url, unquote(path), "normal")
        raise ValueError(f"{url!r}: synchronous must be full or normal, not {synchronous!r}")


# Primary result codes that mean "not now" rather than "never": SQLITE_BUSY, SQLITE_LOCKED,
# SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN.
_UNAVAILABLE_CODES = frozenset({5, 6, 10, 13, 14})


class _Database:
    """One connection, used only from one explicit worker thread, opened and closed with it."""

    def __init__(
        self,
        settings: SQLiteSettings,
        component: str,
        ddl: Sequence[str],
        migrations: Sequence[Migration] = (),
    ) -> None:
        self.settings = settings
        self._component = component
        self._ddl = ddl
        self._migrations = migrations
        self.version = SCHEMA_VERSION + len(migrations)  # what this code writes
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection; only for functions passed to :meth:`run`."""
        if self._connection is None:
            raise RuntimeError(f"{self.settings.url}: {self._component} is not started")
        return self._connection

    async def open(self) -> None:
        if self._executor is not None:
            raise RuntimeError(f"{self.settings.url}: {self._component} is already started")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{self._component}")
        try:
            await self.run(self._connect)
        except BaseException:
            self._executor.shutdown(wait=True)
            self._executor = None
            raise

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self.run(self._disconnect)
        finally:
            # The thread is idle now that the last job returned: joining it does not block.
            self._executor.shutdown(wait=True)
            self._executor = None

    async def run(self, function: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run a blocking function on this database's thread. A database that stays busy or
        locked past the busy timeout (another process writing), or an I/O failure, is
        BackendUnavailable: worth retrying, unlike a bug."""
        if self._executor is None:
            raise RuntimeError(f"{self.settings.url}: {self._component} is not started")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _UNAVAILABLE_CODES:
                raise
            raise BackendUnavailable(f"{self.settings.url}: {self._component}: {exc}") from exc

    def _connect(self) -> None:
        url = self.settings.url
        try:
            connection = sqlite3.connect(
                self.settings.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"cannot open {url}: {exc}") from exc
        try:
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise BackendUnavailable(f"cannot open {url}: journal mode is {mode}, not WAL")
            connection.execute(f"PRAGMA synchronous = {self.settings.synchronous.upper()}")
            for pragma in _TUNING:
                connection.execute(pragma)
            connection.execute("BEGIN IMMEDIATE")
            for statement in (_SCHEMA_VERSION_DDL, *self._ddl):
                connection.execute(statement)
            connection.execute(
                "INSERT OR IGNORE INTO schema_version VALUES (?, ?)",
                (self._component, SCHEMA_VERSION),
            )
            (found,) = connection.execute(
                "SELECT version FROM schema_version WHERE component = ?", (self._component,)
            ).fetchone()
            if found < self.version:  # upgrade in the same transaction: all of it or nothing
                for migration in self._migrations[found - SCHEMA_VERSION :]:
                    migration(connection)
                connection.execute(
                    "UPDATE schema_version SET version = ? WHERE component = ?",
                    (self.version, self._component),
                )
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            connection.close()
            raise BackendUnavailable(f"cannot open {url}: {exc}") from exc
        except BaseException:
            connection.close()
            raise
        if found > self.version:
            connection.close()
            newer = f"{self._component} schema {found} is newer than {self.version}"
            raise BackendUnavailable(f"cannot open {url}: {newer}")
        self._connection = connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@dataclass(slots=True)
class _Append:
    execution_id: str
    expected: int
    events: Sequence[Envelope]
    rows: list[EventRow]
    started: ExecutionSummary | None  # the new row when this append starts the execution
    future: asyncio.Future[None]
    first_position: int = 0  # set by the commit that wrote it: its first event's feed position


class SQLiteEventLog(Lifecycle):
    """Durable event streams plus the executions index, in one WAL-mode SQLite file."""

    instruments: Instruments = NO_INSTRUMENTS  # set by the runtime: each group commit's size

    def __init__(self, settings: SQLiteSettings) -> None:
        self.settings = settings
        self._db = _Database(settings, "event_log", _EVENT_LOG_DDL, _EVENT_LOG_MIGRATIONS)
        self._queue: asyncio.Queue[_Append | None] | None = None
        self._recent = RecentEvents()
        self._writer: asyncio.Task[None] | None = None
        self.codec: EventCodec = IDENTITY  # orchestrator.crypto.setup.attach sets AES-GCM

    @classmethod
    def from_url(cls, url: str) -> SQLiteEventLog:
        return cls(SQLiteSettings.from_url(url))

    async def start(self) -> None:
        await self._db.open()
        self._queue = asyncio.Queue()
        self._writer = asyncio.create_task(self._write(self._queue), name="sqlite-event-log-writer")

    async def stop(self) -> None:
        """Commit what is already queued, then close."""
        queue, writer = self._queue, self._writer
        self._queue = self._writer = None
        try:
            if queue is not None and writer is not None:
                queue.put_nowait(None)
                await writer
        finally:
            await self._db.close()

    async def append(self, execution_id: str, expected_sequence: int, events: Sequence[Envelope]) -> None:
        """Append events numbered expected_sequence+1...; ConcurrencyError if not the last.

        Returns once the events are committed. Cancelling the caller does not withdraw an
        append that is already queued.
        """
        check_sequences(execution_id, expected_sequence, events)
        if not events:
            current = await self.summary(execution_id)
            if (current.last_sequence if current else 0) != expected_sequence:
                raise ConcurrencyError(execution_id, expected_sequence)
            summarize(current, events)  # ValueError when there is no execution yet
            return
        queue = self._queue
        if queue is None:
            raise RuntimeError(f"{self.settings.url}: event log is not started")
        started = summarize(None, events) if expected_sequence == 0 else None
        bodies = await self.codec.encode(events)
        rows = [(execution_id, e.sequence, e.type, e.time, b) for e, b in zip(events, bodies, strict=True)]
        future = asyncio.get_running_loop().create_future()
        queue.put_nowait(_Append(execution_id, expected_sequence, events, rows, started, future))
        await future

    async def read(
        self, execution_id: str, after_sequence: int = 0, limit: int | None = None
    ) -> list[Envelope]:
        return await self.codec.decode(await self._db.run(self._read, execution_id, after_sequence, limit))

    async def summary(self, execution_id: str) -> ExecutionSummary | None:
        return await self._db.run(self._summary, execution_id)

    async def list_executions(self, query: ExecutionQuery) -> ExecutionPage:
        return await self._db.run(self._list, query)

    async def execution_ids(self) -> AsyncIterator[str]:
        """Every execution, by id, ID_PAGE per query (no cursor stays open between pages)."""
        after = ""
        while True:
            page = await self._db.run(self._ids_after, after)
            for execution_id in page:
                yield execution_id
            if len(page) < ID_PAGE:
                return
            after = page[-1]

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        row = (snapshot.execution_id, snapshot.sequence, await self.codec.seal_snapshot(snapshot))
        await self._db.run(self._execute, _SAVE_SNAPSHOT, row)

    async def load_snapshot(self, execution_id: str, at_most: int | None = None) -> Snapshot | None:
        limit = _MAX_SEQUENCE if at_most is None else at_most
        stored = await self._db.run(self._load_snapshot, execution_id, limit)
        return None if stored is None else await self.codec.open_snapshot(stored)

    async def delete_execution(self, execution_id: str) -> bool:
        """Events, summary, snapshots and links in one transaction."""
        return await self._db.run(self._delete, execution_id)

    async def add_link(self, link: Link) -> None:
        """Record a link; the first record of (relation, other_id) stands."""
        row = (link.execution_id, link.other_id, link.relation, link.created_at)
        await self._db.run(self._execute, _ADD_LINK, row)

    async def links(self, execution_id: str) -> list[Link]:
        return await self._db.run(self._links, execution_id)

    def feed(self) -> EventFeed:
        """Every committed event by position (``sqlite/feed.py``), read on this log's thread."""
        return SQLiteFeed(self._db, self, self._recent)

    # -- encryption at rest (sqlite/encryption.py) ---------------------------------------------

    async def insert_data_key(self, record: DataKeyRecord) -> DataKeyRecord:
        return await self._db.run(encryption.insert_data_key, self._db.connection, record)

    async def data_keys(self, tenant: str | None = None) -> list[DataKeyRecord]:
        return await self._db.run(encryption.data_keys, self._db.connection, tenant)

    async def delete_data_keys(self, key_id: str) -> int:
        return await self._db.run(encryption.delete_data_keys, self._db.connection, key_id)

    async def rewrite_stored(self, execution_id: str, transform: StoredTransform) -> int:
        rows = await self._db.run(encryption.stored_rows, self._db.connection, execution_id)
        changes = [(row, new) for row in rows if (new := await transform(*row)) is not None]
        if not changes:
            return 0
        return await self._db.run(encryption.replace_rows, self._db.connection, execution_id, changes)

    def checkpoints(self) -> Checkpoints:
        return SQLiteCheckpoints(self._db)

    def analytics(self) -> SQLiteAnalytics:
        """The analytics store in this file (``sqlite/analytics.py``), on this log's thread."""
        return SQLiteAnalytics(self._db)

    async def _write(self, queue: asyncio.Queue[_Append | None]) -> None:
        """The one writer: each commit takes all appends queued meanwhile (up to MAX_BATCH)."""
        batch: list[_Append] = []
        closing = False
        try:
            while not closing:
                item = await queue.get()
                while item is not None:
                    batch.append(item)
                    if len(batch) == MAX_BATCH or queue.empty():
                        break
                    item = queue.get_nowait()
                closing = item is None  # stop() queued None behind the last append
                if batch:
                    self.instruments.appends_grouped("SQLiteEventLog", len(batch))
                    try:
                        outcomes = await self._db.run(self._commit, batch)
                        for pending, outcome in zip(batch, outcomes, strict=True):
                            if outcome is None:
                                self._recent.add(pending.first_position, pending.events)
                    except Exception as exc:  # the thread or connection is gone
                        outcomes = [self._unavailable("commit failed", exc) for _ in batch]
                    _settle(batch, outcomes)
                    batch = []
        finally:  # normally empty; after a cancellation nobody else will answer these appends
            while not queue.empty():
                if (item := queue.get_nowait()) is not None:
                    batch.append(item)
            _settle(batch, [self._unavailable("stopped; outcome unknown") for _ in batch])

    def _commit(self, batch: list[_Append]) -> list[Exception | None]:
        """One transaction for the batch, set-based; per-append savepoints if that fails."""
        if len(batch) > 1:
            outcomes = self._commit_together(batch)
            if outcomes is not None:
                return outcomes
        return self._commit_each(batch)

    def _commit_together(self, batch: list[_Append]) -> list[Exception | None] | None:
        """Check every append against the heads read in one query, then write all rows in two
        statements. None when a statement fails (the batch is then retried append by append)."""
        connection = self._db.connection
        execute = connection.execute
        try:
            execute("BEGIN IMMEDIATE")
            ids = _json_text([pending.execution_id for pending in batch])
            heads = {row[0]: ExecutionSummary(*row) for row in execute(_SELECT_HEADS, (ids,))}
            outcomes: list[Exception | None] = []
            rows: list[EventRow] = []
            changed: dict[str, ExecutionSummary] = {}
            for pending in batch:
                head = heads.get(pending.execution_id)
                if (pending.started is None) == (head is None) or (
                    head is not None and head.last_sequence != pending.expected
                ):
                    outcomes.append(ConcurrencyError(pending.execution_id, pending.expected))
                    continue
                summary = pending.started or summarize(head, pending.events)
                heads[summary.execution_id] = changed[summary.execution_id] = summary
                pending.first_position = len(rows)  # made absolute below
                rows += pending.rows
                outcomes.append(None)
            if rows:
                first = last_position(connection) + 1  # positions in batch order: commit order
                for pending, outcome in zip(batch, outcomes, strict=True):
                    if outcome is None:
                        pending.first_position += first
                events, bodies, at = [], [], 1  # substr counts bytes of a blob from 1
                for i, (e, n, t, tm, body) in enumerate(rows):
                    events.append((e, n, t, tm, at, len(body), first + i))
                    bodies.append(body)
                    at += len(body)
                execute(_INSERT_EVENTS_JSON, (_json_text(events), b"".join(bodies)))
                summaries = [_summary_row(summary) for summary in changed.values()]
                execute(_UPSERT_SUMMARIES_JSON, (_json_text(summaries),))
            execute("COMMIT")
        except sqlite3.Error:
            if connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    execute("ROLLBACK")
            return None
        return outcomes

    def _commit_each(self, batch: list[_Append]) -> list[Exception | None]:
        """One transaction for the batch; a SAVEPOINT per append isolates its failure."""
        connection = self._db.connection
        execute = connection.execute
        outcomes: list[Exception | None] = []
        try:
            execute("BEGIN IMMEDIATE")
            position = last_position(connection)
            for pending in batch:
                execute("SAVEPOINT append")
                try:
                    self._apply(connection, pending, position)
                    pending.first_position = position + 1
                    position += len(pending.rows)
                    outcomes.append(None)
                except sqlite3.IntegrityError:  # those sequence numbers were taken first
                    execute("ROLLBACK TO append")
                    outcomes.append(ConcurrencyError(pending.execution_id, pending.expected))
                except sqlite3.Error:
                    raise  # I/O trouble: the whole transaction is gone
                except Exception as exc:
                    execute("ROLLBACK TO append")
                    outcomes.append(exc)
                execute("RELEASE append")
            execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    execute("ROLLBACK")
            return [self._unavailable("commit failed", exc) for _ in batch]
        return outcomes

    def _unavailable(self, reason: str, cause: BaseException | None = None) -> BackendUnavailable:
        error = BackendUnavailable(f"{self.settings.url}: {reason}" + (f": {cause}" if cause else ""))
        error.__cause__ = cause
        return error

    @staticmethod
    def _apply(connection: sqlite3.Connection, pending: _Append, after: int) -> None:
        """Write one append; its events take the positions after ``after``."""
        if pending.started is not None:  # a duplicate primary key means someone started it first
            connection.execute(_INSERT_EXECUTION, _summary_row(pending.started))
        else:
            row = connection.execute(_SELECT_SUMMARY, (pending.execution_id,)).fetchone()
            if row is None or row[7] != pending.expected:
                raise ConcurrencyError(pending.execution_id, pending.expected)
            previous = ExecutionSummary(*row)
            current = summarize(previous, pending.events)
            progress = (current.updated_at, current.last_sequence, pending.execution_id)
            if current.status == previous.status:  # leave the status index alone
                connection.execute(_ADVANCE, progress)
            else:
                connection.execute(_ADVANCE_STATUS, (current.status, *progress))
            if current.correlation_key != previous.correlation_key:
                connection.execute(_SET_CORRELATION, (current.correlation_key, pending.execution_id))
        rows = [(*row, after + offset) for offset, row in enumerate(pending.rows, 1)]
        connection.executemany(_INSERT_EVENTS, rows)

    def _read(self, execution_id: str, after_sequence: int, limit: int | None) -> list[bytes]:
        params = (execution_id, after_sequence, -1 if limit is None else limit)
        return [body for (body,) in self._db.connection.execute(_READ, params).fetchall()]

    def _ids_after(self, after: str) -> list[str]:
        rows = self._db.connection.execute(_IDS_AFTER, (after, ID_PAGE))
        return [execution_id for (execution_id,) in rows]

    def _execute(self, sql: str, params: tuple[object, ...]) -> None:
        self._db.connection.execute(sql, params)  # autocommit: one statement, one transaction

    def _load_snapshot(self, execution_id: str, at_most: int) -> Snapshot | None:
        row = self._db.connection.execute(_LOAD_SNAPSHOT, (execution_id, at_most)).fetchone()
        return None if row is None else Snapshot(execution_id, row[0], bytes(row[1]))

    def _delete(self, execution_id: str) -> bool:
        execute = self._db.connection.execute
        execute("BEGIN IMMEDIATE")
        try:
            keep_head(self._db.connection)  # its positions are never handed out again
            counts = [execute(sql, (execution_id,)).rowcount for sql in _DELETE_EXECUTION]
        except BaseException:
            execute("ROLLBACK")
            raise
        execute("COMMIT")
        return counts[0] > 0 or counts[1] > 0

    def _links(self, execution_id: str) -> list[Link]:
        return [Link(*row) for row in self._db.connection.execute(_LINKS, (execution_id,))]

    def _summary(self, execution_id: str) -> ExecutionSummary | None:
        row = self._db.connection.execute(_SELECT_SUMMARY, (execution_id,)).fetchone()
        return None if row is None else ExecutionSummary(*row)

    def _list(self, query: ExecutionQuery) -> ExecutionPage:
        clauses: list[str] = []
        params: list[object] = []
        for clause, value in (
            ("workflow = ?", query.workflow),
            ("version = ?", query.version),
            ("status = ?", query.status),
            ("tenant = ?", query.tenant),
            ("started_by = ?", query.started_by),
            ("correlation_key = ?", query.correlation_key),
            ("started_at >= ?", query.started_after),
            ("started_at < ?", query.started_before),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if query.cursor is not None:
            started_at, _, execution_id = query.cursor.partition("|")
            clauses.append("(started_at, execution_id) < (?, ?)")
            params += (started_at, execution_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "ORDER BY started_at DESC, execution_id DESC"
        sql = f"SELECT {_COLUMNS} FROM executions {where} {order} LIMIT ?"
        rows = self._db.connection.execute(sql, (*params, query.limit + 1)).fetchall()
        items = [ExecutionSummary(*row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return ExecutionPage(items, cursor_of(items[-1]) if more and items else None)


def _settle(batch: Sequence[_Append], outcomes: Sequence[Exception | None]) -> None:
    for pending, outcome in zip(batch, outcomes, strict=True):
        if pending.future.done():
            continue  # the caller was cancelled; the outcome stands regardless
        if outcome is None:
            pending.future.set_result(None)
        else:
            pending.future.set_exception(outcome)


def _summary_row(s: ExecutionSummary) -> tuple[object, ...]:
    return (
        s.execution_id, s.workflow, s.version, s.tenant, s.status,
        s.started_at, s.updated_at, s.last_sequence, s.parent_id, s.started_by, s.correlation_key,
    )  # fmt: skip


class SQLiteRegistry(Lifecycle):
    """Immutable workflow definitions by (name, version), stored as their JSON."""

    def __init__(self, settings: SQLiteSettings) -> None:
        self.settings = settings
        self._db = _Database(settings, "registry", _REGISTRY_DDL)
        # Versions are immutable, so parsed definitions can be kept; only the registry thread
        # writes this dict.
        self._parsed: dict[tuple[str, int], WorkflowDefinition] = {}

    @classmethod
    def from_url(cls, url: str) -> SQLiteRegistry:
        return cls(SQLiteSettings.from_url(url))

    async def start(self) -> None:
        await self._db.open()

    async def stop(self) -> None:
        await self._db.close()

    async def register(self, definition: WorkflowDefinition) -> WorkflowDefinition:
        """Store a definition; assign the next version if it has none. Same content: no-op."""
        return await self._db.run(self._register, definition)

    async def get(self, name: str, version: int | None = None) -> WorkflowDefinition:
        found = await self._db.run(self._get, name, version)
        if found is not None:
            return found
        if version is None:
            raise UnknownWorkflow(f"unknown workflow {name!r}")
        raise UnknownWorkflow(f"workflow {name!r} has no version {version}")

    async def list(self) -> builtins.list[WorkflowDefinition]:
        """The latest version of every workflow, by name."""
        return await self._db.run(self._list)

    async def versions(self, name: str) -> builtins.list[int]:
        return await self._db.run(self._versions, name)

    async def trigger_states(self) -> dict[tuple[str, str], bool]:
        return await self._db.run(self._trigger_states)

    async def set_trigger_enabled(self, workflow: str, trigger: str, enabled: bool) -> None:
        await self._db.run(self._set_trigger_state, workflow, trigger, enabled)

    def _register(self, definition: WorkflowDefinition) -> WorkflowDefinition:
        connection = self._db.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            stored = self._store(definition)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return stored

    def _store(self, definition: WorkflowDefinition) -> WorkflowDefinition:
        check_owner(self._get(definition.name, None), definition)
        if definition.version is None:
            latest = self._get(definition.name, None)
            if latest is not None and same_content(latest, definition):
                return latest
            definition = definition.with_version((latest.version or 0) + 1 if latest else 1)
        assert definition.version is not None
        existing = self._get(definition.name, definition.version)
        if existing is not None:
            if not same_content(existing, definition):
                raise VersionConflict(f"{definition.name} v{definition.version} exists with other content")
            return existing
        self._db.connection.execute(
            "INSERT INTO definitions VALUES (?, ?, ?)",
            (definition.name, definition.version, definition.model_dump_json()),
        )
        return definition

    def _get(self, name: str, version: int | None) -> WorkflowDefinition | None:
        if version is None:
            sql = "SELECT MAX(version) FROM definitions WHERE name = ?"
            (version,) = self._db.connection.execute(sql, (name,)).fetchone()
            if version is None:
                return None
        cached = self._parsed.get((name, version))
        if cached is not None:
            return cached
        sql = "SELECT body FROM definitions WHERE name = ? AND version = ?"
        row = self._db.connection.execute(sql, (name, version)).fetchone()
        if row is None:
            return None
        parsed = self._parsed[(name, version)] = WorkflowDefinition.model_validate_json(row[0])
        return parsed

    def _list(self) -> builtins.list[WorkflowDefinition]:
        rows = self._db.connection.execute(
            "SELECT body, MAX(version) FROM definitions GROUP BY name ORDER BY name"
        ).fetchall()  # SQLite takes the bare column ``body`` from the row holding the MAX
        return [WorkflowDefinition.model_validate_json(body) for body, _ in rows]

    def _versions(self, name: str) -> builtins.list[int]:
        sql = "SELECT version FROM definitions WHERE name = ? ORDER BY version"
        return [version for (version,) in self._db.connection.execute(sql, (name,))]

    def _trigger_states(self) -> dict[tuple[str, str], bool]:
        rows = self._db.connection.execute("SELECT workflow, trigger, enabled FROM trigger_states")
        return {(workflow, trigger): bool(enabled) for workflow, trigger, enabled in rows}

    def _set_trigger_state(self, workflow: str, trigger: str, enabled: bool) -> None:
        self._db.connection.execute(_SET_TRIGGER_STATE, (workflow, trigger, int(enabled)))
