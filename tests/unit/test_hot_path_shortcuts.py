"""The hot path's shortcuts give exactly what the long way gives (docs/performance.md)."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.backends.sqlite import SQLiteEventLog
from orchestrator.backends.summary import summarize
from orchestrator.collector import CollectorThreshold
from schemas.envelope import Envelope
from schemas.strict_json import encoded_size
from tests.contracts.factories import event, started


async def test_the_writer_serves_recent_fields_as_a_reader_decodes_them(tmp_path: Path) -> None:
    """The lean feed read of the appending process takes recent envelopes from memory; another
    process reads the rows: the same fields, data only for the wanted types."""
    writer = SQLiteEventLog.from_url(f"sqlite:///{tmp_path}/o.db")
    reader = SQLiteEventLog.from_url(f"sqlite:///{tmp_path}/o.db")
    for log in (writer, reader):
        await log.start()
    try:
        await writer.append("e1", 0, [started("e1", input={"n": 1})])
        await asyncio.gather(*(writer.append(f"g{n}", 0, [started(f"g{n}")]) for n in range(4)))
        await writer.append("e1", 1, [event("e1", 2), event("e1", 3)])
        everything = {e.type for _, e in (await reader.feed().read_after(0)).items}
        for wanted in (everything, set()):
            mine = await writer.feed().read_fields_after(0, 100, wanted)  # type: ignore[attr-defined]
            theirs = await reader.feed().read_fields_after(0, 100, wanted)  # type: ignore[attr-defined]
            assert mine == theirs and [item[0] for item in mine.items] == list(range(1, 8))
        assert all(item[8] is None for item in mine.items)  # the last read wanted no data
        full = await writer.feed().read_fields_after(0, 100, everything)  # type: ignore[attr-defined]
        assert full.items[0][8]["input"] == {"n": 1}
    finally:
        await writer.stop()
        await reader.stop()


def _one_by_one(events: list[Envelope]) -> object:
    summary = None
    for envelope in events:
        summary = summarize(summary, [envelope])
    return summary


def test_a_batch_summarises_as_its_events_one_by_one() -> None:
    awaited = event("e1", 3, type="EventAwaited", data={"step": "w", "correlation_key": "order-7"})
    history = [started("e1"), event("e1", 2), awaited, event("e1", 4), event("e1", 5, type="ExecutionSucceeded")]
    for cut in range(1, len(history) + 1):
        head, tail = history[:cut], history[cut:]
        batched = summarize(summarize(None, head), tail) if tail else summarize(None, head)
        assert batched == _one_by_one(history)
    final = summarize(None, history)
    assert (final.status, final.last_sequence, final.correlation_key) == ("succeeded", 5, "order-7")
    assert final.updated_at == history[-1].time


@pytest.mark.parametrize(
    "value", [{"a": "é", "b": [1, 2.5, True, None, "x" * 50]}, 2**70, {1: 2}, "ü", 1e300, [[[]]], 0.1]
)
def test_encoded_size_is_the_compact_utf8_json_size(value: object) -> None:
    expected = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    assert encoded_size(value) == expected


def test_encoded_size_of_nothing_and_of_what_json_cannot_hold_is_zero() -> None:
    assert encoded_size(None) == 0
    assert encoded_size({"x": object()}) == 0


@pytest.fixture
def default_thresholds() -> Iterator[tuple[int, int, int]]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*saved)


def test_the_collector_threshold_is_raised_while_running_and_put_back(
    default_thresholds: tuple[int, int, int],
) -> None:
    collector = CollectorThreshold(20_000)
    collector.apply()
    assert gc.get_threshold() == (20_000, 10, 10)
    collector.restore()
    assert gc.get_threshold() == default_thresholds


def test_the_collector_is_left_alone_when_asked_or_set_higher(default_thresholds: tuple[int, int, int]) -> None:
    CollectorThreshold(0).apply()
    assert gc.get_threshold() == default_thresholds
    gc.set_threshold(50_000, 10, 10)
    tuned = CollectorThreshold(20_000)
    tuned.apply()
    tuned.restore()
    assert gc.get_threshold() == (50_000, 10, 10)


async def test_a_runtime_raises_the_threshold_until_it_stops(
    tmp_path: Path, default_thresholds: tuple[int, int, int]
) -> None:
    from orchestrator.runtime import Runtime
    from orchestrator.settings import Settings

    async with Runtime(Settings(event_log_url="memory://", gc_threshold=15_000)):
        assert gc.get_threshold()[0] == 15_000
    assert gc.get_threshold() == default_thresholds


def test_a_summary_keeps_every_field_it_does_not_change() -> None:
    """``summarize`` builds the next summary field by field: a field added to ExecutionSummary and
    not passed on would come back as its default, which this catches."""
    import dataclasses

    from orchestrator.ports import ExecutionSummary

    values = {f.name: (7 if f.type in ("int", int) else f"x-{f.name}") for f in dataclasses.fields(ExecutionSummary)}
    previous = ExecutionSummary(**{**values, "execution_id": "e1", "last_sequence": 1})
    after = summarize(previous, [event("e1", 2)])
    changed = {"updated_at", "last_sequence"}
    assert {k: v for k, v in dataclasses.asdict(after).items() if k not in changed} == {
        k: v for k, v in dataclasses.asdict(previous).items() if k not in changed
    }
    assert after.last_sequence == 2


async def test_a_group_commit_stores_every_body_byte_for_byte(tmp_path: Path) -> None:
    """The batch's bodies travel as one blob cut by offsets: each row gets exactly its bytes,
    multi-byte text and bodies of very different sizes included."""
    log = SQLiteEventLog.from_url(f"sqlite:///{tmp_path}/o.db")
    await log.start()
    try:
        firsts = [started(f"e{n}", input={"text": "é€😀" * n, "pad": "x" * (n * 97 % 5000)}) for n in range(40)]
        await asyncio.gather(*(log.append(f"e{n}", 0, [e]) for n, e in enumerate(firsts)))
        laters = [[event(f"e{n}", 2, data={"step": "s", "output": "ü" * n}), event(f"e{n}", 3)] for n in range(40)]
        await asyncio.gather(*(log.append(f"e{n}", 1, pair) for n, pair in enumerate(laters)))
        reader = SQLiteEventLog.from_url(f"sqlite:///{tmp_path}/o.db")
        await reader.start()
        try:
            for n in range(40):
                stored = [e.to_bytes() for e in await reader.read(f"e{n}")]
                assert stored == [firsts[n].to_bytes(), *(e.to_bytes() for e in laters[n])]
        finally:
            await reader.stop()
    finally:
        await log.stop()


async def test_a_feed_read_fills_in_what_another_process_wrote_between_its_own_events(tmp_path: Path) -> None:
    """The writer skips the bodies of the positions it holds in memory; the positions between
    them that another process wrote are read by position: the same page as a plain reader's."""
    mine = SQLiteEventLog.from_url(f"sqlite:///{tmp_path}/o.db")
    theirs = SQLiteEventLog.from_url(f"sqlite:///{tmp_path}/o.db")
    for log in (mine, theirs):
        await log.start()
    try:
        for n in range(6):
            await (mine if n % 2 == 0 else theirs).append(f"e{n}", 0, [started(f"e{n}", input={"n": n})])
        await mine.append("e0", 1, [event("e0", 2), event("e0", 3)])
        for feed_of in (mine, theirs):
            page = await feed_of.feed().read_after(0)
            assert [(at, e.to_bytes()) for at, e in page.items] == [
                (at, e.to_bytes()) for at, e in (await theirs.feed().read_after(0)).items
            ]
            assert [at for at, _ in page.items] == list(range(1, 9)) and page.last == 8
        wanted = {"ExecutionStarted"}
        fields_mine = await mine.feed().read_fields_after(0, 100, wanted)  # type: ignore[attr-defined]
        fields_theirs = await theirs.feed().read_fields_after(0, 100, wanted)  # type: ignore[attr-defined]
        assert fields_mine == fields_theirs and [item[8] for item in fields_mine.items][:6] == [
            {"input": {"n": n}} for n in range(6)
        ]
    finally:
        await mine.stop()
        await theirs.stop()
