"""The bounded count behind the Cassandra backlog gauges (pure logic over a fake page source)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from orchestrator.backends.cassandra.backlog import count_rows, every


class Statement:
    def bind(self, values: tuple[object, ...]) -> Statement:
        return self


class Pages:
    """A ``Database`` stand-in: ``rows`` in pages of ``size``; counts the pages read."""

    def __init__(self, rows: list[tuple[object, ...]]) -> None:
        self.rows = rows
        self.read = 0

    async def pages(self, statement: Any, page_size: int) -> AsyncIterator[list[tuple[object, ...]]]:
        for at in range(0, len(self.rows), 3):
            self.read += 1
            yield self.rows[at : at + 3]


async def test_it_counts_the_rows_kept() -> None:
    db = Pages([(shard,) for shard in (0, 1, 0, 2, 0, 1, 0)])
    assert await count_rows(db, Statement(), lambda shard: shard == 0) == 4  # type: ignore[arg-type]


async def test_it_reads_no_more_than_its_bound() -> None:
    db = Pages([(0,)] * 1000)
    assert await count_rows(db, Statement(), lambda _: True, bound=5) == 5  # type: ignore[arg-type]
    assert db.read == 2  # 3 + 2 rows: the scan stopped inside its second page


async def test_a_failing_count_is_tried_again_at_the_next_interval() -> None:
    calls = 0
    third = asyncio.Event()

    async def count() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("Cassandra away")
        if calls == 3:
            third.set()

    task = asyncio.create_task(every(0.01, count, "timers"))
    await asyncio.wait_for(third.wait(), 5)  # the loop outlived the failure
    task.cancel()
