"""Schedules: the timing error of fires with 10,000 schedules active, and memory per schedule.

    python -m bench.schedules [--quick] [--json]

Each backend runs in a fresh child process (nothing else in its heap), in this order:

1. the **raw limit**: 10,000 bare asyncio tasks, each sleeping until its next target time of the
   same grid the schedules use (``every`` seconds, anchors spread evenly over the interval), and
   the lateness of each wake-up (wall clock at wake minus target); RSS per sleeping task;
2. **memory per schedule**: a workflow declaring 10,000 ``schedule`` triggers whose first fire is
   a day away, one ``ScheduleSource`` each (what the trigger manager builds), over a ``Runtime``
   with the backend's event log and schedule states: RSS once every source stored its state,
   against the runtime before the definition was registered (the 10,000 trigger models count
   too) and against the runtime with it (the sources and their states alone);
3. **fire lateness**: 10,000 more schedules on the bare sleepers' grid (``every``, ``start_at``
   spread over the interval, overlap ``allow``), after one interval (at most 30 s) of warm-up. A
   fire's lateness is the wall clock when its start is durable (the execution appended) minus its
   due time.

The bare loop and the lateness loop run for the same time, one after the other, in the same
process. ``every`` defaults to 30 s in memory (333 fires/s) and 300 s on SQLite (33 fires/s).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
COUNT = 10_000


@dataclass
class ScheduleRun:
    backend: str
    schedules: int
    every_s: float
    seconds: float
    fires: int
    expected_fires: int
    lateness_p50_ms: float
    lateness_p99_ms: float
    lateness_max_ms: float
    bare_wakeups: int
    bare_p50_ms: float
    bare_p99_ms: float
    bare_max_ms: float
    bytes_per_schedule: float  # with the definition's trigger models
    bytes_per_source: float  # sources and their states only
    bytes_per_bare_task: float
    cpu_share: float  # process CPU seconds per wall second while firing


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bare_sleepers(count: int, every: float, seconds: float, anchor: float) -> tuple[list[float], float]:
    """Lateness (s) of each wake-up of ``count`` tasks on the grid, and RSS bytes per task."""
    lateness: list[float] = []

    async def sleeper(offset: float) -> None:
        target = anchor + offset
        while True:
            now = time.time()
            while target <= now:
                target += every
            await asyncio.sleep(target - now)
            lateness.append(time.time() - target)

    gc.collect()
    before = rss_bytes()
    tasks = [asyncio.create_task(sleeper(i * every / count)) for i in range(count)]
    await asyncio.sleep(0.5)
    gc.collect()
    per_task = (rss_bytes() - before) / count
    lateness.clear()
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return lateness, per_task


async def child(backend: str, count: int, every: float, seconds: float, folder: Path) -> ScheduleRun:
    from orchestrator.runtime import Runtime
    from orchestrator.settings import Settings
    from schemas.definition import ScheduleTrigger, SucceedStep, WorkflowDefinition
    from schemas.schedule_times import rfc3339_ms
    from triggers.schedule_fires import Done
    from triggers.schedules import Schedules
    from triggers.sources import SourceSpec

    anchor = math.floor(time.time())
    bare, per_task = await bare_sleepers(count, every, seconds, anchor)
    url = "memory://" if backend == "memory" else f"sqlite:///{folder}/schedules.db"
    settings = Settings(event_log_url=url, retention_interval=0, recovery_interval=0)
    lateness: list[float] = []

    def observe(at: float, now: float, done: Done) -> None:
        if done.outcome == "started":
            lateness.append(now - at)

    def definition(name: str, first: float) -> WorkflowDefinition:
        triggers = [
            ScheduleTrigger(name=f"s{i:05d}", every=every, start_at=rfc3339_ms(first + i * every / count), overlap="allow")
            for i in range(count)
        ]
        return WorkflowDefinition(name=name, triggers=triggers, steps=[SucceedStep(name="done")])

    async with Runtime(settings) as runtime, Schedules(runtime, observer=observe) as schedules:

        async def run(stored: WorkflowDefinition) -> list[Any]:
            sources = [
                schedules.source(SourceSpec(stored.name, stored.version or 1, t, runtime, settings))
                for t in stored.triggers
            ]
            for source in sources:
                await source.start()
            return sources

        # Memory: schedules whose first fire is a day away, so no execution is in the heap.
        gc.collect()
        rss_runtime = rss_bytes()
        idle = await runtime.register(definition("bench-idle", time.time() + 86_400))
        gc.collect()
        rss_defined = rss_bytes()
        sources = await run(idle)
        await asyncio.sleep(5)  # every source stored its first state
        gc.collect()
        rss_running = rss_bytes()
        for source in sources:
            await source.stop()
        # Lateness: the grid of the bare sleepers.
        sources = await run(await runtime.register(definition("bench-schedules", anchor)))
        await asyncio.sleep(min(every, 30.0))  # every source stored its first state, fires flow
        lateness.clear()
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu_share = (time.process_time() - cpu) / (time.monotonic() - wall)
        fired = len(lateness)
        for source in sources:
            await source.stop()
    ms = [1000 * x for x in lateness]
    bare_ms = [1000 * x for x in bare]
    return ScheduleRun(
        backend=backend,
        schedules=count,
        every_s=every,
        seconds=seconds,
        fires=fired,
        expected_fires=int(count * seconds / every),
        lateness_p50_ms=statistics.median(ms) if ms else math.nan,
        lateness_p99_ms=percentile(ms, 0.99),
        lateness_max_ms=max(ms) if ms else math.nan,
        bare_wakeups=len(bare_ms),
        bare_p50_ms=statistics.median(bare_ms) if bare_ms else math.nan,
        bare_p99_ms=percentile(bare_ms, 0.99),
        bare_max_ms=max(bare_ms) if bare_ms else math.nan,
        bytes_per_schedule=(rss_running - rss_runtime) / count,
        bytes_per_source=(rss_running - rss_defined) / count,
        bytes_per_bare_task=per_task,
        cpu_share=cpu_share,
    )


EVERY = {"memory": 30.0, "sqlite": 300.0}  # 333 and 33 fires/s: what each sustains (docs/performance.md)


def run_schedules(
    *, quick: bool, backends: tuple[str, ...] = ("memory", "sqlite"), every: float | None = None
) -> list[ScheduleRun]:
    """Each backend in a child process; 60 s per loop (quick: 10 s), at the backend's ``EVERY``."""
    seconds = 10.0 if quick else 60.0
    runs = []
    for backend in backends:
        interval = every or EVERY[backend]
        with tempfile.TemporaryDirectory() as folder:
            out = subprocess.run(
                [sys.executable, "-m", "bench.schedules", "--child", backend, str(COUNT), str(interval), str(seconds), folder],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        runs.append(ScheduleRun(**json.loads(out.strip().splitlines()[-1])))
    return runs


def schedule_rows(runs: list[ScheduleRun]) -> list[str]:
    rows = []
    for r in runs:
        where = f"{r.backend}; {r.schedules:,} schedules every {r.every_s:g} s, {r.fires:,} fires in {r.seconds:g} s"
        rows += [
            f"| fire lateness p50 / p99 ({where}; CPU {r.cpu_share:.0%}) | {r.lateness_p50_ms:.1f} / "
            f"{r.lateness_p99_ms:.1f} ms (max {r.lateness_max_ms:.0f}) | bare `asyncio.sleep` wake-up, "
            f"{r.schedules:,} sleepers: {r.bare_p50_ms:.2f} / {r.bare_p99_ms:.2f} ms | "
            f"{r.lateness_p99_ms / max(r.bare_p99_ms, 0.01):.0f}x (p99) | |",
            f"| memory per schedule ({r.backend}; with its trigger model / source and state only) | "
            f"{r.bytes_per_schedule / 1024:.1f} / {r.bytes_per_source / 1024:.1f} KiB | a bare sleeping task: "
            f"{r.bytes_per_bare_task / 1024:.2f} KiB | {r.bytes_per_source / max(r.bytes_per_bare_task, 1):.1f}x | |",
        ]
        if r.fires < 0.99 * r.expected_fires:
            rows.append(f"| (fires: {r.fires:,} of {r.expected_fires:,} due: the backend did not keep up) | | | | |")
    return rows


def as_dict(runs: list[ScheduleRun]) -> list[dict[str, Any]]:
    return [asdict(r) for r in runs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.schedules")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--backend", action="append", choices=["memory", "sqlite"])
    parser.add_argument("--every", type=float, help="seconds between a schedule's fires (default per backend)")
    parser.add_argument("--child", nargs=5, metavar=("BACKEND", "COUNT", "EVERY", "SECONDS", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        backend, count, every, seconds, folder = args.child
        result = asyncio.run(child(backend, int(count), float(every), float(seconds), Path(folder)))
        print(json.dumps(asdict(result)))
        return 0
    runs = run_schedules(quick=args.quick, backends=tuple(args.backend or ("memory", "sqlite")), every=args.every)
    if args.json:
        print(json.dumps(as_dict(runs), indent=2))
    else:
        print("\n".join(["| figure | measured | raw limit (same run) | ratio | target |", "|---|---|---|---|---|"]))
        print("\n".join(schedule_rows(runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
