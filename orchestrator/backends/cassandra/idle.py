"""The idle index in Cassandra: which running executions the recovery sweep looks at, by shard.

``recovery_checks ((shard, bucket), since, execution_id) -> resumed, idle`` holds one row per
running execution (``since``: milliseconds since the epoch; ``bucket``: its minute). A row is
due once ``grace`` has passed since ``since``. The event log writes an execution's first row
(``since`` = its start time) *before* the conditional append of its start, so no crash can leave
a started execution without one (a start that then fails leaves a row the sweep drops), and
deletes it in the same batch as the listing rows when the execution finishes.

The owner of a shard (``sweep``) reads the due rows bucket by bucket from the shard's progress
mark (``recovery_progress ((shard)) -> bucket``), reads each execution's summary and *moves* the
row: in one logged batch it deletes the row and, while the execution runs, writes the next one:

- it moved within ``grace``: look again ``grace`` after its last event;
- it has not, and was not resumed at this sequence: resume it, and look again after ``grace``;
- it was resumed at this sequence and is still there (a timer, an event, a long step): look again
  after ``grace`` doubled per idle look, at most every ``MAX_RECHECK_SECONDS``.

So a running execution always has a row ahead, each look costs one summary read and one batch,
and an execution that finishes quickly costs one insert and one delete. Buckets ``SETTLE_SECONDS``
behind the due horizon are done for good: the mark moves past them, so a read touches only the
last few minutes' buckets (and their tombstones, which nothing reads again), never old ones.
Rows live at most ``TTL_SECONDS``; a deleted row that comes back (a replica missed the delete)
is simply looked at once more. ``CassandraEventLog.reindex`` re-arms a running execution.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cassandra.query import BatchStatement, BatchType, BoundStatement, PreparedStatement

from orchestrator.backends.cassandra.schema import (
    Database,
    Row,
)
from orchestrator.core.timefmt import parse_rfc3339
from orchestrator.ports import ExecutionSummary, ResumeCallback

BUCKET_MS = 60_000  # never change: stored buckets and marks count in these units
SETTLE_SECONDS = 300.0  # how late a row may land behind the due horizon and still be looked at
MAX_RECHECK_SECONDS = 600.0
TTL_SECONDS = 30 * 86_400
PAGE_ROWS = 500
CONCURRENT_READS = 64
SummaryOf = Callable[[str], Awaitable[ExecutionSummary | None]]

IDLE_CQL = {
    "idle_add": "INSERT INTO {ks}.recovery_checks (shard, bucket, since, execution_id, resumed, idle)"
    " VALUES (?, ?, ?, ?, ?, ?)",
    "idle_drop": "DELETE FROM {ks}.recovery_checks"
    " WHERE shard = ? AND bucket = ? AND since = ? AND execution_id = ?",
    "idle_due": "SELECT since, execution_id, resumed, idle FROM {ks}.recovery_checks"
    " WHERE shard = ? AND bucket = ? AND since <= ?",
    "idle_progress": "SELECT bucket FROM {ks}.recovery_progress WHERE shard = ?",
    "idle_advance": "UPDATE {ks}.recovery_progress SET bucket = ? WHERE shard = ?",
}
IDLE_CONDITIONAL = {
    "idle_register": "INSERT INTO {ks}.recovery_progress (shard, bucket) VALUES (?, ?) IF NOT EXISTS",
}


def millis(seconds: float) -> int:
    return round(seconds * 1000)


def bucket_of(since_ms: int) -> int:
    return since_ms // BUCKET_MS


@dataclass(frozen=True, slots=True)
class Check:
    """One row: when to look at an execution next, the sequence it was last resumed at (0: never)
    and how many looks in a row found it resumed and still there."""

    since: int  # ms; due once ``grace`` has passed since then
    execution_id: str
    resumed: int = 0
    idle: int = 0


def next_check(
    check: Check, summary: ExecutionSummary | None, now: float, grace: float
) -> tuple[bool, Check | None]:
    """(resume it now?, the row to look at it again with; None once it is not running)."""
    if summary is None or summary.status != "running":
        return False, None
    now_ms, grace_ms, execution_id = millis(now), millis(grace), check.execution_id
    updated = millis(parse_rfc3339(summary.updated_at))
    sequence = summary.last_sequence
    if updated > now_ms - grace_ms:
        return False, Check(updated, execution_id, check.resumed)
    if sequence != check.resumed:
        return True, Check(now_ms, execution_id, sequence)
    idle = check.idle + 1
    wait = max(min(grace_ms * 2**idle, millis(MAX_RECHECK_SECONDS)), grace_ms)
    return False, Check(now_ms + wait - grace_ms, execution_id, check.resumed, idle)


class IdleChecks:
    """The rows of ``recovery_checks`` and ``recovery_progress``, over the event log's session."""

    def __init__(self, db: Database, cql: dict[str, PreparedStatement], url: str) -> None:
        self._db = db
        self._cql = cql
        self._url = url
        self._registered: set[int] = set()  # shards whose progress row exists

    async def arm(self, shard: int, summary: ExecutionSummary, since: float | None = None) -> None:
        """Write the execution's row (``since``: its start, or the given time), after making sure
        the shard has a progress mark at or before it."""
        check = Check(
            millis(parse_rfc3339(summary.started_at) if since is None else since), summary.execution_id
        )
        await self._register(shard, bucket_of(check.since - millis(SETTLE_SECONDS)))  # clocks differ
        await self._db.run(self._add(shard, check))

    def disarm(self, shard: int, summary: ExecutionSummary) -> tuple[PreparedStatement, Row]:
        """The statement deleting the row ``arm`` wrote at the start (for the finishing batch)."""
        since = millis(parse_rfc3339(summary.started_at))
        return self._cql["idle_drop"], (shard, bucket_of(since), since, summary.execution_id)

    async def sweep(
        self, shard: int, now: float, grace: float, resume: ResumeCallback, summary_of: SummaryOf
    ) -> int:
        """Look at every due row of ``shard``; how many executions were resumed."""
        rows = await self._db.rows(self._cql["idle_progress"], shard)
        if not rows or rows[0][0] is None:
            return 0  # nothing was ever indexed in this shard
        cursor: int = rows[0][0]
        horizon = millis(now - grace)
        resumed = 0
        for bucket in range(cursor, bucket_of(horizon) + 1):
            statement = self._cql["idle_due"].bind((shard, bucket, horizon))
            async for page in self._db.pages(statement, PAGE_ROWS):
                resumed += await self._look(
                    shard, [Check(*row) for row in page], now, grace, resume, summary_of
                )
        settled = bucket_of(millis(now - grace - SETTLE_SECONDS))
        if settled > cursor:
            await self._db.run(self._cql["idle_advance"].bind((settled, shard)))
        return resumed

    async def _look(
        self,
        shard: int,
        checks: list[Check],
        now: float,
        grace: float,
        resume: ResumeCallback,
        summary_of: SummaryOf,
    ) -> int:
        gate = asyncio.Semaphore(CONCURRENT_READS)

        async def read(execution_id: str) -> ExecutionSummary | None:
            async with gate:
                return await summary_of(execution_id)

        summaries = await asyncio.gather(*(read(c.execution_id) for c in checks))
        resumed = 0
        moves: list[tuple[Check, Check | None]] = []
        try:
            for check, summary in zip(checks, summaries, strict=True):
                resume_now, following = next_check(check, summary, now, grace)
                if resume_now:
                    await resume(check.execution_id)  # a failure stops here: the rest stay due
                    resumed += 1
                moves.append((check, following))
        finally:
            await asyncio.gather(*(self._move(shard, check, following) for check, following in moves))
        return resumed

    async def _move(self, shard: int, check: Check, following: Check | None) -> None:
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.is_idempotent = True
        batch.add(self._cql["idle_drop"], (shard, bucket_of(check.since), check.since, check.execution_id))
        if following is not None:
            batch.add(self._add(shard, following))
        await self._db.run(batch)

    def _add(self, shard: int, check: Check) -> BoundStatement:
        values = (shard, bucket_of(check.since), check.since, check.execution_id, check.resumed, check.idle)
        return self._cql["idle_add"].bind(values)

    async def _register(self, shard: int, bucket: int) -> None:
        """Create the shard's progress mark before its first row (a no-op when it exists)."""
        if shard in self._registered:
            return
        await self._db.run_repeatable(self._cql["idle_register"].bind((shard, bucket)), f"registering recovery shard {shard}")
        self._registered.add(shard)
