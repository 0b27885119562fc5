"""Cassandra event log and registry (``cassandra://host[:port][,host2...]/keyspace?...``).

Events live in one partition per execution (``events``, clustered by ``sequence``). The partition
also holds the execution summary as static columns, ``last_sequence`` among them. An append is
ONE lightweight transaction for the whole batch of events of a decision: a single-partition
conditional batch of ``INSERT ... IF NOT EXISTS`` (first append) or ``UPDATE ... SET
last_sequence = ? ... IF last_sequence = ?`` plus one plain ``INSERT`` per event. Cassandra runs the
batch as a single Paxos round (about four round trips, against one for a plain write), whatever
the number of events, so two writers can never both write a sequence and a decision pays for one
LWT, not one per event. (A batch is one mutation: it must stay under Cassandra's
``max_mutation_size``, half of ``commitlog_segment_size``.)

The summary is kept in those static columns rather than in a separate ``executions`` table: it
is written atomically by the same LWT, so ``summary()`` is never stale and costs no extra write.

Listing tables (``executions_by_day``, ``_by_workflow``, ``_by_status``, partitioned by the day of
the start time, newest first inside) and ``execution_days`` (which days exist, per scope) are a
projection, written after the append committed: a logged batch (all rows or none, eventually)
when an execution starts or its status changes; nothing for other appends. If the process dies
between the commit and that batch, or the batch keeps failing, the events are committed and the
index lacks the new rows until :meth:`CassandraEventLog.reindex` rebuilds them from the events.
Listing reads each candidate's summary from its events partition and keeps only rows that agree
with it, so a stale index row never yields a wrong item. Workflow plus status is served from the
workflow table with the status checked in Python; a tenant filter is checked in Python too.

Before each LWT attempt, one plain write announces it in the global feed (``feed``, see
``cassandra/feed.py``); the LWT also records the attempt's feed position in the static column
``feed_position``, so the execution's next append is placed after it.

The idle index (``recovery_checks``, see ``idle.py``) tells the recovery sweep which running
executions of a shard have not moved for a while: an execution's first row is written before its
start's conditional append (only once the runtime has set ``shards``), deleted with the listing
rows when it finishes, and moved on by the sweep.

Snapshots (``snapshots``, newest first) and links (``execution_links``) are one partition per
execution each. :meth:`CassandraEventLog.delete_execution` removes an execution with partition
deletes, never row by row (see there why).

Lightweight transactions that time out are ambiguous: the events may have landed. The log then
reads the last event back at SERIAL consistency (which completes any in-flight Paxos round),
compares its id and bytes with ours, and only retries when that sequence is still free.
Idempotent reads and writes are retried with exponential backoff on timeouts and unavailability;
the driver reconnects with exponential backoff too (see ``cassandra_schema``). The schema is
created by :func:`migrate` (``orchestrator migrate URL``), never by ``start()`` unless the URL
says ``migrate=auto``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from datetime import date
from typing import cast

from cassandra import DriverException
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement

from orchestrator.backends.cassandra.analytics import ANALYTICS_CQL, CassandraAnalytics
from orchestrator.backends.cassandra.data_keys import DATA_KEYS_CONDITIONAL, DATA_KEYS_CQL, CassandraDataKeys
from orchestrator.backends.cassandra.feed import (
    FEED_CQL,
    CassandraCheckpoints,
    CassandraFeed,
    FeedWriter,
)
from orchestrator.backends.cassandra.idle import IDLE_CONDITIONAL, IDLE_CQL, IdleChecks
from orchestrator.backends.cassandra.schema import (
    PAGE_SIZE,
    RETRY_ATTEMPTS,
    CassandraBackend,
    CassandraSettings,
    Row,
    ambiguous,
    backoff,
    describe,
    main,
    migrate,
)
from orchestrator.backends.paging import cursor_of, matches
from orchestrator.backends.summary import check_sequences, summarize
from orchestrator.backends.versions import check_owner, same_content
from orchestrator.crypto.identity import IDENTITY
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
    ResumeCallback,
    Shards,
    Snapshot,
    StoredTransform,
    UnknownWorkflow,
    VersionConflict,
)
from schemas.definition import WorkflowDefinition
from schemas.envelope import Envelope

__all__ = ["CassandraEventLog", "CassandraRegistry", "CassandraSettings", "main", "migrate"]

log = logging.getLogger(__name__)

SUMMARY_CACHE = 10_000  # summaries this process appended last, to skip a read before an append
CONCURRENT_READS = 64  # summary reads in flight while verifying a listing page
STATUSES = ("running", "succeeded", "failed", "cancelled")
_TOP = "\U0010ffff"  # sorts after every timestamp


_HEAD = (
    "last_sequence, workflow, version, tenant, status, started_at, updated_at, parent_id,"
    " started_by, correlation_key"
)
# Listing tables by kind and the summary columns that key them. An execution has a row in
# each whose key it has: ``starter`` from its start, ``correlation`` from its first wait.
_LISTINGS: dict[str, tuple[str, ...]] = {
    "day": (),
    "workflow": ("workflow",),
    "status": ("status",),
    "starter": ("started_by",),
    "correlation": ("correlation_key",),
}
_BOUNDS = "(started_at, execution_id) < (?, ?) AND (started_at, execution_id) >= (?, ?)"


def _listing_cql() -> dict[str, str]:
    cql: dict[str, str] = {}
    for kind, key in _LISTINGS.items():
        table = f"{{ks}}.executions_by_{kind}"
        where = " AND ".join(f"{column} = ?" for column in (*key, "day"))
        columns = ", ".join((*key, "day", "started_at", "execution_id", "tenant"))
        marks = ", ".join("?" * (len(key) + 4))
        cql[f"list_by_{kind}"] = (
            f"SELECT started_at, execution_id, tenant FROM {table} WHERE {where} AND {_BOUNDS}"
        )
        cql[f"add_by_{kind}"] = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
        cql[f"drop_by_{kind}"] = f"DELETE FROM {table} WHERE {where} AND started_at = ? AND execution_id = ?"
    return cql


_EVENT_LOG_CQL = {
    "head": f"SELECT {_HEAD} FROM {{ks}}.events WHERE execution_id = ? LIMIT 1",
    "head_position": f"SELECT {_HEAD}, feed_position FROM {{ks}}.events WHERE execution_id = ? LIMIT 1",
    "event": "INSERT INTO {ks}.events (execution_id, sequence, event_id, type, time, body)"
    " VALUES (?, ?, ?, ?, ?, ?)",
    "read": "SELECT body FROM {ks}.events WHERE execution_id = ? AND sequence > ?",
    "read_limit": "SELECT body FROM {ks}.events WHERE execution_id = ? AND sequence > ? LIMIT ?",
    "event_id": "SELECT event_id, body FROM {ks}.events WHERE execution_id = ? AND sequence = ?",
    "days": "SELECT day FROM {ks}.execution_days WHERE scope = ? AND day <= ? AND day >= ?",
    "add_day": "INSERT INTO {ks}.execution_days (scope, day) VALUES (?, ?)",
    "drop_status": "DELETE FROM {ks}.executions_by_status"
    " WHERE status = ? AND day = ? AND started_at = ? AND execution_id = ?",
    "execution_ids": "SELECT DISTINCT execution_id FROM {ks}.events",
    "save_snapshot": "INSERT INTO {ks}.snapshots (execution_id, sequence, body) VALUES (?, ?, ?)",
    "latest_snapshot": "SELECT sequence, body FROM {ks}.snapshots WHERE execution_id = ? LIMIT 1",
    "snapshot_at_most": "SELECT sequence, body FROM {ks}.snapshots"
    " WHERE execution_id = ? AND sequence <= ? LIMIT 1",
    # A lightweight transaction, yet safe to retry: a retry of one that landed changes nothing.
    "add_link": "INSERT INTO {ks}.execution_links (execution_id, relation, other_id, created_at)"
    " VALUES (?, ?, ?, ?) IF NOT EXISTS",
    "links": "SELECT execution_id, other_id, relation, created_at FROM {ks}.execution_links"
    " WHERE execution_id = ?",
    "drop_events": "DELETE FROM {ks}.events WHERE execution_id = ?",
    "drop_snapshots": "DELETE FROM {ks}.snapshots WHERE execution_id = ?",
    "drop_links": "DELETE FROM {ks}.execution_links WHERE execution_id = ?",
    **_listing_cql(),
    **FEED_CQL,
    **IDLE_CQL,
    **DATA_KEYS_CQL,
    **ANALYTICS_CQL,
}
_APPEND_CQL = {  # the conditional half of an append batch: one per batch
    "start": f"INSERT INTO {{ks}}.events (execution_id, {_HEAD}, feed_position)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
    "advance": "UPDATE {ks}.events SET last_sequence = ?, status = ?, updated_at = ?, feed_position = ?,"
    " correlation_key = ? WHERE execution_id = ? IF last_sequence = ?",
    **IDLE_CONDITIONAL,
    **DATA_KEYS_CONDITIONAL,
}
_MAX_LIMIT = 2**31 - 1  # CQL LIMIT is an int


def day_of(started_at: str) -> str:
    """The day bucket of a start time: its date as written (so buckets sort like the times)."""
    day = started_at[:10]
    try:
        date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"start time {started_at!r} is not an RFC 3339 time") from None
    return day


def _summary(execution_id: str, row: Row) -> ExecutionSummary:
    last, workflow, version, tenant, status, started_at, updated_at, parent_id, starter, key = row
    return ExecutionSummary(
        execution_id, workflow, version, tenant, status, started_at, updated_at, last, parent_id, starter, key
    )


class CassandraEventLog(CassandraBackend):
    """Per-execution event partitions with one LWT per append, plus listing tables by day."""

    STATEMENTS = _EVENT_LOG_CQL
    CONDITIONAL = _APPEND_CQL

    def __init__(self, settings: CassandraSettings) -> None:
        super().__init__(settings, "event log")
        self._recent: OrderedDict[str, tuple[ExecutionSummary, int]] = OrderedDict()  # + feed position
        self._feed = FeedWriter(self)
        self._days_written: set[tuple[str, str]] = set()
        self.shards: Shards | None = None  # set by the runtime; without it no idle index is kept
        self._idle = IdleChecks(self._db, self._cql, settings.url)
        self.codec: EventCodec = IDENTITY  # orchestrator.crypto.setup.attach sets AES-GCM
        self._data_keys = CassandraDataKeys(self)
        self._analytics: CassandraAnalytics | None = None

    async def start(self) -> None:
        await super().start()
        self._idle = IdleChecks(self._db, self._cql, self.settings.url)

    @classmethod
    def from_url(cls, url: str) -> CassandraEventLog:
        return cls(CassandraSettings.from_url(url))

    async def append(self, execution_id: str, expected_sequence: int, events: Sequence[Envelope]) -> None:
        """Append events numbered expected_sequence+1...; ConcurrencyError if not the last."""
        check_sequences(execution_id, expected_sequence, events)
        if not events:
            current = await self.summary(execution_id)
            if (current.last_sequence if current else 0) != expected_sequence:
                raise ConcurrencyError(execution_id, expected_sequence)
            summarize(current, events)  # ValueError when there is no execution yet
            return
        previous, after = None, 0  # ``after``: the execution's last position in the feed
        if expected_sequence > 0:
            previous, after = await self._previous(execution_id, expected_sequence)
        current = summarize(previous, events)
        day_of(current.started_at)
        bodies = await self.codec.encode(events)
        rows = [(execution_id, e.sequence, e.id, e.type, e.time, b) for e, b in zip(events, bodies, strict=True)]

        def batch(position: int) -> BatchStatement:
            statement = BatchStatement(batch_type=BatchType.UNLOGGED)
            if previous is None:
                statement.add(self._cql["start"], (execution_id, *_head_values(current), position))
            else:
                values = (current.last_sequence, current.status, current.updated_at, position)
                key = _unset_none(current.correlation_key)
                statement.add(self._cql["advance"], (*values, key, execution_id, expected_sequence))
            for row in rows:
                statement.add(self._cql["event"], row)
            return statement

        if previous is None and self.shards is not None:  # first: no start lands without its idle check
            await self._idle.arm(self.shards.shard_of(execution_id), current)
        position = await self._commit(batch, events, after)
        if position is None:
            self._recent.pop(execution_id, None)
            raise ConcurrencyError(execution_id, expected_sequence)
        self._remember(current, position)
        await self._index(previous, current)

    async def read(
        self, execution_id: str, after_sequence: int = 0, limit: int | None = None
    ) -> list[Envelope]:
        """Events after ``after_sequence``, fetched PAGE_SIZE rows per request."""
        if limit is not None and limit <= 0:
            return []
        if limit is None or limit >= _MAX_LIMIT:
            statement = self._cql["read"].bind((execution_id, after_sequence))
        else:
            statement = self._cql["read_limit"].bind((execution_id, after_sequence, limit))
        events: list[Envelope] = []
        async for rows in self._db.pages(statement, min(limit or PAGE_SIZE, PAGE_SIZE)):
            events += await self.codec.decode([body for (body,) in rows])
        return events

    async def summary(self, execution_id: str) -> ExecutionSummary | None:
        """The static columns of the execution's partition: current as of the last append."""
        rows = await self._db.rows(self._cql["head"], execution_id)
        return _summary(execution_id, rows[0]) if rows else None

    async def list_executions(self, query: ExecutionQuery) -> ExecutionPage:
        """Newest first, walking the day buckets that hold executions from the newest down."""
        if query.limit <= 0:
            return ExecutionPage([], None)
        kind, key = "day", cast(tuple[str, ...], ())
        # The most selective listing; the other filters are checked in Python (``_verified``).
        if query.correlation_key is not None:
            kind, key = "correlation", (query.correlation_key,)
        elif query.workflow is not None:
            kind, key = "workflow", (query.workflow,)
        elif query.started_by is not None:
            kind, key = "starter", (query.started_by,)
        elif query.status is not None:
            kind, key = "status", (query.status,)
        upper = (_TOP, "")
        if query.started_before is not None:
            upper = min(upper, (query.started_before, ""))
        if query.cursor is not None:
            started_at, _, execution_id = query.cursor.partition("|")
            upper = min(upper, (started_at, execution_id))
        lower = (query.started_after or "", "")
        want = query.limit + 1  # one more than a page: is there a next page?
        found: list[ExecutionSummary] = []
        rows = self._listed(kind, key, upper, lower, min(PAGE_SIZE, 2 * want))
        async with contextlib.aclosing(rows):
            async for page in rows:
                found += await self._verified(page, query)
                if len(found) >= want:
                    break
        items = found[: query.limit]
        return ExecutionPage(items, cursor_of(items[-1]) if len(found) > query.limit else None)

    async def execution_ids(self) -> AsyncIterator[str]:
        """Every events partition: a token-range scan, PAGE_SIZE partition keys per request."""
        async for rows in self._db.pages(self._cql["execution_ids"].bind(()), PAGE_SIZE):
            for (execution_id,) in rows:
                yield execution_id

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        values = (snapshot.execution_id, snapshot.sequence, await self.codec.seal_snapshot(snapshot))
        await self._db.rows(self._cql["save_snapshot"], *values)

    async def load_snapshot(self, execution_id: str, at_most: int | None = None) -> Snapshot | None:
        """The first row of the partition (clustered newest first) at or below ``at_most``."""
        if at_most is None:
            rows = await self._db.rows(self._cql["latest_snapshot"], execution_id)
        else:
            rows = await self._db.rows(self._cql["snapshot_at_most"], execution_id, at_most)
        return await self.codec.open_snapshot(Snapshot(execution_id, rows[0][0], rows[0][1])) if rows else None

    async def delete_execution(self, execution_id: str) -> bool:
        """Remove an execution in one logged batch (all of it applies, eventually, or none).

        The events, snapshots and links of an execution are each one partition, so each goes
        with ONE partition-level deletion: a single tombstone that shadows the whole partition,
        however long the history. Deleting row by row (or a TTL per event) would leave a
        tombstone per event for every later read of the partition to step over until compaction
        purges them after ``gc_grace_seconds`` (a tombstone storm). The summary is static
        columns of the events partition and goes with it. Listing rows live in shared
        day-bucket partitions, so only the execution's own rows are deleted there: one row
        tombstone each, keyed from the summary (a stale row of another status is harmless:
        listings drop rows whose events partition disagrees).
        """
        current = await self.summary(execution_id)
        if current is None:
            return False
        day = day_of(current.started_at)
        row = (day, current.started_at, execution_id)
        statements: list[tuple[PreparedStatement, Row]] = [
            (self._cql[f"drop_by_{kind}"], (*key, *row))
            for kind, key in _keys(current)
        ]
        statements += [
            (self._cql[f"drop_{table}"], (execution_id,)) for table in ("snapshots", "links", "events")
        ]
        await self._write_index(statements, [], raise_errors=True)
        self._recent.pop(execution_id, None)
        return True

    def feed(self) -> EventFeed:
        """Every committed append, settled (``cassandra/feed.py``), on this log's session."""
        return CassandraFeed(self)

    def checkpoints(self) -> Checkpoints:
        return CassandraCheckpoints(self)

    # -- encryption at rest (cassandra/data_keys.py) -------------------------------------------

    async def insert_data_key(self, record: DataKeyRecord) -> DataKeyRecord:
        return await self._data_keys.insert(record)

    async def data_keys(self, tenant: str | None = None) -> list[DataKeyRecord]:
        return await self._data_keys.of(tenant)

    async def delete_data_keys(self, key_id: str) -> int:
        return await self._data_keys.delete(key_id)

    async def rewrite_stored(self, execution_id: str, transform: StoredTransform) -> int:
        return await self._data_keys.rewrite(execution_id, transform)

    def analytics(self) -> CassandraAnalytics:
        """The analytics store in this keyspace (``cassandra/analytics.py``)."""
        if self._analytics is None:
            self._analytics = CassandraAnalytics(self)
        return self._analytics

    async def add_link(self, link: Link) -> None:
        """Record a link with ``IF NOT EXISTS``: the first record of (relation, other_id) stands."""
        values = (link.execution_id, link.relation, link.other_id, link.created_at)
        await self._db.rows(self._cql["add_link"], *values)

    async def links(self, execution_id: str) -> list[Link]:
        found = [Link(*row) for row in await self._db.rows(self._cql["links"], execution_id)]
        return sorted(found, key=lambda k: (k.created_at, k.relation, k.other_id))

    async def sweep_idle(self, shard: int, now: float, grace: float, resume: ResumeCallback) -> int:
        """``IdleIndex``: resume the idle executions of ``shard`` (see ``idle.py``)."""
        return await self._idle.sweep(shard, now, grace, resume, self.summary)

    async def reindex(self, execution_id: str) -> bool:
        """Rewrite the listing rows of one execution from its events partition (idempotent), and
        re-arm its idle check (looked at ``grace`` after now) when it runs."""
        current = await self.summary(execution_id)
        if current is None:
            return False
        if current.status == "running" and self.shards is not None:
            await self._idle.arm(self.shards.shard_of(execution_id), current, time.time())
        statements, days = self._start_rows(current)
        day = day_of(current.started_at)
        for status in STATUSES:
            if status != current.status:
                row = (status, day, current.started_at, execution_id)
                statements.append((self._cql["drop_status"], row))
        await self._write_index(statements, days, raise_errors=True)
        return True

    async def _listed(
        self,
        kind: str,
        key: tuple[str, ...],
        upper: tuple[str, str],
        lower: tuple[str, str],
        page_size: int,
    ) -> AsyncGenerator[list[Row], None]:
        """Listing rows in ``[lower, upper)``, newest first: day by day, page by page."""
        days = self._cql["days"].bind((_scope(kind, key), upper[0][:10], lower[0][:10]))
        async for page in self._db.pages(days):
            for (day,) in page:
                rows = self._cql[f"list_by_{kind}"].bind((*key, day, *upper, *lower))
                async for listed in self._db.pages(rows, page_size):
                    yield listed

    async def _previous(self, execution_id: str, expected: int) -> tuple[ExecutionSummary, int]:
        """The summary at ``expected`` and the feed position of its last append: remembered
        from our last append, else read."""
        remembered = self._recent.get(execution_id)
        if remembered is not None and remembered[0].last_sequence == expected:
            return remembered  # events up to ``expected`` are immutable, so is their summary
        rows = await self._db.rows(self._cql["head_position"], execution_id)
        if not rows or rows[0][0] != expected:
            raise ConcurrencyError(execution_id, expected)
        return _summary(execution_id, rows[0][:-1]), rows[0][-1] or 0

    def _remember(self, summary: ExecutionSummary, position: int) -> None:
        self._recent[summary.execution_id] = (summary, position)
        self._recent.move_to_end(summary.execution_id)
        if len(self._recent) > SUMMARY_CACHE:
            self._recent.popitem(last=False)

    async def _commit(
        self, batch: Callable[[int], BatchStatement], events: Sequence[Envelope], after: int
    ) -> int | None:
        """Announce each attempt in the feed, then run its conditional batch. The feed position
        covering the append when it applied, else None. Settles ambiguous timeouts by reading."""
        last = events[-1]
        uncertain = False
        first = None
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            position = await self._feed.announce(events, after)
            first = position if first is None else first
            try:
                result = await self._db.run(batch(position), idempotent=False)
            except Exception as exc:
                if not ambiguous(exc):
                    raise
                log.info("append to %s: %s; reading it back", last.subject, describe(exc))
                try:
                    landed = await self._landed(last)
                except BackendUnavailable as unknown:
                    raise BackendUnavailable(
                        f"{self.settings.url}: append to {last.subject}: outcome unknown after"
                        f" {describe(exc)}, and reading it back failed: {unknown}"
                    ) from exc
                if landed is not None:  # one of our attempts, maybe the first: judge by that
                    return await self._feed.committed(events, first) if landed else None
                if attempt == RETRY_ATTEMPTS:
                    raise BackendUnavailable(
                        f"{self.settings.url}: append to {last.subject} not applied after"
                        f" {attempt} attempts: {describe(exc)}"
                    ) from exc
                uncertain = True  # a coordinator may still finish our earlier proposal
                await backoff(attempt)
                continue
            if result.current_rows[0][0]:
                return await self._feed.committed(events, position)
            if uncertain and await self._landed(last):
                return await self._feed.committed(events, first)
            return None
        raise AssertionError("unreachable")

    async def _landed(self, last: Envelope) -> bool | None:
        """Whether the last event of a batch is stored, same id and bytes (None: still free).

        Read at SERIAL consistency, which first completes any Paxos round in progress.
        """
        statement = self._cql["event_id"].bind((last.subject, last.sequence))
        statement.consistency_level = self._db.serial
        rows = (await self._db.run(statement)).current_rows
        if not rows:
            return None
        if rows[0][0] != last.id:
            return False
        return bool((await self.codec.decode([rows[0][1]]))[0].to_bytes() == last.to_bytes())

    async def _index(self, previous: ExecutionSummary | None, current: ExecutionSummary) -> None:
        if previous is None:
            await self._write_index(*self._start_rows(current), raise_errors=False)
            return
        day = day_of(current.started_at)
        row = (day, current.started_at, current.execution_id)
        statements: list[tuple[PreparedStatement, Row]] = []
        scopes: list[str] = []
        for kind, column in (("status", "status"), ("correlation", "correlation_key")):
            before, after = getattr(previous, column), getattr(current, column)
            if before == after:
                continue
            if before is not None:
                statements.append((self._cql[f"drop_by_{kind}"], (before, *row)))
            if after is not None:
                statements.append((self._cql[f"add_by_{kind}"], (after, *row, current.tenant)))
                scopes.append(_scope(kind, (after,)))
        if not statements:
            return
        if previous.status != current.status and current.status != "running" and self.shards is not None:
            statements.append(self._idle.disarm(self.shards.shard_of(current.execution_id), current))
        await self._write_index(statements, self._new_days(scopes, day, statements), raise_errors=False)

    def _start_rows(
        self, current: ExecutionSummary
    ) -> tuple[list[tuple[PreparedStatement, Row]], list[tuple[str, str]]]:
        day = day_of(current.started_at)
        statements: list[tuple[PreparedStatement, Row]] = []
        scopes: list[str] = []
        for kind, key in _keys(current):
            row = (*key, day, current.started_at, current.execution_id, current.tenant)
            statements.append((self._cql[f"add_by_{kind}"], row))
            scopes.append(_scope(kind, key))
        return statements, self._new_days(scopes, day, statements)

    def _new_days(
        self, scopes: list[str], day: str, statements: list[tuple[PreparedStatement, Row]]
    ) -> list[tuple[str, str]]:
        """Add the ``execution_days`` rows this process has not written yet."""
        days = [(scope, day) for scope in scopes if (scope, day) not in self._days_written]
        statements += [(self._cql["add_day"], row) for row in days]
        return days

    async def _write_index(
        self,
        statements: list[tuple[PreparedStatement, Row]],
        days: list[tuple[str, str]],
        *,
        raise_errors: bool,
    ) -> None:
        """One logged batch: Cassandra applies all of its rows or, after a failure, replays them."""
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.is_idempotent = True
        for statement, values in statements:
            batch.add(statement, values)
        try:
            await self._db.run(batch)
        except (BackendUnavailable, DriverException) as exc:
            if raise_errors:
                raise
            log.warning(
                "%s: events appended but the executions index was not updated (%s);"
                " CassandraEventLog.reindex() repairs it",
                self.settings.url,
                describe(exc),
            )
            return
        self._days_written.update(days)

    async def _verified(self, rows: list[Row], query: ExecutionQuery) -> list[ExecutionSummary]:
        """The summaries of listed rows that the events partitions confirm, in row order."""
        candidates = [(s, i) for (s, i, tenant) in rows if query.tenant in (None, tenant)]
        gate = asyncio.Semaphore(CONCURRENT_READS)

        async def read(execution_id: str) -> ExecutionSummary | None:
            async with gate:
                return await self.summary(execution_id)

        heads = await asyncio.gather(*(read(i) for _, i in candidates))
        return [
            head
            for (started_at, _), head in zip(candidates, heads, strict=True)
            if head is not None and head.started_at == started_at and matches(head, query)
        ]


def _head_values(s: ExecutionSummary) -> Row:
    return (
        s.last_sequence, s.workflow, s.version, s.tenant, s.status,
        s.started_at, s.updated_at, s.parent_id, _unset_none(s.started_by), _unset_none(s.correlation_key),
    )  # fmt: skip


def _unset_none(value: str | None) -> object:
    """A value to bind, or UNSET for None: writing null would leave a tombstone per append."""
    return UNSET_VALUE if value is None else value


def _keys(summary: ExecutionSummary) -> list[tuple[str, tuple[str, ...]]]:
    """Each listing kind and its key for ``summary``, leaving out kinds whose column is empty."""
    found = [(kind, tuple(getattr(summary, c) for c in columns)) for kind, columns in _LISTINGS.items()]
    return [(kind, key) for kind, key in found if None not in key]


def _scope(kind: str, key: tuple[str, ...]) -> str:
    return kind if not key else f"{kind}:{key[0]}"


_REGISTRY_CQL = {
    "latest": "SELECT body FROM {ks}.definitions WHERE name = ? LIMIT 1",
    "one": "SELECT body FROM {ks}.definitions WHERE name = ? AND version = ?",
    "versions": "SELECT version FROM {ks}.definitions WHERE name = ?",
    "add_name": "INSERT INTO {ks}.definition_names (scope, name) VALUES ('all', ?)",
    "names": "SELECT name FROM {ks}.definition_names WHERE scope = 'all'",
    "trigger_states": "SELECT workflow, trigger_name, enabled FROM {ks}.trigger_states WHERE scope = 'all'",
    "set_trigger_state": (
        "INSERT INTO {ks}.trigger_states (scope, workflow, trigger_name, enabled) VALUES ('all', ?, ?, ?)"
    ),
}
_REGISTER_CQL = {
    "insert": "INSERT INTO {ks}.definitions (name, version, body) VALUES (?, ?, ?) IF NOT EXISTS",
}


class CassandraRegistry(CassandraBackend):
    """Immutable definitions by (name, version); each version is claimed with ``IF NOT EXISTS``."""

    STATEMENTS = _REGISTRY_CQL
    CONDITIONAL = _REGISTER_CQL

    def __init__(self, settings: CassandraSettings) -> None:
        super().__init__(settings, "registry")

    @classmethod
    def from_url(cls, url: str) -> CassandraRegistry:
        return cls(CassandraSettings.from_url(url))

    async def register(self, definition: WorkflowDefinition) -> WorkflowDefinition:
        """Store a definition; assign the next version if it has none. Same content: no-op."""
        check_owner(await self._get(definition.name, None), definition)
        await self._db.rows(self._cql["add_name"], definition.name)  # first: list() sees it
        if definition.version is not None:
            existing = await self._get(definition.name, definition.version)
            if existing is None:
                existing = await self._claim(definition)
            if existing is None:
                return definition
            check_owner(existing, definition)
            if not same_content(existing, definition):
                raise VersionConflict(f"{definition.name} v{definition.version} exists with other content")
            return existing
        while True:  # each turn another registrar took the version we tried
            latest = await self._get(definition.name, None)
            check_owner(latest, definition)  # a tenant that claimed the name since the first check
            if latest is not None and same_content(latest, definition):
                return latest
            candidate = definition.with_version((latest.version or 0) + 1 if latest else 1)
            existing = await self._claim(candidate)
            if existing is None:
                return candidate
            check_owner(existing, definition)  # another tenant claimed the name first
            if same_content(existing, definition):
                return existing

    async def get(self, name: str, version: int | None = None) -> WorkflowDefinition:
        found = await self._get(name, version)
        if found is not None:
            return found
        if version is None:
            raise UnknownWorkflow(f"unknown workflow {name!r}")
        raise UnknownWorkflow(f"workflow {name!r} has no version {version}")

    async def list(self) -> builtins.list[WorkflowDefinition]:
        """The latest version of every workflow, by name."""
        names: builtins.list[str] = []
        async for rows in self._db.pages(self._cql["names"].bind(())):
            names += [name for (name,) in rows]
        latest = await asyncio.gather(*(self._get(name, None) for name in names))
        return [definition for definition in latest if definition is not None]

    async def versions(self, name: str) -> builtins.list[int]:
        return sorted(version for (version,) in await self._db.rows(self._cql["versions"], name))

    async def trigger_states(self) -> dict[tuple[str, str], bool]:
        states: dict[tuple[str, str], bool] = {}
        async for rows in self._db.pages(self._cql["trigger_states"].bind(())):
            states.update({(workflow, trigger): bool(enabled) for workflow, trigger, enabled in rows})
        return states

    async def set_trigger_enabled(self, workflow: str, trigger: str, enabled: bool) -> None:
        await self._db.rows(self._cql["set_trigger_state"], workflow, trigger, enabled)

    async def _get(self, name: str, version: int | None, serial: bool = False) -> WorkflowDefinition | None:
        if version is None:
            statement = self._cql["latest"].bind((name,))
        else:
            statement = self._cql["one"].bind((name, version))
        if serial:
            statement.consistency_level = self._db.serial
        rows = (await self._db.run(statement)).current_rows
        return WorkflowDefinition.model_validate_json(rows[0][0]) if rows else None

    async def _claim(self, definition: WorkflowDefinition) -> WorkflowDefinition | None:
        """Insert this version if it is free: None when stored, else what holds the version."""
        assert definition.version is not None
        values = (definition.name, definition.version, definition.model_dump_json())
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                result = await self._db.run(self._cql["insert"].bind(values), idempotent=False)
            except Exception as exc:
                if not ambiguous(exc):
                    raise
                if attempt == RETRY_ATTEMPTS:
                    raise BackendUnavailable(
                        f"{self.settings.url}: registering {definition.name}"
                        f" v{definition.version} failed: {describe(exc)}"
                    ) from exc
                await backoff(attempt)
                continue  # a retry of a claim that landed finds it and answers the same
            if result.current_rows[0][0]:
                return None
            return await self._get(definition.name, definition.version, serial=True)
        raise AssertionError("unreachable")


if __name__ == "__main__":  # python -m orchestrator.backends.cassandra.event_log migrate URL
    sys.exit(main())
