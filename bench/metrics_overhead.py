"""What the Prometheus metrics cost: the embedded 10-step workload with metrics off and on, in one run.

    python -m bench.metrics_overhead [--quick] [--rounds N] [--json]

Each round runs the workload of ``bench.embedded`` (one execution at a time for the per-step gap,
then many at once for transitions/s) on a fresh runtime without instruments and on one with
``PrometheusInstruments`` (what ``serve`` and ``worker`` wire), alternating which goes first; each
side reports its median over the rounds. Two logs: SQLite (synchronous=full, the embedded
default) and the in-memory log, where no I/O hides the engine's CPU cost. The last "on" runtime
is scraped once, to show what a scrape of that registry costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

from prometheus_client import generate_latest

from bench.embedded import TimedNoop, run_workload
from connectors.base import Connectors
from orchestrator.observability.prometheus import PrometheusInstruments
from orchestrator.ports import ExecutionQuery
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings


@dataclass
class Side:
    step_p50_us: float
    transitions_per_s: float
    cpu_us_per_transition: float  # process CPU time of the whole run per transition: steadier than wall time


@dataclass
class Comparison:
    log: str
    concurrent: int
    rounds: int
    off: Side
    on: Side
    scrape_ms: float
    scrape_bytes: int

    @property
    def throughput_change(self) -> float:
        """Relative change of transitions/s with metrics on (negative: slower)."""
        return self.on.transitions_per_s / self.off.transitions_per_s - 1.0

    @property
    def step_change(self) -> float:
        return self.on.step_p50_us / self.off.step_p50_us - 1.0

    @property
    def cpu_change(self) -> float:
        return self.on.cpu_us_per_transition / self.off.cpu_us_per_transition - 1.0


async def one_run(url: str, metrics: PrometheusInstruments | None, sequential: int, concurrent: int) -> Side:
    noop = TimedNoop()
    settings = Settings(event_log_url=url, transport_url="inprocess://?concurrency=64")
    async with Runtime(settings, connectors=Connectors([noop]), instruments=metrics) as runtime:
        cpu = time.process_time()
        workload = await run_workload(runtime, noop, sequential, concurrent)
        cpu = time.process_time() - cpu
        one = (await runtime.list_executions(ExecutionQuery(limit=1))).items[0]
        per_execution = len(await runtime.history(one.execution_id))
    transitions = (sequential + concurrent) * per_execution
    return Side(statistics.median(workload.gaps_us), workload.transitions_per_s, cpu / transitions * 1e6)


async def compare(log: str, *, rounds: int, sequential: int, concurrent: int) -> Comparison:
    offs: list[Side] = []
    ons: list[Side] = []
    last: PrometheusInstruments | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(2 * rounds):
            metrics_on = (index % 2 == 0) == (index // 2 % 2 == 0)  # on, off, off, on, on, off, ...
            url = "memory://" if log == "memory" else f"sqlite:///{tmp}/run{index}.db?synchronous=full"
            metrics = PrometheusInstruments() if metrics_on else None
            side = await one_run(url, metrics, sequential, concurrent)
            (ons if metrics_on else offs).append(side)
            last = metrics or last
    assert last is not None
    began = time.perf_counter()
    text = generate_latest(last.registry)
    scrape_ms = (time.perf_counter() - began) * 1000

    def median(sides: list[Side]) -> Side:
        return Side(
            statistics.median(s.step_p50_us for s in sides),
            statistics.median(s.transitions_per_s for s in sides),
            statistics.median(s.cpu_us_per_transition for s in sides),
        )

    return Comparison(log, concurrent, rounds, median(offs), median(ons), scrape_ms, len(text))


def table(results: list[Comparison]) -> list[str]:
    lines = [
        "| log | figure | metrics off | metrics on | change |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.log} | transitions/s, {r.concurrent} concurrent | {r.off.transitions_per_s:,.0f}/s"
            f" | {r.on.transitions_per_s:,.0f}/s | {r.throughput_change:+.1%} |"
        )
        lines.append(
            f"| {r.log} | per-step overhead p50, unloaded | {r.off.step_p50_us:,.0f} µs"
            f" | {r.on.step_p50_us:,.0f} µs | {r.step_change:+.1%} |"
        )
        lines.append(
            f"| {r.log} | CPU per transition (whole run) | {r.off.cpu_us_per_transition:,.1f} µs"
            f" | {r.on.cpu_us_per_transition:,.1f} µs | {r.cpu_change:+.1%} |"
        )
    for r in results:
        lines.append(f"| {r.log} | one scrape after the run | | {r.scrape_ms:.1f} ms, {r.scrape_bytes:,} bytes | |")
    return lines


async def run(quick: bool, rounds: int) -> list[Comparison]:
    sizes = {"sqlite": (10, 100), "memory": (10, 200)} if quick else {"sqlite": (100, 2000), "memory": (100, 4000)}
    return [await compare(log, rounds=rounds, sequential=s, concurrent=c) for log, (s, c) in sizes.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_overhead", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, help="pairs of runs per log (default: 3, 1 with --quick)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.quick, args.rounds or (1 if args.quick else 3)))
    if args.json:
        changes = [{"throughput_change": r.throughput_change, "cpu_change": r.cpu_change} for r in results]
        print(json.dumps([{**asdict(r), **c} for r, c in zip(results, changes, strict=True)], indent=2))
    else:
        print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
