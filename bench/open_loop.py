"""Open-loop load: constant start rates stepped up until latency breaks down.

    python -m bench.open_loop [--quick] [--synchronous full|normal] [--distributed] [--json]

One ``Runtime`` on SQLite WAL (``synchronous=full`` by default) and the in-process bus
(``concurrency=64``), or with ``--distributed`` on Kafka + Cassandra (one process, role=all, a
fresh keyspace and fresh topics, dropped afterwards), the 10-step no-op workflow of
``bench.embedded``. Latency is from the
moment a start was *scheduled* to the commit of its ``ExecutionSucceeded`` (an engine observer
notes the time), so a start issued late because the process was busy counts its delay
(no coordinated omission). Starts are issued on a fixed schedule, ``i / rate`` after the step
began, whatever has completed (open loop).

1. unloaded: executions one at a time → unloaded p50/p99;
2. first estimate: the closed-loop rate of a burst started at once;
3. steps at 25%, 50%, 75%, 100%, 125%, 150%, 200%, ... of the estimate, ``step_seconds``
   each; after each step every execution is waited for (a step's figures count completed
   executions only). A step is *sustained* when all its executions completed, its p99 is at
   most ``LIMIT`` x the unloaded p99, and executions completed at ``KEEP_UP`` x the offered rate
   or more in the second half of its schedule (a short step can hide a growing backlog under the
   latency limit). Stepping stops at the first step that is not; then the gap
   between the last sustained and the first failed rate is bisected ``refine`` times;
4. latency at 25%, 50%, 75% and 90% of the max sustained rate, one more step each.

Figures: the max sustained offered rate, with the completed workflows/s and transitions/s of that
step (executions of the step completing in the second half of its schedule, when it is in its
steady state, per second; transitions = that x the events of one execution), and p50/p99 at
the fractions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.embedded import percentile, ten_step_workflow
from connectors.base import Connectors
from connectors.noop import NoopConnector
from orchestrator.engine.engine import Committed
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

LIMIT = 10.0  # a step is overloaded when its p99 exceeds LIMIT x the unloaded p99
KEEP_UP = 0.9  # ... or when it completes fewer than KEEP_UP x the offered rate (a growing backlog)


@dataclass
class Step:
    offered_per_s: float
    executions: int
    completed: int
    workflows_per_s: float  # executions (of this step) completed per second in the 2nd half of the schedule
    transitions_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    sustained: bool


@dataclass
class OpenLoopResult:
    synchronous: str  # the SQLite setting (embedded), or "n/a" on Kafka + Cassandra
    step_seconds: float
    unloaded_p50_ms: float
    unloaded_p99_ms: float
    estimate_workflows_per_s: float  # closed-loop burst
    events_per_execution: int
    steps: list[Step] = field(default_factory=list)
    max_sustained: Step | None = None
    at_fraction: dict[str, Step] = field(default_factory=dict)  # "25%" -> the step at 25% of max
    mode: str = "embedded"


class Load:
    """A started runtime plus completion times from an engine observer."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.done_at: dict[str, float] = {}
        self.changed = asyncio.Event()
        runtime.engine.observers.append(self.on_commit)

    async def on_commit(self, committed: Committed) -> None:
        if committed.events and committed.after.terminal:
            self.done_at[committed.after.execution_id] = time.perf_counter()
            self.changed.set()

    async def start(self, scheduled: float, into: list[tuple[str, float]]) -> None:
        started = await self.runtime.start_execution("bench-noop")
        into.append((started.execution_id, scheduled))

    async def run_step(self, rate: float, seconds: float, unloaded_p99_ms: float, events: int) -> Step:
        count = max(1, round(rate * seconds))
        issued: list[tuple[str, float]] = []
        tasks: list[asyncio.Task[None]] = []
        began = time.perf_counter() + 0.01
        for index in range(count):
            scheduled = began + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.start(scheduled, issued)))
        drain = max(10.0, 3 * seconds)
        deadline = time.perf_counter() + drain
        await asyncio.wait(tasks, timeout=drain)
        while time.perf_counter() < deadline and not all(i in self.done_at for i, _ in issued):
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), deadline - time.perf_counter())
            except TimeoutError:
                break
        completed = [(self.done_at[i] - s) * 1000 for i, s in issued if i in self.done_at]
        # The completion rate in the second half of the schedule, when the step is in its steady state.
        half, end = began + seconds / 2, began + seconds
        in_window = sum(half <= self.done_at[i] < end for i, _ in issued if i in self.done_at)
        complete = len(completed) == count
        await self.settle(tasks, issued)
        p99 = percentile(completed, 0.99) if completed else float("inf")
        per_s = in_window / (seconds / 2)
        return Step(
            offered_per_s=rate,
            executions=count,
            completed=len(completed),
            workflows_per_s=per_s,
            transitions_per_s=per_s * events,
            p50_ms=statistics.median(completed) if completed else float("inf"),
            p99_ms=p99,
            max_ms=max(completed, default=float("inf")),
            sustained=complete and p99 <= LIMIT * unloaded_p99_ms and per_s >= KEEP_UP * rate,
        )

    async def settle(self, tasks: list[asyncio.Task[None]], issued: list[tuple[str, float]]) -> None:
        """Let an overloaded step's backlog finish before the next step begins."""
        await asyncio.gather(*tasks)
        for execution_id, _ in issued:
            if execution_id not in self.done_at:
                await self.runtime.wait(execution_id, timeout=600)
        for execution_id, _ in issued:
            self.done_at.pop(execution_id, None)


async def run_open_loop(
    *, quick: bool = False, synchronous: str = "full", workdir: Path | None = None
) -> OpenLoopResult:
    """Embedded: SQLite WAL + the in-process bus."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        settings = Settings(
            event_log_url=f"sqlite:///{tmp}/open-loop.db?synchronous={synchronous}",
            transport_url="inprocess://?concurrency=64",
            retention_interval=0,
        )
        return await run_open_loop_on(settings, quick=quick, synchronous=synchronous, mode="embedded")


async def run_open_loop_distributed(
    *, quick: bool = False, broker: str = "127.0.0.1:9092", cassandra: str = "127.0.0.1:9042"
) -> OpenLoopResult:
    """Kafka + Cassandra in one process (role=all, 12 partitions), as ``bench.distributed``."""
    from bench.distributed import drop_keyspace  # needs cassandra-driver: only here

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    settings = Settings(
        event_log_url=f"cassandra://{cassandra}/{prefix}?migrate=auto",
        transport_url=f"kafka://{broker}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}&partitions=12",
        retention_interval=0,
    )
    host, _, port = cassandra.partition(":")
    try:
        return await run_open_loop_on(settings, quick=quick, synchronous="n/a", mode="Kafka + Cassandra")
    finally:
        await drop_keyspace(host, int(port or 9042), prefix)


async def run_open_loop_on(settings: Settings, *, quick: bool, synchronous: str, mode: str) -> OpenLoopResult:
    step_seconds, unloaded_count, burst, refine = (1.0, 20, 200, 0) if quick else (10.0, 200, 2000, 2)
    async with Runtime(settings, connectors=Connectors([NoopConnector()])) as runtime:
        await runtime.register(ten_step_workflow())
        load = Load(runtime)
        latencies = []
        for _ in range(unloaded_count):
            scheduled = time.perf_counter()
            started = await runtime.start_execution("bench-noop")
            await runtime.wait(started.execution_id, timeout=60)
            latencies.append((load.done_at.pop(started.execution_id) - scheduled) * 1000)
        events = len(await runtime.history(started.execution_id))
        unloaded_p99 = percentile(latencies, 0.99)
        began = time.perf_counter()
        starts = await asyncio.gather(*(runtime.start_execution("bench-noop") for _ in range(burst)))
        await asyncio.gather(*(runtime.wait(s.execution_id, timeout=600) for s in starts))
        estimate = burst / (time.perf_counter() - began)
        for s in starts:
            load.done_at.pop(s.execution_id, None)
        result = OpenLoopResult(
            synchronous=synchronous,
            step_seconds=step_seconds,
            unloaded_p50_ms=statistics.median(latencies),
            unloaded_p99_ms=unloaded_p99,
            estimate_workflows_per_s=estimate,
            events_per_execution=events,
            mode=mode,
        )

        async def step(rate: float) -> Step:
            measured = await load.run_step(rate, step_seconds, unloaded_p99, events)
            result.steps.append(measured)
            return measured

        best: Step | None = None
        failed: Step | None = None
        for fraction in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0):
            measured = await step(estimate * fraction)
            if not measured.sustained:
                failed = measured
                break
            best = measured
        for _ in range(refine if failed is not None else 0):
            low = best.offered_per_s if best is not None else 0.0
            assert failed is not None
            measured = await step((low + failed.offered_per_s) / 2)
            if measured.sustained:
                best = measured
            else:
                failed = measured
        result.max_sustained = best
        if best is not None:
            for fraction in (0.25, 0.5, 0.75, 0.9):
                result.at_fraction[f"{fraction:.0%}"] = await step(best.offered_per_s * fraction)
    return result


def open_loop_rows(
    r: OpenLoopResult, commit_us: float | None = None, raw_limit: tuple[str, float] | None = None
) -> list[str]:
    """``commit_us``: the one-row SQLite commit of the same run (``bench.embedded``), the raw limit;
    or ``raw_limit``: (what, per second) of another raw limit (Kafka + Cassandra)."""
    best = r.max_sustained
    name = "open loop" if r.mode == "embedded" else f"open loop ({r.mode})"
    limit = f"p99 ≤ {LIMIT:.0f}x unloaded ({LIMIT * r.unloaded_p99_ms:.0f} ms), completing ≥ {KEEP_UP:.0%} of the offered rate"
    if best is None:
        return [f"| {name}: no step was sustained ({limit}) | | | | |"]
    if raw_limit is None and commit_us:
        raw_limit = ("one-row SQLite commits", 1e6 / commit_us)
    raw = f"{raw_limit[0]} {raw_limit[1]:,.0f}/s; " if raw_limit else ""
    ratio = f"{best.transitions_per_s / raw_limit[1]:.2f}x of {raw_limit[0]}" if raw_limit else ""
    rows = [
        f"| {name}, max sustained offered start rate ({r.step_seconds:.0f} s steps; {limit}) | "
        f"{best.offered_per_s:,.0f} starts/s: completed {best.workflows_per_s:,.0f} workflows/s, "
        f"{best.transitions_per_s:,.0f} transitions/s (p99 {best.p99_ms:.0f} ms) | {raw}closed-loop burst of "
        f"the same runtime {r.estimate_workflows_per_s:,.0f} workflows/s "
        f"({r.estimate_workflows_per_s * r.events_per_execution:,.0f} transitions/s) | {ratio} | |",
        f"| {name}, start → completion latency unloaded (one at a time) | p50 {r.unloaded_p50_ms:.1f} ms, "
        f"p99 {r.unloaded_p99_ms:.1f} ms | | | |",
    ]
    for fraction, s in r.at_fraction.items():
        rows.append(
            f"| {name} at {fraction} of max ({s.offered_per_s:,.0f} starts/s) | p50 {s.p50_ms:.1f} ms, "
            f"p99 {s.p99_ms:.1f} ms | unloaded p99 {r.unloaded_p99_ms:.1f} ms | {s.p99_ms / r.unloaded_p99_ms:.1f}x (p99) | |"
        )
    return rows


def as_dict(r: OpenLoopResult) -> dict[str, object]:
    return asdict(r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--synchronous", default="full", choices=["full", "normal"])
    parser.add_argument("--distributed", action="store_true", help="Kafka + Cassandra (scripts/services)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.distributed:
        result = asyncio.run(run_open_loop_distributed(quick=args.quick))
    else:
        result = asyncio.run(run_open_loop(quick=args.quick, synchronous=args.synchronous))
    if args.json:
        print(json.dumps(as_dict(result), indent=2))
        return
    for s in result.steps:
        print(
            f"offered {s.offered_per_s:8,.0f}/s  completed {s.completed:6}/{s.executions:<6} "
            f"{s.workflows_per_s:8,.0f} wf/s  p50 {s.p50_ms:8.1f} ms  p99 {s.p99_ms:8.1f} ms  "
            f"{'sustained' if s.sustained else 'NOT sustained'}"
        )
    print("\n".join(open_loop_rows(result)))


if __name__ == "__main__":
    main()
