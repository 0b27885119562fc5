"""Embedded default (SQLite + in-process bus): per-step overhead and transitions/s.

Beside them, in the same run, the raw floor: a one-row SQLite WAL commit (same synchronous
setting as the event log) and an asyncio queue hop. Per-step overhead is the gap between one
no-op step returning and the next one starting, with one execution at a time (unloaded).
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.base import Connectors, StepCall
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow

STEPS = 10


class TimedNoop:
    """A no-op connector that records when each call starts and ends."""

    name = "noop"

    def __init__(self) -> None:
        self.marks: dict[str, list[tuple[int, float, float]]] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def invoke(self, call: StepCall) -> Any:
        now = time.perf_counter()
        self.marks.setdefault(call.execution_id, []).append((int(call.step[1:]), now, time.perf_counter()))
        return None


def ten_step_workflow() -> Any:
    workflow = Workflow("bench-noop")
    for index in range(STEPS):
        workflow.task(f"s{index}", "noop")
    return workflow.build()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def raw_sqlite_commit_us(path: Path, synchronous: str, count: int = 2000) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    connection.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
    body = b"x" * 400
    start = time.perf_counter()
    for key in range(count):
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO t VALUES (?, ?)", (key, body))
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed / count * 1e6


def raw_sqlite_batched_rows_per_s(path: Path, synchronous: str, rows: int = 500, commits: int = 40) -> float:
    """Rows/s committed ``rows`` at a time (``executemany`` in one transaction), into a table shaped
    like the event log's (execution id + sequence key, ~600-byte body): SQLite's batched ceiling."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    connection.execute(
        "CREATE TABLE events (execution_id TEXT NOT NULL, sequence INTEGER NOT NULL, body BLOB NOT NULL,"
        " PRIMARY KEY (execution_id, sequence)) WITHOUT ROWID"
    )
    body = b"x" * 600
    start = time.perf_counter()
    for commit in range(commits):
        batch = [(f"execution-{commit}-{row // 20}", row % 20, body) for row in range(rows)]
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("INSERT INTO events VALUES (?, ?, ?)", batch)
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return rows * commits / elapsed


async def queue_hop_us(count: int = 20000) -> float:
    """One put on an asyncio.Queue to the get in another coroutine, back and forth."""
    ping: asyncio.Queue[int] = asyncio.Queue()
    pong: asyncio.Queue[int] = asyncio.Queue()

    async def echo() -> None:
        for _ in range(count):
            pong.put_nowait(await ping.get())

    task = asyncio.create_task(echo())
    start = time.perf_counter()
    for index in range(count):
        ping.put_nowait(index)
        await pong.get()
    elapsed = time.perf_counter() - start
    await task
    return elapsed / (2 * count) * 1e6


@dataclass
class Workload:
    gaps_us: list[float]  # between one step returning and the next one starting, unloaded
    transitions_per_s: float  # events of completed executions, many started at once
    workflows_per_s: float


async def run_workload(runtime: Runtime, noop: TimedNoop, sequential: int, concurrent: int) -> Workload:
    """The 10-step no-op workload on a started runtime: one execution at a time, then many."""
    await runtime.register(ten_step_workflow())
    gaps: list[float] = []
    for _ in range(sequential):
        started = await runtime.start_execution("bench-noop")
        await runtime.wait(started.execution_id, timeout=60)
        marks = sorted(noop.marks.pop(started.execution_id))
        gaps += [(marks[i + 1][1] - marks[i][2]) * 1e6 for i in range(len(marks) - 1)]
    began = time.perf_counter()
    starts = await asyncio.gather(*(runtime.start_execution("bench-noop") for _ in range(concurrent)))
    await asyncio.gather(*(runtime.wait(s.execution_id, timeout=600) for s in starts))
    elapsed = time.perf_counter() - began
    events = len(await runtime.history(starts[0].execution_id))
    return Workload(gaps, concurrent * events / elapsed, concurrent / elapsed)


@dataclass
class EmbeddedResult:
    synchronous: str
    sqlite_commit_us: float
    queue_hop_us: float
    sqlite_batched_rows_per_s: float  # raw rows/s, 500 rows per commit: the batched ceiling
    step_overhead_p50_us: float
    step_overhead_p99_us: float
    transitions_per_s: float
    workflows_per_s: float
    concurrent_executions: int

    @property
    def floor_us(self) -> float:
        return self.sqlite_commit_us + self.queue_hop_us


async def run_embedded(
    *, sequential: int = 50, concurrent: int = 1000, synchronous: str = "full", workdir: Path | None = None
) -> EmbeddedResult:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = Path(tmp)
        commit_us = raw_sqlite_commit_us(folder / "raw.db", synchronous)
        batched = raw_sqlite_batched_rows_per_s(folder / "batched.db", synchronous)
        hop_us = await queue_hop_us()
        noop = TimedNoop()
        settings = Settings(
            event_log_url=f"sqlite:///{folder}/bench.db?synchronous={synchronous}",
            transport_url="inprocess://?concurrency=64",
        )
        async with Runtime(settings, connectors=Connectors([noop])) as runtime:
            workload = await run_workload(runtime, noop, sequential, concurrent)
        return EmbeddedResult(
            synchronous=synchronous,
            sqlite_commit_us=commit_us,
            queue_hop_us=hop_us,
            sqlite_batched_rows_per_s=batched,
            step_overhead_p50_us=statistics.median(workload.gaps_us),
            step_overhead_p99_us=percentile(workload.gaps_us, 0.99),
            transitions_per_s=workload.transitions_per_s,
            workflows_per_s=workload.workflows_per_s,
            concurrent_executions=concurrent,
        )
