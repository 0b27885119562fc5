"""Replay and history loading: how fast a long history folds, reads back, verifies and loads.

The history is real: a task/choice loop (``again`` -> ``work`` -> ``again`` ... -> ``done``) driven
through ``decide_and_evolve`` with one ``CompleteStep`` per round and stamped exactly like
``Engine._stamp`` stamps it (ids, times, causation ids, chain hashes). Nothing is cached on disk.

Every figure sits beside a raw limit measured in the same run: ``json.loads`` of the same bodies,
one ``dataclasses.replace`` per event, a plain ``SELECT body`` over the same rows (sqlite3, or the
Cassandra driver paging with the backend's fetch size), ``decide_and_evolve`` alone.

    python -m bench.replay [--quick] [--distributed]    # this section alone
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import socket
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from orchestrator.backends.sqlite import SQLiteEventLog
from orchestrator.core.commands import Command, CompleteStep, StartExecution
from orchestrator.core.events import Event
from orchestrator.core.machine import decide_and_evolve
from orchestrator.core.replay import verify_history
from orchestrator.core.state import ExecutionState, fold
from orchestrator.core.timefmt import rfc3339
from orchestrator.engine import snapshots
from orchestrator.ports import EventLog, Snapshot
from schemas.envelope import DEFAULT_SOURCE, Envelope, chain_hash
from schemas.graph import WorkflowGraph
from schemas.validation import parse_definition

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
STEP_SECONDS = 0.001  # simulated time between two answers
SNAPSHOT_EVERY = 1000  # the engine's default (ORCHESTRATOR_SNAPSHOT_EVERY)
APPEND_BATCH = 1000  # events per append while writing the history into a log
CASSANDRA_APPEND_BATCH = 500  # one LWT batch (one mutation) per append
CASSANDRA_KEYSPACE = "bench_replay"

# Starts at the choice so that a history has 3k + 4 events for k rounds: 10, 1,000 and 100,000
# are all reachable exactly (ExecutionStarted, ChoiceMade, StepScheduled; then StepSucceeded,
# ChoiceMade, StepScheduled per round; the last round ends with StepSucceeded(done) and
# ExecutionSucceeded instead of the StepScheduled).
LOOP: dict[str, Any] = {
    "name": "bench-replay-loop",
    "version": 1,
    "steps": [
        {
            "name": "again",
            "type": "choice",
            "choices": [{"when": "steps.work.n >= input.rounds", "next": "done"}],
            "default": "work",
        },
        {
            "name": "work",
            "type": "task",
            "connector": "http",
            "config": {"method": "POST", "url": "https://example.test/work"},
            "input": {"previous": "steps.work.n", "order": "input.order"},
            "next": "again",
        },
        {"name": "done", "type": "succeed", "output": "steps.work"},
    ],
}


def loop_graph() -> WorkflowGraph:
    return WorkflowGraph.build(parse_definition(LOOP))


def rounds_for(events: int) -> int:
    """Rounds of the loop for the shortest history with at least ``events`` events (3k + 4)."""
    return max(1, math.ceil((events - 4) / 3))


def stamp(
    before: ExecutionState | None,
    after: ExecutionState,
    command: Command,
    events: Sequence[Event],
    chain: str,
    source: str = DEFAULT_SOURCE,
) -> list[Envelope]:
    """Envelopes for decided events, as ``Engine._stamp`` makes them (no id factory)."""
    time_ = rfc3339(command.now)
    first = before.sequence + 1 if before else 1
    stamped = []
    for offset, event in enumerate(events):
        envelope = Envelope(
            id=f"{after.execution_id}/{first + offset}",
            type=event.type,
            subject=after.execution_id,
            sequence=first + offset,
            time=time_,
            workflow=after.workflow,
            workflowversion=after.version,
            data=event.data,
            tenant=after.tenant,
            source=source,
            actor=command.actor,
            causationid=command.command_id,
        )
        chain = chain_hash(chain, envelope)
        stamped.append(dataclasses.replace(envelope, chainhash=chain))
    return stamped


@dataclass(frozen=True, slots=True)
class SnapshotPoint:
    """What the engine would snapshot after a decision: its state, command and chain hash."""

    state: ExecutionState
    command_id: str | None
    chainhash: str

    def snapshot(self) -> Snapshot:
        body = snapshots.encode(self.state, self.command_id, self.chainhash)
        return Snapshot(self.state.execution_id, self.state.sequence, body)


@dataclass
class History:
    execution_id: str
    graph: WorkflowGraph
    commands: list[Command]
    envelopes: list[Envelope]
    final: ExecutionState
    snapshot_points: list[SnapshotPoint]  # where the engine's snapshot rule fires
    decide_seconds: float  # inside decide_and_evolve
    stamp_seconds: float  # inside stamp (ids, times, chain hashes)


def build_history(events: int, execution_id: str = "replay-1", every: int = SNAPSHOT_EVERY) -> History:
    """The loop driven to success through the pure machine, ``3k + 4 >= events`` events."""
    graph = loop_graph()
    rounds = rounds_for(events)
    now = T0
    start = StartExecution(
        execution_id=execution_id,
        now=now,
        command_id="c0",
        workflow=LOOP["name"],
        version=1,
        input={"rounds": rounds, "order": {"id": "o-1", "lines": 3}},
    )
    commands: list[Command] = []
    envelopes: list[Envelope] = []
    points: list[SnapshotPoint] = []
    state: ExecutionState | None = None
    chain = ""
    decide_seconds = stamp_seconds = 0.0
    command: Command = start
    for n in range(1, rounds + 2):
        began = time.perf_counter()
        decided, after = decide_and_evolve(graph, state, command)
        middle = time.perf_counter()
        assert decided and after is not None, f"the machine ignored {command}"
        if state is None:  # as the engine does: the start's actor is the execution's
            after = dataclasses.replace(after, started_by=command.actor)
        stamped = stamp(state, after, command, decided, chain)
        decide_seconds += middle - began
        stamp_seconds += time.perf_counter() - middle
        commands.append(command)
        envelopes += stamped
        chain = stamped[-1].chainhash or ""
        if snapshots.due(state.sequence if state else 0, after.sequence, every):
            points.append(SnapshotPoint(after, command.command_id, chain))
        state = after
        if state.terminal:
            break
        active = state.active["work"]
        now = round(now + STEP_SECONDS, 6)
        command = CompleteStep(
            execution_id=execution_id,
            now=now,
            command_id=f"c{n}",
            step="work",
            attempt_id=active.attempt_id,
            output={"n": n, "status": 200, "body": {"accepted": True, "ref": f"r-{n}"}},
        )
    assert state is not None and state.status == "succeeded", state
    return History(execution_id, graph, commands, envelopes, state, points, decide_seconds, stamp_seconds)


# -- measuring ----------------------------------------------------------------------------------


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


async def median_seconds_async(run: Callable[[], Awaitable[object]], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


@dataclass
class FoldFigures:
    events: int
    json_loads_per_s: float  # json.loads of the stored bodies alone
    parse_per_s: float  # Envelope.from_bytes
    fold_per_s: float  # orchestrator.core.state.fold over parsed envelopes
    replace_floor_per_s: float  # one dataclasses.replace(state, sequence=...) per event
    parse_fold_per_s: float  # from bytes to the final state


def measure_fold(history: History, repeat: int) -> FoldFigures:
    bodies = [e.to_bytes() for e in history.envelopes]
    parsed = [Envelope.from_bytes(body) for body in bodies]
    folded = fold(parsed)
    assert folded == history.final, "folding the stored history does not give the decided state"
    count = len(bodies)

    def json_loads() -> None:  # results dropped at once, like a fold drops each event
        loads = json.loads
        for body in bodies:
            loads(body)

    def parse() -> None:
        from_bytes = Envelope.from_bytes
        for body in bodies:
            from_bytes(body)

    def replace_floor() -> None:
        state = history.final
        for _ in parsed:
            state = dataclasses.replace(state, sequence=state.sequence + 1)

    return FoldFigures(
        events=count,
        json_loads_per_s=count / median_seconds(json_loads, repeat),
        parse_per_s=count / median_seconds(parse, repeat),
        fold_per_s=count / median_seconds(lambda: fold(parsed), repeat),
        replace_floor_per_s=count / median_seconds(replace_floor, repeat),
        parse_fold_per_s=count / median_seconds(lambda: fold(Envelope.from_bytes(b) for b in bodies), repeat),
    )


@dataclass
class LoadTime:
    """Loading one finished history with ``snapshots.load`` (medians, ms)."""

    events: int
    raw_read_ms: float  # the plain SELECT of every body, same rows
    without_ms: float  # no snapshot stored: the whole history is read, parsed and folded
    snapshots: int  # saved by the engine's rule (every SNAPSHOT_EVERY events)
    with_ms: float | None  # the latest snapshot plus the tail after it
    with_folded: int | None  # events folded on top of that snapshot
    behind_ms: float | None  # the latest snapshot at least SNAPSHOT_EVERY - 1 events back
    behind_folded: int | None


@dataclass
class BackendFigures:
    backend: str
    events: int
    append_per_s: float  # writing the history, APPEND_BATCH events per append (setup)
    raw_read_per_s: float  # plain SELECT body ... ORDER BY sequence, every row fetched
    raw_read_json_per_s: float  # the same plus json.loads of each body
    replay_per_s: float  # snapshots.load with no snapshot: paged read + parse + fold
    verify_per_s: float | None = None  # verify_history over the envelopes read back
    decide_per_s: float | None = None  # decide_and_evolve alone, while building the history
    verify_short_per_s: float | None = None  # the same on the 1,000-event history
    loads: list[LoadTime] = field(default_factory=list)


class _SnapshotsBefore:
    """An event log whose latest snapshot is the one at or before ``cap``: loads a history as if
    its last snapshot were that far back (same query, tighter bound)."""

    def __init__(self, log: EventLog, cap: int) -> None:
        self._log = log
        self._cap = cap

    async def read(
        self, execution_id: str, after_sequence: int = 0, limit: int | None = None
    ) -> list[Envelope]:
        return await self._log.read(execution_id, after_sequence, limit)

    async def load_snapshot(self, execution_id: str, at_most: int | None = None) -> Snapshot | None:
        bound = self._cap if at_most is None else min(at_most, self._cap)
        return await self._log.load_snapshot(execution_id, bound)


async def append_history(log: EventLog, history: History, batch: int) -> float:
    """Write the history in appends of ``batch`` events; seconds taken."""
    began = time.perf_counter()
    envelopes = history.envelopes
    for index in range(0, len(envelopes), batch):
        await log.append(history.execution_id, index, envelopes[index : index + batch])
    return time.perf_counter() - began


async def load_times(
    log: EventLog,
    histories: Sequence[History],
    raw_read: Callable[[str], Awaitable[int]],
    repeat: Callable[[int], int],
) -> list[LoadTime]:
    """Median load times without snapshots, then with the engine's snapshots saved."""
    results = []
    for history in histories:
        count, execution_id = len(history.envelopes), history.execution_id

        async def load(source: Any = log, eid: str = execution_id) -> snapshots.Loaded:
            loaded = await snapshots.load(cast(EventLog, source), eid)
            assert loaded is not None
            return loaded

        async def raw(eid: str = execution_id, expected: int = count) -> None:
            assert await raw_read(eid) == expected

        checked = await load()
        assert checked.state == history.final and checked.from_snapshot == 0
        reps = repeat(count)
        raw_ms = await median_seconds_async(raw, reps) * 1000
        without_ms = await median_seconds_async(load, reps) * 1000
        results.append(
            LoadTime(count, raw_ms, without_ms, len(history.snapshot_points), None, None, None, None)
        )
    for history, result in zip(histories, results, strict=True):
        for point in history.snapshot_points:
            await log.save_snapshot(point.snapshot())
        behind = _SnapshotsBefore(log, len(history.envelopes) - (SNAPSHOT_EVERY - 1))
        reps = repeat(result.events)
        for source, kind in ((log, "with"), (behind, "behind")):
            loaded = await snapshots.load(cast(EventLog, source), history.execution_id)
            assert loaded is not None and loaded.state == history.final
            assert loaded.chainhash == (history.envelopes[-1].chainhash or "")

            async def again(source: Any = source, eid: str = history.execution_id) -> None:
                await snapshots.load(cast(EventLog, source), eid)

            ms = await median_seconds_async(again, reps) * 1000
            setattr(result, f"{kind}_ms", ms)
            setattr(result, f"{kind}_folded", loaded.folded)
    return results


def _repeat(quick: bool) -> Callable[[int], int]:
    def repeat(events: int) -> int:
        if events <= 100:  # well under a millisecond: many samples are cheap
            return 51
        if events <= 1000:
            return 9 if quick else 21
        return 3

    return repeat


# -- SQLite -------------------------------------------------------------------------------------


def sqlite_raw_read(connection: sqlite3.Connection, execution_id: str, parse: bool = False) -> int:
    """Every body of one execution through a plain sqlite3 connection, all rows fetched."""
    rows = connection.execute(
        "SELECT body FROM events WHERE execution_id = ? ORDER BY sequence", (execution_id,)
    ).fetchall()
    if parse:
        loads = json.loads
        for (body,) in rows:
            loads(body)
    return len(rows)


async def run_sqlite(folder: Path, main: History, others: Sequence[History], quick: bool) -> BackendFigures:
    path = folder / "replay.db"
    log = SQLiteEventLog.from_url(f"sqlite:///{path}")
    await log.start()
    plain = sqlite3.connect(path)  # kept open, like the event log's own connection
    try:
        append_seconds = await append_history(log, main, APPEND_BATCH)
        for history in others:
            await append_history(log, history, APPEND_BATCH)
        count, eid = len(main.envelopes), main.execution_id
        repeat = _repeat(quick)(count)
        raw_s = median_seconds(lambda: sqlite_raw_read(plain, eid), repeat)
        raw_json_s = median_seconds(lambda: sqlite_raw_read(plain, eid, parse=True), repeat)
        envelopes = await log.read(eid)
        assert [e.to_bytes() for e in envelopes] == [e.to_bytes() for e in main.envelopes]
        verify_s = median_seconds(lambda: _verified(main.graph, envelopes), 1 if count > 5_000 else repeat)
        short = others[-1]
        short_envelopes = await log.read(short.execution_id)
        verify_short_s = median_seconds(lambda: _verified(short.graph, short_envelopes), repeat)

        async def raw_read(execution_id: str) -> int:
            return sqlite_raw_read(plain, execution_id)

        loads = await load_times(cast(EventLog, log), [*others, main], raw_read, _repeat(quick))
    finally:
        plain.close()
        await log.stop()
    return BackendFigures(
        backend="SQLite",
        events=count,
        append_per_s=count / append_seconds,
        raw_read_per_s=count / raw_s,
        raw_read_json_per_s=count / raw_json_s,
        replay_per_s=count / (loads[-1].without_ms / 1000),
        verify_per_s=count / verify_s,
        verify_short_per_s=len(short_envelopes) / verify_short_s,
        decide_per_s=len(main.envelopes) / main.decide_seconds,
        loads=loads,
    )


def _verified(graph: WorkflowGraph, envelopes: Sequence[Envelope]) -> None:
    divergence = verify_history(graph, envelopes)
    assert divergence is None, str(divergence)


# -- Cassandra ----------------------------------------------------------------------------------

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class CassandraRawReader:
    """The plain driver: a prepared ``SELECT body`` paged with the backend's fetch size."""

    def __init__(self, host: str, port: int, keyspace: str) -> None:
        from cassandra import ConsistencyLevel
        from cassandra.cluster import Cluster

        from orchestrator.backends.cassandra.schema import PAGE_SIZE

        self._cluster = Cluster([host], port=port, protocol_version=5, sockopts=NODELAY)
        self._session = self._cluster.connect()
        self._select = self._session.prepare(f"SELECT body FROM {keyspace}.events WHERE execution_id = ?")
        self._select.consistency_level = ConsistencyLevel.LOCAL_QUORUM  # the backend's default
        self._page = PAGE_SIZE

    def read(self, execution_id: str, parse: bool = False) -> int:
        statement = self._select.bind((execution_id,))
        statement.fetch_size = self._page
        count = 0
        loads = json.loads
        for (body,) in self._session.execute(statement):  # pages on as it iterates
            if parse:
                loads(body)
            count += 1
        return count

    def close(self) -> None:
        self._cluster.shutdown()


def drop_keyspace(host: str, port: int, keyspace: str) -> None:
    from cassandra.cluster import Cluster

    cluster = Cluster([host], port=port, protocol_version=5, sockopts=NODELAY)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
    finally:
        cluster.shutdown()


async def run_cassandra(
    main: History, others: Sequence[History], quick: bool, cassandra: str = "127.0.0.1:9042"
) -> BackendFigures:
    from orchestrator.backends.cassandra.event_log import CassandraEventLog

    host, _, port_text = cassandra.partition(":")
    port = int(port_text or 9042)
    await asyncio.to_thread(drop_keyspace, host, port, CASSANDRA_KEYSPACE)
    log = CassandraEventLog.from_url(f"cassandra://{cassandra}/{CASSANDRA_KEYSPACE}?migrate=auto")
    await log.start()
    reader = await asyncio.to_thread(CassandraRawReader, host, port, CASSANDRA_KEYSPACE)
    try:
        append_seconds = await append_history(log, main, CASSANDRA_APPEND_BATCH)
        for history in others:
            await append_history(log, history, CASSANDRA_APPEND_BATCH)
        count, eid = len(main.envelopes), main.execution_id
        repeat = _repeat(quick)(count)
        # Called on the event loop's thread (blocking it: nothing else runs meanwhile), so the
        # raw read pays no thread hop; the driver's own I/O thread does the network work.
        assert reader.read(eid) == count
        raw_s = median_seconds(lambda: reader.read(eid), repeat)
        raw_json_s = median_seconds(lambda: reader.read(eid, parse=True), repeat)

        async def raw_read(execution_id: str) -> int:
            return reader.read(execution_id)

        loads = await load_times(cast(EventLog, log), [*others, main], raw_read, _repeat(quick))
    finally:
        await asyncio.to_thread(reader.close)
        await log.stop()
        await asyncio.to_thread(drop_keyspace, host, port, CASSANDRA_KEYSPACE)
    return BackendFigures(
        backend="Cassandra",
        events=count,
        append_per_s=count / append_seconds,
        raw_read_per_s=count / raw_s,
        raw_read_json_per_s=count / raw_json_s,
        replay_per_s=count / (loads[-1].without_ms / 1000),
        loads=loads,
    )


# -- the whole section --------------------------------------------------------------------------


@dataclass
class ReplayResult:
    events: int
    build_seconds: float
    decide_seconds: float
    stamp_seconds: float
    fold: FoldFigures
    backends: list[BackendFigures]


async def run_replay(*, quick: bool, distributed: bool = False, workdir: Path | None = None) -> ReplayResult:
    events = 10_000 if quick else 100_000
    began = time.perf_counter()
    main = build_history(events, f"replay-{events}")
    build_seconds = time.perf_counter() - began
    others = [build_history(size, f"replay-{size}") for size in (10, 1000)]
    figures = measure_fold(main, 3)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        backends = [await run_sqlite(Path(tmp), main, others, quick)]
    if distributed:
        backends.append(await run_cassandra(main, others, quick))
    return ReplayResult(
        len(main.envelopes), build_seconds, main.decide_seconds, main.stamp_seconds, figures, backends
    )


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f} ms" if value < 10 else f"{value:,.0f} ms"


def replay_table(r: ReplayResult) -> list[str]:
    f = r.fold
    lines = [
        f"### Replay and history loading ({r.events:,}-event history: a task/choice loop)",
        "",
        "| figure | measured | raw limit (same run) | ratio | target |",
        "|---|---|---|---|---|",
        f"| fold (parsed envelopes) | {f.fold_per_s:,.0f} events/s | one `dataclasses.replace` per event "
        f"{f.replace_floor_per_s:,.0f}/s | {f.fold_per_s / f.replace_floor_per_s:.2f}x | ≥ 100,000/s |",
        f"| parse + fold (from bytes) | {f.parse_fold_per_s:,.0f} events/s | `json.loads` alone "
        f"{f.json_loads_per_s:,.0f}/s | {f.parse_fold_per_s / f.json_loads_per_s:.2f}x | |",
        f"| parse (`Envelope.from_bytes`) | {f.parse_per_s:,.0f} events/s | `json.loads` alone "
        f"{f.json_loads_per_s:,.0f}/s | {f.parse_per_s / f.json_loads_per_s:.2f}x | |",
    ]
    for b in r.backends:
        lines.append(
            f"| {b.backend} replay (`snapshots.load`, no snapshot) | {b.replay_per_s:,.0f} events/s | "
            f"plain `SELECT body` {b.raw_read_per_s:,.0f}/s; with `json.loads` {b.raw_read_json_per_s:,.0f}/s | "
            f"{b.replay_per_s / b.raw_read_per_s:.2f}x ({b.replay_per_s / b.raw_read_json_per_s:.2f}x "
            f"of SELECT + json.loads) | ≥ 0.5x |"
        )
        if b.verify_per_s is not None and b.decide_per_s is not None:
            short = f" (1,000-event history: {b.verify_short_per_s:,.0f}/s)" if b.verify_short_per_s else ""
            lines.append(
                f"| `verify_history` (read back from {b.backend}) | {b.verify_per_s:,.0f} events/s{short} | "
                f"`decide_and_evolve` alone {b.decide_per_s:,.0f}/s | {b.verify_per_s / b.decide_per_s:.2f}x | |"
            )
    lines.append(
        f"| building the history (decide + stamp with chain hashes) | {r.events / r.build_seconds:,.0f} events/s "
        f"| stamping alone {r.events / r.stamp_seconds:,.0f}/s | | |"
    )
    for b in r.backends:
        lines += [
            "",
            f"{b.backend}: load time of a finished history, median; written at "
            f"{b.append_per_s:,.0f} events/s in appends of "
            f"{APPEND_BATCH if b.backend == 'SQLite' else CASSANDRA_APPEND_BATCH} events",
            "",
            "| history | no snapshot | plain SELECT of the bodies | with a snapshot every "
            f"{SNAPSHOT_EVERY:,} (events folded) | last snapshot ≥ {SNAPSHOT_EVERY - 1} events back (folded) |",
            "|---|---|---|---|---|",
        ]
        for load in b.loads:
            with_ = "n/a" if load.with_ms is None else f"{_ms(load.with_ms)} ({load.with_folded:,})"
            behind = "n/a" if load.behind_ms is None else f"{_ms(load.behind_ms)} ({load.behind_folded:,})"
            lines.append(
                f"| {load.events:,} events ({load.snapshots} snapshot{'' if load.snapshots == 1 else 's'}) | "
                f"{_ms(load.without_ms)} | "
                f"{_ms(load.raw_read_ms)} | {with_} | {behind} |"
            )
    return lines


def as_dict(result: ReplayResult) -> dict[str, Any]:
    return dataclasses.asdict(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--distributed", action="store_true", help="also Cassandra (scripts/services)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(run_replay(quick=args.quick, distributed=args.distributed))
    print(json.dumps(as_dict(result), indent=2) if args.json else "\n".join(replay_table(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
