"""Whole histories and listings, a page at a time, over the in-memory event log."""

from __future__ import annotations

from orchestrator.backends.memory import MemoryEventLog
from orchestrator.history import pager
from orchestrator.ports import ExecutionQuery
from schemas.envelope import Envelope
from tests.contracts.factories import at, history, started


class CountingLog(MemoryEventLog):
    """Records the (after, limit) of every read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[int, int | None]] = []

    async def read(self, execution_id: str, after_sequence: int = 0, limit: int | None = None) -> list[Envelope]:
        self.reads.append((after_sequence, limit))
        return await super().read(execution_id, after_sequence, limit)


async def sizes(
    log: CountingLog, execution_id: str, after: int = 0, upto: int | None = None, page: int = pager.PAGE
) -> list[int]:
    return [len(chunk) async for chunk in pager.pages(log, execution_id, after, upto=upto, page=page)]


async def test_pages_walk_the_whole_history_and_stop_after_a_short_page() -> None:
    log = CountingLog()
    await log.append("e", 0, history("e", 25))
    assert await sizes(log, "e", page=10) == [10, 10, 5]
    assert log.reads == [(0, 10), (10, 10), (20, 10)]
    assert await pager.read_all(log, "e", page=10) == history("e", 25)


async def test_a_history_of_whole_pages_ends_on_an_empty_read_and_yields_no_empty_page() -> None:
    log = CountingLog()
    await log.append("e", 0, history("e", 20))
    assert await sizes(log, "e", page=10) == [10, 10]
    assert log.reads[-1] == (20, 10)
    assert await sizes(log, "ghost") == []
    assert await pager.read_all(log, "ghost") == []


async def test_pages_start_after_a_sequence_and_stop_at_upto() -> None:
    log = CountingLog()
    await log.append("e", 0, history("e", 25))
    assert await sizes(log, "e", 5, upto=17, page=10) == [10, 2]
    assert log.reads == [(5, 10), (15, 2)]
    assert [e.sequence for e in await pager.read_all(log, "e", 22)] == [23, 24, 25]
    assert await sizes(log, "e", 17, upto=17) == []


async def test_executions_lists_every_page_from_the_query_cursor() -> None:
    log = MemoryEventLog()
    for index in range(7):
        await log.append(f"x{index}", 0, [started(f"x{index}", time=at(index))])
    everything = [s.execution_id async for s in pager.executions(log, ExecutionQuery(limit=1), page=3)]
    assert everything == [f"x{index}" for index in reversed(range(7))]
    first = await log.list_executions(ExecutionQuery(limit=2))
    rest = ExecutionQuery(cursor=first.next_cursor)
    assert [s.execution_id async for s in pager.executions(log, rest, page=2)] == ["x4", "x3", "x2", "x1", "x0"]
    filtered = ExecutionQuery(workflow="other")
    assert [s async for s in pager.executions(log, filtered)] == []
