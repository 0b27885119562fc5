"""The replay benchmark's history is a real one: it folds, verifies and chains like the engine's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.replay import LOOP, build_history, rounds_for, run_sqlite
from orchestrator.backends.memory import MemoryEventLog, MemoryRegistry
from orchestrator.core.replay import verify_history
from orchestrator.core.state import fold
from orchestrator.engine.engine import Engine, snapshots
from schemas.envelope import Envelope, chain_hash
from schemas.validation import parse_definition


def test_the_history_folds_to_success_and_verifies() -> None:
    history = build_history(300, "replay-t", every=100)
    envelopes = history.envelopes
    assert len(envelopes) == 3 * rounds_for(300) + 4 == 301
    assert [e.sequence for e in envelopes] == list(range(1, len(envelopes) + 1))
    stored = [Envelope.from_bytes(e.to_bytes()) for e in envelopes]
    state = fold(stored)
    assert state is not None and state.status == "succeeded"
    assert state == history.final
    assert state.output == {"n": rounds_for(300), "status": 200, "body": {"accepted": True, "ref": "r-99"}}
    assert verify_history(history.graph, stored) is None
    chain = ""
    for envelope in stored:
        chain = chain_hash(chain, dataclasses.replace(envelope, chainhash=None))
        assert envelope.chainhash == chain
    assert [p.state.sequence for p in history.snapshot_points] == [102, 201, 301]
    for point in history.snapshot_points:
        assert point.state == fold(stored[: point.state.sequence])


def test_exact_sizes() -> None:
    assert [len(build_history(n).envelopes) for n in (7, 10, 1000)] == [7, 10, 1000]


async def test_the_engine_writes_the_same_history_and_snapshots() -> None:
    history = build_history(300, "replay-e", every=100)
    log, registry = MemoryEventLog(), MemoryRegistry()
    await registry.register(parse_definition(LOOP))
    engine = Engine(log, registry, clock=lambda: 0.0, snapshot_every=100)
    for command in history.commands:
        assert await engine.handle(command) is not None
    written = await log.read("replay-e")
    assert [e.to_bytes() for e in written] == [e.to_bytes() for e in history.envelopes]
    saved = await log.load_snapshot("replay-e")
    assert saved == history.snapshot_points[-1].snapshot()
    loaded = await snapshots.load(log, "replay-e")
    assert loaded is not None and loaded.state == history.final


async def test_the_sqlite_section_runs(tmp_path: Path) -> None:
    main = build_history(300, "m", every=100)
    figures = await run_sqlite(tmp_path, main, [build_history(10, "s")], quick=True)
    assert figures.events == 301 and figures.replay_per_s > 0 and figures.verify_per_s
    short, long = figures.loads
    assert (short.events, short.snapshots, short.with_folded) == (10, 0, 10)
    assert (long.events, long.snapshots, long.with_folded, long.behind_folded) == (301, 3, 0, 301)
