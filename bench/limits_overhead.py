"""What resource limits cost: transitions/s of the embedded 10-step workload with limits off and on.

    python -m bench.limits_overhead [--quick] [--rounds N] [--json]

"On" is a quotas file giving every tenant generous quotas of every kind (running executions,
starts per minute, payload size, events per execution, stored bytes) and a connector rate limit
on ``noop`` far above the rate reached; definition-level limits are merged into the definition
from ``DEFINITION_LIMITS``: a concurrency limit on one key far above the executions started, so
every start is admitted through recorded slot events and never waits. Rounds alternate which
side runs first (on, off, off, on, ...); each side reports its median. The "off" side is the raw
limit, measured in the same run; the target is on/off ≥ 0.9.
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
from pathlib import Path
from typing import Any

from bench.embedded import TimedNoop, ten_step_workflow
from connectors.base import Connectors
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.definition import MAX_SLOT_LIMIT, ConcurrencyLimit

GENEROUS = {
    "*": {
        "running": 1_000_000,
        "starts_per_minute": 100_000_000,
        "payload_bytes": 1_048_576,
        "events_per_execution": 100_000,
        "stored_bytes": 10**15,
    }
}
CONNECTOR_RATE = "noop=10000000"  # calls/s: far above what one process reaches
# Merged into the definition with limits on: every start takes (and every end releases) a slot.
DEFINITION_LIMITS: dict[str, Any] = {"concurrency": [ConcurrencyLimit(key="'all'", limit=MAX_SLOT_LIMIT)]}
TARGET = 0.9


@dataclass
class LimitsOverhead:
    log: str
    concurrent: int
    rounds: int
    off_transitions_per_s: float  # the raw limit, same run
    on_transitions_per_s: float

    @property
    def ratio(self) -> float:
        return self.on_transitions_per_s / self.off_transitions_per_s


async def one_run(url: str, tmp: Path, limits: bool, concurrent: int) -> float:
    noop = TimedNoop()
    more: dict[str, Any] = {}
    if limits:
        quotas = tmp / "quotas.json"
        quotas.write_text(json.dumps(GENEROUS))
        more = {"quotas_file": str(quotas), "connector_rate_limits": CONNECTOR_RATE}
    settings = Settings(auth=False, event_log_url=url, transport_url="inprocess://?concurrency=64", **more)
    async with Runtime(settings, connectors=Connectors([noop])) as runtime:
        definition = ten_step_workflow()
        if limits and DEFINITION_LIMITS:
            definition = definition.model_copy(update=DEFINITION_LIMITS)
        await runtime.register(definition)
        warm = await runtime.start_execution("bench-noop")
        await runtime.wait(warm.execution_id, timeout=60)
        began = time.perf_counter()
        starts = await asyncio.gather(*(runtime.start_execution("bench-noop") for _ in range(concurrent)))
        await asyncio.gather(*(runtime.wait(s.execution_id, timeout=600) for s in starts))
        elapsed = time.perf_counter() - began
        events = len(await runtime.history(starts[0].execution_id))
    return concurrent * events / elapsed


async def compare(log: str, *, rounds: int, concurrent: int) -> LimitsOverhead:
    offs: list[float] = []
    ons: list[float] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for index in range(2 * rounds):
            on = (index % 2 == 0) == (index // 2 % 2 == 0)  # on, off, off, on, on, off, ...
            url = "memory://" if log == "memory" else f"sqlite:///{tmp}/run{index}.db?synchronous=full"
            (ons if on else offs).append(await one_run(url, tmp, on, concurrent))
    return LimitsOverhead(log, concurrent, rounds, statistics.median(offs), statistics.median(ons))


async def run_limits_overhead(quick: bool, rounds: int | None = None) -> list[LimitsOverhead]:
    sizes = {"sqlite": 100, "memory": 200} if quick else {"sqlite": 2000, "memory": 4000}
    count = rounds or (1 if quick else 3)
    return [await compare(log, rounds=count, concurrent=c) for log, c in sizes.items()]


def limits_table(results: list[LimitsOverhead]) -> list[str]:
    lines = [
        "### Resource limits off and on (quotas of every kind, a connector rate limit; interleaved rounds)",
        "",
        "| log | figure | limits off (raw limit, same run) | limits on | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.log} | transitions/s, {r.concurrent} concurrent, median of {r.rounds} | "
            f"{r.off_transitions_per_s:,.0f}/s | {r.on_transitions_per_s:,.0f}/s | {r.ratio:.2f}x | ≥ {TARGET}x |"
        )
    return lines


def as_dict(results: list[LimitsOverhead]) -> list[dict[str, Any]]:
    return [{**asdict(r), "ratio": r.ratio} for r in results]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.limits_overhead", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, help="pairs of runs per log (default: 3, 1 with --quick)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    results = asyncio.run(run_limits_overhead(args.quick, args.rounds))
    print(json.dumps(as_dict(results), indent=2) if args.json else "\n".join(limits_table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
