"""Overload: a server driven at 10x its capacity keeps flat memory, answers 429, and completes
every start it accepted.

    python -m bench.overload [--quick] [--seconds S] [--json]

The server is the real ``orchestrator serve`` in a child process (SQLite WAL ``synchronous=full``,
the in-process bus, ``ORCHESTRATOR_MAX_IN_FLIGHT=200``, authentication off) with a 3-step no-op
workflow. First its capacity, the raw limit of the same run: 32 connections start executions back
to back for a few seconds, and the 202s per second are the rate it sustains (the in-flight bound
keeps accepted and finished close). Then an open-loop client offers 10x that rate for 60 s (30 s
with ``--seconds 30``; 5 s with ``--quick``) over up to 256 connections, never waiting for an
answer before the next send is due. The child's resident memory (``VmRSS``) is sampled every
half second; the 202s and 429s are counted; at the end the bench waits until no execution runs
and checks that every accepted start succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.http_accept import start_child, stop_child
from schemas.builder import Workflow

MAX_IN_FLIGHT = 200
CAPACITY_CONNECTIONS = 32
OVERLOAD_CONNECTIONS = 256
FACTOR = 10
SAMPLE_SECONDS = 0.5


@dataclass
class OverloadResult:
    capacity_per_s: float  # the raw limit: accepted starts/s when saturated, same run
    offered_per_s: float
    seconds: float
    accepted_before: int = 0  # in the capacity phase (they must succeed too)
    sent: int = 0
    sent_per_s: float = 0.0  # below offered when every connection waited for an answer
    answered_seconds: float = 0.0  # until the last answer
    accepted: int = 0
    refused_429: int = 0
    other: int = 0
    completed: int = 0
    rss_mib: list[float] = field(default_factory=list)
    drain_seconds: float = 0.0

    @property
    def rss_start(self) -> float:
        return self.rss_mib[0] if self.rss_mib else 0.0

    @property
    def rss_peak(self) -> float:
        return max(self.rss_mib, default=0.0)

    @property
    def rss_end(self) -> float:
        return self.rss_mib[-1] if self.rss_mib else 0.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def definition(folder: Path) -> Path:
    workflow = Workflow("bench-overload")
    for index in range(3):
        workflow.task(f"s{index}", "noop")
    workflow.build()
    path = folder / "overload.yaml"
    path.write_text(yaml.safe_dump(workflow.to_dict()))
    return path


async def post(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(url, json={"workflow": "bench-overload", "input": {}}) as answer:
        await answer.read()
        return answer.status


async def capacity(session: aiohttp.ClientSession, url: str, seconds: float) -> tuple[float, int]:
    accepted = 0
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal accepted
        while time.perf_counter() < deadline:
            if await post(session, url) == 202:
                accepted += 1
            else:
                await asyncio.sleep(0.005)  # 429: the backlog is full, try again shortly

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(CAPACITY_CONNECTIONS)))
    return accepted / (time.perf_counter() - began), accepted


async def overload(session: aiohttp.ClientSession, url: str, result: OverloadResult, pid: int) -> None:
    gate = asyncio.Semaphore(OVERLOAD_CONNECTIONS)
    pending: set[asyncio.Task[None]] = set()

    async def one() -> None:
        try:
            status = await post(session, url)
        except aiohttp.ClientError:
            status = 0
        finally:
            gate.release()
        if status == 202:
            result.accepted += 1
        elif status == 429:
            result.refused_429 += 1
        else:
            result.other += 1

    async def sample() -> None:
        while True:
            result.rss_mib.append(rss_mib(pid))
            await asyncio.sleep(SAMPLE_SECONDS)

    sampler = asyncio.create_task(sample())
    interval = 1.0 / result.offered_per_s
    began = time.perf_counter()
    due = began
    while time.perf_counter() - began < result.seconds:
        await gate.acquire()  # at most OVERLOAD_CONNECTIONS requests open; the rest wait here
        task = asyncio.create_task(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
        result.sent += 1
        due += interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    result.sent_per_s = result.sent / (time.perf_counter() - began)  # sends were held by open requests
    await asyncio.gather(*pending)
    result.answered_seconds = time.perf_counter() - began
    drained = time.perf_counter()
    await drain(session, url)
    result.drain_seconds = time.perf_counter() - drained
    result.rss_mib.append(rss_mib(pid))
    sampler.cancel()
    result.completed = await count(session, url, "succeeded")


async def drain(session: aiohttp.ClientSession, url: str) -> None:
    """Until no execution runs (polled: the server offers no event for it)."""
    while await count(session, url, "running") > 0:  # noqa: ASYNC110
        await asyncio.sleep(0.2)


async def count(session: aiohttp.ClientSession, url: str, status: str) -> int:
    total, cursor = 0, None
    while True:
        params = {"status": status, "limit": "1000", **({"cursor": cursor} if cursor else {})}
        async with session.get(url, params=params) as answer:
            page: dict[str, Any] = await answer.json()
        total += len(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return total


async def run_overload(*, quick: bool = False, seconds: float | None = None) -> OverloadResult:
    length = seconds if seconds is not None else (5.0 if quick else 60.0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        command = [
            sys.executable, "-m", "orchestrator", "serve", "--port", "0",
            "--event-log", f"sqlite:///{folder}/overload.db?synchronous=full",
            "--transport", "inprocess://", "--definitions", str(definition(folder)),
        ]  # fmt: skip
        env = {"ORCHESTRATOR_AUTH": "off", "ORCHESTRATOR_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
               "ORCHESTRATOR_ACCESS_LOG": "false", "ORCHESTRATOR_DOCTOR_INTERVAL": "0"}  # fmt: skip
        server, base = await start_child(command, folder / "serve.log", env=env)
        try:
            url = f"{base}/api/v1/executions"
            connector = aiohttp.TCPConnector(limit=OVERLOAD_CONNECTIONS)
            async with aiohttp.ClientSession(connector=connector) as session:
                measured, before = await capacity(session, url, 2.0 if quick else 5.0)
                await drain(session, url)
                result = OverloadResult(measured, FACTOR * measured, length, accepted_before=before)
                await overload(session, url, result, server.pid)
        finally:
            stop_child(server)
    return result


def overload_table(r: OverloadResult) -> list[str]:
    return [
        f"### Overload: 10x capacity for {r.seconds:.0f} s (a serve child, MAX_IN_FLIGHT={MAX_IN_FLIGHT})",
        "",
        "| figure | measured | raw limit (same run) |",
        "|---|---|---|",
        f"| starts offered / sent | {r.offered_per_s:,.0f}/s / {r.sent_per_s:,.0f}/s ({r.sent:,} sent, "
        f"answered within {r.answered_seconds:.0f} s) | capacity {r.capacity_per_s:,.0f} accepted/s |",
        f"| answers | {r.accepted:,} x 202, {r.refused_429:,} x 429, {r.other:,} other | |",
        f"| server RSS start / peak / end | {r.rss_start:.0f} / {r.rss_peak:.0f} / {r.rss_end:.0f} MiB | |",
        f"| accepted starts that succeeded | {r.completed:,} of {r.accepted_before + r.accepted:,} "
        f"(drained in {r.drain_seconds:.1f} s) | |",
    ]


def as_dict(r: OverloadResult) -> dict[str, Any]:
    return {**asdict(r), "rss_start": r.rss_start, "rss_peak": r.rss_peak, "rss_end": r.rss_end}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overload", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 s of overload")
    parser.add_argument("--seconds", type=float, help="seconds of overload (default 60)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    result = asyncio.run(run_overload(quick=args.quick, seconds=args.seconds))
    print(json.dumps(as_dict(result), indent=2) if args.json else "\n".join(overload_table(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
