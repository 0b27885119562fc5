"""Fair scheduling across tenants: a quiet tenant's step latency while another floods the process.

    python -m bench.fairness [--quick] [--json] [--kafka]

One process (in-memory log, in-process bus, 4 workers), one-step workflows whose step takes 5 ms
(an ``asyncio.sleep``, so the workers, not the CPU, are the bottleneck: 800 steps/s at most).
The noisy tenant first starts 100 times as many executions as the quiet one will: a backlog of
seconds of work for the workers. While it drains, the quiet tenant starts one execution every
20 ms. Latency = from the quiet start call returning to its step starting. Reported: the quiet tenant's p50/p99 alone, under the flood with the fair queue,
and under the flood with one FIFO (``?fair=false``) for contrast. Target: step latency p99
under the flood within 2x of p99 alone. The queue wait alone is reported too: no scheduler that
lets a running step finish can keep that within 2x of an idle pool, since a quiet task waits for
the next worker to free up, up to one step's duration.

``--kafka`` measures the same on a Kafka worker instead (``bench.fairness_kafka``; needs Kafka).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from connectors.base import Connectors, StepCall
from orchestrator.backends.inprocess import InProcessTransport
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow

STEP_SECONDS = 0.005
QUIET_INTERVAL = 0.02
FLOOD = 100  # noisy starts per quiet start


class Stamping:
    """Sleeps ``STEP_SECONDS``; records when each quiet step started against its start time."""

    name = "stamp"

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.done = asyncio.Event()  # set when every quiet step has finished
        self.latencies: list[float] = []  # start call returned -> step started (queue wait)
        self.finished: list[float] = []  # start call returned -> step done (step latency)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def invoke(self, call: StepCall) -> Any:
        t0 = float(call.args["t0"])
        if call.tenant == "quiet":
            self.latencies.append(time.perf_counter() - t0)
        await asyncio.sleep(STEP_SECONDS)
        if call.tenant == "quiet":
            self.finished.append(time.perf_counter() - t0)
            if len(self.finished) >= self.expected:
                self.done.set()
        return None


@dataclass(frozen=True)
class FairnessResult:
    quiet_alone_p50_ms: float
    quiet_alone_p99_ms: float
    quiet_flooded_fair_p50_ms: float
    quiet_flooded_fair_p99_ms: float
    quiet_flooded_fifo_p50_ms: float
    quiet_flooded_fifo_p99_ms: float
    wait_alone_p99_ms: float  # the queue wait part: start call returned -> step started
    wait_flooded_fair_p99_ms: float
    wait_flooded_fifo_p99_ms: float
    noisy_starts: int
    quiet_starts: int

    @property
    def fair_ratio(self) -> float:
        return self.quiet_flooded_fair_p99_ms / self.quiet_alone_p99_ms


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def measure(quiet: int, flood: bool, fair: bool) -> tuple[list[float], list[float], int]:
    stamp = Stamping(quiet)
    settings = Settings(event_log_url="memory://", transport_url=f"inprocess://?concurrency=4&fair={str(fair).lower()}")
    flow = Workflow("one").task("s", "stamp", input={"t0": "input.t0"}).build()
    noisy = 0
    async with Runtime(settings, connectors=Connectors([stamp])) as runtime:
        await runtime.register(flow)
        if flood:
            noisy = FLOOD * quiet
            for _ in range(0, noisy, 500):  # the backlog, queued before the quiet tenant starts
                await asyncio.gather(*(runtime.start_execution("one", {"t0": 0}, tenant="noisy") for _ in range(500)))
        backlog = runtime.transport.backlog if isinstance(runtime.transport, InProcessTransport) else 0
        for _ in range(quiet):
            await runtime.start_execution("one", {"t0": time.perf_counter()}, tenant="quiet")
            await asyncio.sleep(QUIET_INTERVAL)
        if flood and backlog and runtime.transport.backlog == 0:  # type: ignore[attr-defined]
            raise RuntimeError("the noisy backlog drained before the quiet tenant finished: no overload measured")
        await asyncio.wait_for(stamp.done.wait(), 120)
    return [s * 1000 for s in stamp.latencies], [s * 1000 for s in stamp.finished], noisy


async def run_fairness(quick: bool = False) -> FairnessResult:
    quiet = 30 if quick else 100
    alone_wait, alone, _ = await measure(quiet, flood=False, fair=True)
    fair_wait, fair, noisy = await measure(quiet, flood=True, fair=True)
    fifo_wait, fifo, _ = await measure(quiet, flood=True, fair=False)
    return FairnessResult(
        quiet_alone_p50_ms=statistics.median(alone),
        quiet_alone_p99_ms=p99(alone),
        quiet_flooded_fair_p50_ms=statistics.median(fair),
        quiet_flooded_fair_p99_ms=p99(fair),
        quiet_flooded_fifo_p50_ms=statistics.median(fifo),
        quiet_flooded_fifo_p99_ms=p99(fifo),
        wait_alone_p99_ms=p99(alone_wait),
        wait_flooded_fair_p99_ms=p99(fair_wait),
        wait_flooded_fifo_p99_ms=p99(fifo_wait),
        noisy_starts=noisy,
        quiet_starts=quiet,
    )


def fairness_table(r: FairnessResult) -> list[str]:
    fifo_ratio = r.quiet_flooded_fifo_p99_ms / r.quiet_alone_p99_ms
    return [
        "### Fair scheduling across tenants (in-process bus, 4 workers, 5 ms steps)",
        "",
        f"A noisy tenant queues {r.noisy_starts:,} executions ({FLOOD}x), seconds of work for the "
        f"workers; while they drain, a quiet tenant starts {r.quiet_starts}, 20 ms apart. Step latency: "
        "from the start call returning to the step done.",
        "",
        "| quiet tenant's step latency | p50 | p99 | p99 / alone | queue wait p99 | target |",
        "|---|---|---|---|---|---|",
        f"| alone (the raw limit, same run) | {r.quiet_alone_p50_ms:.1f} ms | {r.quiet_alone_p99_ms:.1f} ms | 1.00x "
        f"| {r.wait_alone_p99_ms:.1f} ms | |",
        f"| flooded, weighted fair queue | {r.quiet_flooded_fair_p50_ms:.1f} ms | {r.quiet_flooded_fair_p99_ms:.1f} ms "
        f"| {r.fair_ratio:.2f}x | {r.wait_flooded_fair_p99_ms:.1f} ms | ≤ 2x |",
        f"| flooded, one FIFO (`?fair=false`) | {r.quiet_flooded_fifo_p50_ms:,.0f} ms | "
        f"{r.quiet_flooded_fifo_p99_ms:,.0f} ms | {fifo_ratio:,.0f}x | {r.wait_flooded_fifo_p99_ms:,.0f} ms | |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--kafka", action="store_true", help="a Kafka worker instead of the in-process bus")
    args = parser.parse_args()
    if args.kafka:
        from bench.fairness_kafka import kafka_fairness_table, run_kafka_fairness

        kafka = asyncio.run(run_kafka_fairness(args.quick))
        print(json.dumps(asdict(kafka)) if args.json else "\n".join(kafka_fairness_table(kafka)))
        return
    result = asyncio.run(run_fairness(args.quick))
    print(json.dumps(asdict(result)) if args.json else "\n".join(fairness_table(result)))


if __name__ == "__main__":
    main()
