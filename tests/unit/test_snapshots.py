"""Snapshots: a snapshot plus the tail folds to the same state as the whole history."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.backends.memory import MemoryEventLog
from orchestrator.core.state import MISSING, fold
from orchestrator.engine import snapshots
from orchestrator.ports import Snapshot
from schemas.envelope import Envelope
from tests.unit.test_properties import FAST, drive, flat, scenarios


def _stored(envelopes: list[Envelope]) -> list[Envelope]:
    """Envelopes as the event log gives them back (through bytes)."""
    return [Envelope.from_bytes(e.to_bytes()) for e in envelopes]


@FAST
@given(scenarios, st.data())
def test_a_snapshot_plus_the_tail_equals_the_full_fold(scenario: Any, data: st.DataObject) -> None:
    world = drive(*scenario)
    stored = _stored(world.envelopes)
    whole = fold(stored)
    cut = data.draw(st.integers(1, len(stored)))
    # the engine snapshots the state it holds in memory (folded from the decided events)
    in_memory = fold(flat(world)[:cut])
    assert in_memory is not None
    state, command_id, chain = snapshots.decode(snapshots.encode(in_memory, "cmd-7", "abc"))
    assert (command_id, chain) == ("cmd-7", "abc")
    assert state == fold(stored[:cut])
    assert fold(stored[cut:], state) == whole


@FAST
@given(scenarios, st.data())
async def test_loading_at_any_sequence_equals_folding_that_prefix(scenario: Any, data: st.DataObject) -> None:
    world = drive(*scenario)
    stored = _stored(world.envelopes)
    log = MemoryEventLog()
    await log.append("prop-1", 0, stored)
    cut = data.draw(st.integers(1, len(stored)))
    state = fold(stored[:cut])
    assert state is not None
    await log.save_snapshot(Snapshot("prop-1", cut, snapshots.encode(state, None, "")))
    at = data.draw(st.integers(1, len(stored)))
    loaded = await snapshots.load(log, "prop-1", at)
    assert loaded is not None
    assert loaded.state == fold(stored[:at])
    assert loaded.from_snapshot == (cut if cut <= at else 0)
    assert loaded.folded == at - loaded.from_snapshot
    latest = await snapshots.load(log, "prop-1")
    assert latest is not None and latest.state == fold(stored)
    assert latest.chainhash == (stored[-1].chainhash or "")


def test_parallel_joins_keep_their_missing_marker() -> None:
    world = drive(
        {
            "name": "wf",
            "steps": [
                {
                    "name": "fan",
                    "type": "parallel",
                    "branches": [
                        {"steps": [{"name": "a", "type": "task", "connector": "noop"}]},
                        {"steps": [{"name": "b", "type": "task", "connector": "noop"}]},
                    ],
                }
            ],
        },
        [],
        [],
    )
    events = flat(world)
    started = next(i for i, e in enumerate(events) if e.type == "ParallelStarted")
    state = fold(events[: started + 1])
    assert state is not None and state.joins["fan"] == (MISSING, MISSING)
    decoded, _, _ = snapshots.decode(snapshots.encode(state, None, ""))
    assert decoded.joins["fan"][0] is MISSING and decoded.joins["fan"][1] is MISSING


async def test_an_unreadable_snapshot_falls_back_to_the_full_fold() -> None:
    world = drive({"name": "wf", "steps": [{"name": "a", "type": "task", "connector": "noop"}]}, [], [])
    stored = _stored(world.envelopes)
    log = MemoryEventLog()
    await log.append("prop-1", 0, stored)
    await log.save_snapshot(Snapshot("prop-1", 2, b"not json"))
    loaded = await snapshots.load(log, "prop-1")
    assert loaded is not None
    assert loaded.state == fold(stored) and loaded.from_snapshot == 0


def test_snapshots_are_due_when_a_commit_crosses_a_multiple() -> None:
    assert snapshots.due(999, 1000, 1000)
    assert snapshots.due(998, 1003, 1000)
    assert not snapshots.due(1000, 1999, 1000)
    assert not snapshots.due(0, 5000, 0)


def test_a_snapshot_of_another_format_is_refused() -> None:
    with pytest.raises(snapshots.SnapshotError):
        snapshots.decode(b'{"format": 99}')
