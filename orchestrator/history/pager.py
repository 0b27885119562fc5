"""Reading a whole history, or a whole listing, a page at a time.

The event log answers one bounded read at a time; these helpers walk it to the end so that no
caller holds more than a page it does not need, and every caller stops the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from orchestrator.ports import EventLog, ExecutionQuery, ExecutionSummary
from schemas.envelope import Envelope

PAGE = 1000  # events per read
LIST_PAGE = 500  # summaries per listing


async def pages(
    log: EventLog,
    execution_id: str,
    after: int = 0,
    *,
    upto: int | None = None,
    page: int = PAGE,
) -> AsyncIterator[list[Envelope]]:
    """The events after sequence ``after`` (up to ``upto`` inclusive), ``page`` at most per list.

    Never yields an empty list; stops after the first short page, since the log holds nothing
    beyond it at the time of the read. Errors of the log (unreadable bytes) propagate.
    """
    while upto is None or after < upto:
        limit = page if upto is None else min(page, upto - after)
        chunk = await log.read(execution_id, after, limit)
        if not chunk:
            return
        yield chunk
        if len(chunk) < limit:
            return
        after = chunk[-1].sequence


async def read_all(
    log: EventLog, execution_id: str, after: int = 0, *, upto: int | None = None, page: int = PAGE
) -> list[Envelope]:
    """Every event of an execution after ``after`` (up to ``upto`` inclusive), read ``page`` at a
    time; ``[]`` when none."""
    events: list[Envelope] = []
    async for chunk in pages(log, execution_id, after, upto=upto, page=page):
        events += chunk
    return events


async def executions(
    log: EventLog, query: ExecutionQuery, *, page: int = LIST_PAGE
) -> AsyncIterator[ExecutionSummary]:
    """Every summary ``query`` matches, newest first, from ``query.cursor`` on, listed ``page`` at a
    time (``query.limit`` is ignored: stop iterating to stop listing)."""
    cursor = query.cursor
    while True:
        listing = await log.list_executions(replace(query, limit=page, cursor=cursor))
        for summary in listing.items:
            yield summary
        cursor = listing.next_cursor
        if cursor is None:
            return
