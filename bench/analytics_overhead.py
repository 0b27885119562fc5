"""What the analytics projection costs the engine: the embedded 10-step workload with it off and on.

    python -m bench.analytics_overhead [--rounds 3] [--concurrent 200] [--json]

Each round runs the workload of ``bench.embedded`` (executions started at once, each through ten
no-op steps) on a fresh SQLite runtime with ``ORCHESTRATOR_ANALYTICS`` off and on, alternating
which goes first. Transitions/s is over the workload's wall time; CPU per transition is the
process's CPU time (every thread) until the projection has also caught up with the last commit,
so work the projection defers is counted too.
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

from bench.embedded import TimedNoop, run_workload
from connectors.base import Connectors
from orchestrator.analytics.projection import NAME
from orchestrator.ports import ExecutionQuery, FeedSource
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings


@dataclass
class Side:
    transitions_per_s: float
    cpu_us_per_transition: float


async def one_run(url: str, analytics: bool, concurrent: int) -> Side:
    noop = TimedNoop()
    settings = Settings(event_log_url=url, transport_url="inprocess://?concurrency=64", analytics=analytics, auth=False)
    async with Runtime(settings, connectors=Connectors([noop])) as runtime:
        cpu = time.process_time()
        workload = await run_workload(runtime, noop, 0, concurrent)
        if analytics:
            assert isinstance(runtime.log, FeedSource)
            head = await runtime.log.feed().head()
            while runtime.projections.positions.get(NAME, 0) < head:  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.01)
        cpu = time.process_time() - cpu
        one = (await runtime.list_executions(ExecutionQuery(limit=1))).items[0]
        per_execution = len(await runtime.history(one.execution_id))
    return Side(workload.transitions_per_s, cpu / (concurrent * per_execution) * 1e6)


async def compare(rounds: int, concurrent: int) -> dict[str, Side]:
    sides: dict[bool, list[Side]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(2 * rounds):
            on = (index % 2 == 0) == (index // 2 % 2 == 0)  # on, off, off, on, ...
            url = f"sqlite:///{tmp}/run{index}.db?synchronous=full"
            sides[on].append(await one_run(url, on, concurrent))

    def median(runs: list[Side]) -> Side:
        return Side(
            statistics.median(s.transitions_per_s for s in runs), statistics.median(s.cpu_us_per_transition for s in runs)
        )

    return {"off": median(sides[False]), "on": median(sides[True])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(compare(args.rounds, args.concurrent))
    if args.json:
        json.dump({k: asdict(v) for k, v in result.items()}, sys.stdout, indent=2)
        return
    off, on = result["off"], result["on"]
    print("| analytics | transitions/s | CPU per transition (until the projection caught up) |")
    print("|---|---|---|")
    for name, side in (("off", off), ("on", on)):
        print(f"| {name} | {side.transitions_per_s:,.0f}/s | {side.cpu_us_per_transition:.1f} µs |")
    change = on.transitions_per_s / off.transitions_per_s - 1
    print(f"| change | {change:+.1%} | {on.cpu_us_per_transition - off.cpu_us_per_transition:+.1f} µs |")


if __name__ == "__main__":
    main()
