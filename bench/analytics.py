"""The analytics projection's catch-up rate and query latencies over recorded events.

    python -m bench.analytics [--events 1000000] [--dir DIR]

Generates executions straight into a SQLite event log file (rows of the ``events`` table, with
feed positions, as the log writes them), then in the same run measures:

- the raw limit: reading the whole feed (``SQLiteFeed.read_after``, pages of 500, envelopes
  decoded) with nothing applied;
- the projection catching up from position 0 with the real runner (read, fold, flush, checkpoint);
- each analytics query over the whole window and over one workflow (median of 7), beside the raw
  read of the same cells' rows.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.analytics import queries
from orchestrator.analytics.cells import is_daily
from orchestrator.analytics.projection import NAME, AnalyticsProjection
from orchestrator.analytics.reader import AnalyticsReader, Level, Window
from orchestrator.backends.sqlite import SQLiteEventLog
from orchestrator.projections.runner import ProjectionRunner
from tests.analytics_histories import StepPlan, history

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
WORKFLOWS = 10
STEPS = 4
DAYS = 7
RESULTS = Path(__file__).parent / "results"


def generate(path: str, events: int, seed: int = 7) -> int:
    """Executions of WORKFLOWS workflows with STEPS task steps over DAYS days, rows written
    straight into the log's tables in time order; returns how many events."""
    rng = random.Random(seed)
    per_execution = 2 + 2 * STEPS  # started, (scheduled, outcome) per step, ended
    executions = events // per_execution
    rows: list[tuple[str, int, str, str, bytes]] = []
    span = DAYS * 86400
    for n in range(executions):
        workflow = f"wf{n % WORKFLOWS}"
        steps = [StepPlan(f"s{k}", queue=rng.expovariate(20), run=rng.lognormvariate(-1, 1)) for k in range(STEPS)]
        if rng.random() < 0.05:
            steps[-1] = StepPlan(steps[-1].name, run=0.1, fails="http.500")
        for envelope in history(f"x{n}", workflow, T0 + span * n / executions, steps):
            rows.append((envelope.subject, envelope.sequence, envelope.type, envelope.time, envelope.to_bytes()))
    rows.sort(key=lambda r: r[3])
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO events (execution_id, sequence, type, time, body, position) VALUES (?, ?, ?, ?, ?, ?)",
        [(*row, position) for position, row in enumerate(rows, start=1)],
    )
    connection.execute("COMMIT")
    connection.close()
    return len(rows)


class Clock:
    """Wall time and this process's CPU time (all threads: SQLite runs on the log's thread), so a
    machine shared with other work still shows what the code costs."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


async def raw_feed(log: SQLiteEventLog) -> dict[str, float]:
    feed, position, count = log.feed(), 0, 0
    clock = Clock()
    while True:
        page = await feed.read_after(position, 500)
        if not page.items:
            break
        count += len(page.items)
        position = page.last
    wall, cpu = clock.elapsed()
    return {"events_per_s": count / wall, "events_per_cpu_s": count / cpu}


async def catch_up(log: SQLiteEventLog) -> tuple[dict[str, float], int]:
    store = log.analytics()
    await store.clear()
    runner = ProjectionRunner(log.feed(), log.checkpoints(), poll_interval=0.01)
    runner.add(AnalyticsProjection(store))
    head = await log.feed().head()
    clock = Clock()
    await runner.rebuild(NAME)
    await runner.start()
    while runner.positions.get(NAME, 0) < head:  # noqa: ASYNC110 - the runner has no event for this
        await asyncio.sleep(0.01)
    wall, cpu = clock.elapsed()
    await runner.stop()
    cells, _ = await store.load()
    hourly = sum(1 for cell in cells if not is_daily(cell[4]))  # the rest: daily roll-ups
    return {"events_per_s": head / wall, "events_per_cpu_s": head / cpu}, hourly


async def timed(call: Any, runs: int = 7) -> dict[str, float]:
    """Median wall and CPU milliseconds of ``runs`` calls."""
    walls, cpus = [], []
    for _ in range(runs):
        clock = Clock()
        await call()
        wall, cpu = clock.elapsed()
        walls.append(wall * 1000)
        cpus.append(cpu * 1000)
    return {"ms": statistics.median(walls), "cpu_ms": statistics.median(cpus)}


async def query_latencies(log: SQLiteEventLog) -> dict[str, dict[str, float]]:
    reader = AnalyticsReader(log.analytics())
    window = Window(int(T0) - 3600, int(T0) + (DAYS + 1) * 86400)
    figures: dict[str, tuple[Level, bool, Any]] = {  # as the routes ask: level, daily, figure
        "overview": ("executions", True, queries.overview),
        "rates (hourly)": ("executions", False, lambda cells: queries.rates(cells, 3600)),
        "failures": ("all", True, queries.failures),
        "steps": ("steps", True, queries.steps),
        "retries": ("steps", True, queries.retries),
        "bottlenecks": ("all", True, queries.bottlenecks),
    }
    out: dict[str, dict[str, dict[str, float]]] = {}
    for scope, workflow in (("all workflows", None), ("one workflow", "wf0")):

        async def raw(workflow: str | None = workflow) -> None:
            await log.analytics().cells("default", workflow, window.since, window.until)

        row = {"raw cell rows": await timed(raw)}
        for name, (level, daily, figure) in figures.items():

            async def run(
                figure: Any = figure, level: Level = level, daily: bool = daily, workflow: str | None = workflow
            ) -> None:
                figure(await reader.cells("default", window, workflow, level=level, daily=daily))

            await run()  # the first query parses every cell; the median is of the repeats
            row[name] = await timed(run)
            fresh = functools.partial(run_fresh, log, window, workflow, level, daily, figure)
            row[name]["first_ms"] = (await timed(fresh, 1))["ms"]
        out[scope] = row
    return out


async def run_fresh(
    log: SQLiteEventLog, window: Window, workflow: str | None, level: Level, daily: bool, figure: Any
) -> None:
    """A query of a reader with nothing cached (a process's first query)."""
    figure(await AnalyticsReader(log.analytics()).cells("default", window, workflow, level=level, daily=daily))


async def main_async(events: int, directory: str) -> dict[str, Any]:
    path = f"{directory}/analytics-bench.db"
    log = SQLiteEventLog.from_url(f"sqlite:///{path}")
    await log.start()  # creates the tables
    await log.stop()
    began = time.perf_counter()
    count = generate(path, events)
    generated = time.perf_counter() - began
    await log.start()
    try:
        raw = await raw_feed(log)
        rate, cells = await catch_up(log)
        latencies = await query_latencies(log)
    finally:
        await log.stop()
    return {"events": count, "generate_s": round(generated, 1), "raw_feed": raw, "catch_up": rate,
            "cells": cells, "queries": latencies, "load_average": os.getloadavg()}  # fmt: skip


def table(result: dict[str, Any]) -> list[str]:
    raw, rate = result["raw_feed"], result["catch_up"]
    lines = [
        f"| figure ({result['events']:,} events, {result['cells']:,} cells) | measured: wall (CPU) "
        "| raw limit (same run): wall (CPU) | target |",
        "|---|---|---|---|",
        f"| projection catch-up | {rate['events_per_s']:,.0f} events/s ({rate['events_per_cpu_s']:,.0f} per CPU-s) "
        f"| feed read alone {raw['events_per_s']:,.0f} events/s ({raw['events_per_cpu_s']:,.0f} per CPU-s) "
        "| ≥ 50,000 events/s |",
    ]
    for scope, row in result["queries"].items():
        base = row["raw cell rows"]
        for name, t in row.items():
            if name != "raw cell rows":
                lines.append(
                    f"| {name}, {scope} | {t['ms']:.0f} ms ({t['cpu_ms']:.0f}); first {t['first_ms']:.0f} ms "
                    f"| reading the cells' rows {base['ms']:.0f} ms ({base['cpu_ms']:.0f}) | < 200 ms |"
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        result = asyncio.run(main_async(args.events, directory))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "analytics.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(table(result)))


if __name__ == "__main__":
    main()
