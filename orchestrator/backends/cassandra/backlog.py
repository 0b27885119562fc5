"""Counting what waits in Cassandra for the ``orchestrator_timers_pending`` and
``orchestrator_waits_parked`` gauges: a bounded scan, repeated every so often.

The tables have no counters (a Cassandra counter cannot be kept exact beside idempotent,
retried writes), so the count is a scan of one small column, at most ``COUNT_BOUND`` rows a time
(past that the gauge shows the bound: "at least this many"), every ``COUNT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from cassandra.query import PreparedStatement

from orchestrator.backends.cassandra.schema import Database, describe

log = logging.getLogger(__name__)

COUNT_SECONDS = 30.0  # how often the gauges are counted again
COUNT_BOUND = 100_000  # rows read at most per count
COUNT_PAGE = 5_000


async def count_rows(
    db: Database, statement: PreparedStatement, keep: Callable[[object], bool], bound: int = COUNT_BOUND
) -> int:
    """How many rows of ``statement`` (first column) ``keep`` takes, reading at most ``bound``."""
    kept = read = 0
    async for rows in db.pages(statement.bind(()), COUNT_PAGE):
        for row in rows:
            read += 1
            kept += keep(row[0])
            if read >= bound:
                return kept
    return kept


async def every(seconds: float, count: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``count`` every ``seconds`` (the first after one interval, so a start is not slowed)
    until cancelled; a failure is logged, not raised."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await count()
        except Exception as exc:  # Cassandra away: the gauge keeps its last value
            log.debug("counting %s failed: %s", what, describe(exc))
