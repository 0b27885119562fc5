"""Memory per parked execution, embedded mode (SQLite synchronous=full + in-process bus).

    python -m bench.parked_memory [--quick] [--budget SECONDS] [--json]

Executions of a workflow whose only step waits for an event that is never delivered
(``wait_for_event`` with a correlation key per execution, like an approval per request), started
in batches of ``BATCH`` through ``Runtime.start_execution`` with the default settings (engine
cache of 10,000 states, ``memory://`` wait index and timers beside SQLite). Everything runs in a
fresh child process, so nothing else the benchmark did is in its heap.

- RSS (``VmRSS`` of ``/proc/self/status``, after ``gc.collect()``) minus the RSS after a warm-up
  (runtime started, 200 executions parked), divided by the executions parked since, at each
  checkpoint; the last checkpoints grow toward 1,000,000 until ``--budget`` seconds of parking
  are spent or less than 2 GiB of memory would be left;
- what dominates: a second child parks ``TRACE_COUNT`` executions under ``tracemalloc`` and
  lists the allocation sites holding the most, per parked execution (tracemalloc counts Python
  allocations only, so its total is below the RSS delta).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BATCH = 500
WARM = 200


@dataclass
class Checkpoint:
    parked: int
    rss_mib: float
    bytes_per_parked: float  # RSS delta over the warm-up / executions parked since
    seconds: float  # time spent parking so far
    engine_cached_states: int
    db_mib: float  # the SQLite file and its WAL (the event log keeps a 64 MiB page cache of it)
    marginal_bytes_per_parked: float = 0.0  # RSS growth since the previous checkpoint / executions since


@dataclass
class Site:
    where: str
    bytes_per_parked: float


@dataclass
class ParkedMemoryResult:
    checkpoints: list[Checkpoint]
    stopped_because: str
    trace_count: int
    traced_bytes_per_parked: float
    top_sites: list[Site] = field(default_factory=list)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def files_mib(folder: Path, pattern: str) -> float:
    return sum(p.stat().st_size for p in folder.glob(pattern)) / 2**20


def available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


# -- the child -------------------------------------------------------------------------------------

TRACE_DEPTH = 1  # deeper traces slow parking down 10-30x


def attribute(traceback: tracemalloc.Traceback) -> str:
    """The innermost frame in the project's code (the allocation in the library it called
    appears as ``via``), else the innermost frame."""
    frames = list(traceback)  # oldest first
    inner = frames[-1]
    for frame in reversed(frames):
        if frame.filename.startswith(str(REPO)):
            where = f"{os.path.relpath(frame.filename, REPO)}:{frame.lineno}"
            if where.startswith("bench/"):
                where = "the execution's input dict (made by the bench)"
            if frame is not inner:
                where += f" (via {Path(inner.filename).name}:{inner.lineno})"
            return where
    return f"{Path(inner.filename).name}:{inner.lineno}"


async def park(levels: list[int], budget: float, folder: Path, trace: bool) -> None:
    from connectors.base import Connectors
    from connectors.noop import NoopConnector
    from orchestrator.runtime import Runtime
    from orchestrator.settings import Settings
    from schemas.builder import Workflow

    def emit(**fields: object) -> None:
        print(json.dumps(fields), flush=True)

    workflow = Workflow("bench-parked")
    workflow.wait_for_event("wait", "never-sent", correlation_key="input.k")
    settings = Settings(
        event_log_url=f"sqlite:///{folder}/parked.db?synchronous=full",
        transport_url="inprocess://",
        retention_interval=0,
    )
    async with Runtime(settings, connectors=Connectors([NoopConnector()])) as runtime:
        await runtime.register(workflow.build())
        count = 0

        async def start_many(n: int) -> None:
            nonlocal count
            first = count
            count += n
            await asyncio.gather(
                *(runtime.start_execution("bench-parked", {"k": f"request-{first + i}"}) for i in range(n))
            )

        await start_many(WARM)
        gc.collect()
        if trace:
            tracemalloc.start(TRACE_DEPTH)
        base = rss_bytes()
        emit(base_rss_mib=base / 2**20)
        base_trace = tracemalloc.take_snapshot() if trace else None
        began = time.perf_counter()
        for level in levels:
            while count - WARM < level:
                if time.perf_counter() - began > budget:
                    emit(stopped=f"time budget of {budget:.0f} s spent")
                    return
                if available_bytes() < 2 * 2**30:
                    emit(stopped="less than 2 GiB of memory left")
                    return
                await start_many(min(BATCH, level - (count - WARM)))
            gc.collect()
            parked = count - WARM
            rss = rss_bytes()
            emit(
                parked=parked,
                rss_mib=rss / 2**20,
                bytes_per_parked=(rss - base) / parked,
                seconds=time.perf_counter() - began,
                engine_cached_states=len(runtime.engine._cache),
                db_mib=files_mib(folder, "parked.db*"),
            )
        if base_trace is not None:
            snapshot = tracemalloc.take_snapshot()
            parked = count - WARM
            sites: dict[str, int] = {}
            total = 0
            for stat in snapshot.compare_to(base_trace, "traceback"):
                total += stat.size_diff
                where = attribute(stat.traceback)
                sites[where] = sites.get(where, 0) + stat.size_diff
            emit(traced_bytes_per_parked=total / parked)
            for where, size in sorted(sites.items(), key=lambda item: -item[1])[:8]:
                emit(site=where, bytes_per_parked=size / parked)
        emit(stopped="all levels reached")


# -- the parent ------------------------------------------------------------------------------------


def child(levels: list[int], budget: float, trace: bool) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "bench.parked_memory",
            "child",
            tmp,
            str(budget),
            ",".join(map(str, levels)),
        ]
        if trace:
            command.append("trace")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
        env["PYTHONPATH"] = str(REPO)
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, timeout=budget + 600, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"parked-memory child failed: {done.stderr.decode()[-3000:]}")
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line.startswith("{")]


async def run_parked_memory(*, quick: bool = False, budget: float | None = None) -> ParkedMemoryResult:
    if quick:
        levels, trace_count, budget = [1_000, 5_000], 2_000, budget or 30.0
    else:
        levels, trace_count = [10_000, 100_000, 250_000, 500_000, 1_000_000], 20_000
        budget = budget or 600.0
    lines = await asyncio.to_thread(child, levels, budget, False)
    checkpoints = [Checkpoint(**line) for line in lines if "parked" in line]
    previous_parked, previous_rss = (
        0,
        next(float(line["base_rss_mib"]) for line in lines if "base_rss_mib" in line),
    )
    for c in checkpoints:
        c.marginal_bytes_per_parked = (c.rss_mib - previous_rss) * 2**20 / (c.parked - previous_parked)
        previous_parked, previous_rss = c.parked, c.rss_mib
    stopped = next(str(line["stopped"]) for line in lines if "stopped" in line)
    traced = await asyncio.to_thread(child, [trace_count], max(budget, 120.0), True)
    per = next(
        (float(line["traced_bytes_per_parked"]) for line in traced if "traced_bytes_per_parked" in line), 0.0
    )
    sites = [Site(str(line["site"]), float(line["bytes_per_parked"])) for line in traced if "site" in line]
    return ParkedMemoryResult(checkpoints, stopped, trace_count, per, sites)


def parked_rows(r: ParkedMemoryResult) -> list[str]:
    rows = []
    for c in r.checkpoints:
        rows.append(
            f"| memory per parked execution (`wait_for_event`, never delivered), {c.parked:,} parked "
            f"(RSS {c.rss_mib:,.0f} MiB; {c.engine_cached_states:,} states in the engine cache; SQLite file "
            f"{c.db_mib:,.0f} MiB; parked at {c.parked / c.seconds:,.0f}/s) | {c.bytes_per_parked / 1024:.2f} KiB "
            f"(since the previous row: {c.marginal_bytes_per_parked / 1024:.2f} KiB each) | | | ≤ 5 KB |"
        )
    sites = "; ".join(f"`{s.where}` {s.bytes_per_parked:,.0f} B" for s in r.top_sites[:5])
    rows.append(
        f"| where it goes (tracemalloc, {r.trace_count:,} parked): {r.traced_bytes_per_parked:,.0f} B of Python "
        f"objects per parked execution; top sites: {sites} | | | | |"
    )
    if r.stopped_because != "all levels reached":
        rows.append(f"| (parking stopped: {r.stopped_because}) | | | | |")
    return rows


def as_dict(r: ParkedMemoryResult) -> dict[str, object]:
    return asdict(r)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        folder, budget, levels = (
            Path(sys.argv[2]),
            float(sys.argv[3]),
            [int(n) for n in sys.argv[4].split(",")],
        )
        asyncio.run(park(levels, budget, folder, trace=len(sys.argv) > 5))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget", type=float, help="seconds of parking (default: 30 quick, 600 full)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run_parked_memory(quick=args.quick, budget=args.budget))
    print(json.dumps(as_dict(result), indent=2) if args.json else "\n".join(parked_rows(result)))


if __name__ == "__main__":
    main()
