"""Security on against off, in one run: authentication and encryption at rest together.

    python -m bench.secured [--quick] [--rounds N] [--json]

Two figures, each alternating off, on, off, on (``--rounds`` pairs) on fresh stores, the median
of each side reported beside the raw limit measured in the same run:

- **Embedded transitions/s through the API.** ``concurrent`` executions of ``bench.encryption``'s
  10-step no-op workflow (a ~300-byte input carried into every step) are started with
  ``POST /api/v1/executions`` on an in-process server, and timed until every one has finished.
  Off: ``ORCHESTRATOR_AUTH=off``, no keyring. On: each start authenticated with an API key
  (``Authorization: Bearer``: the key check, the route's permission) and every event sealed with
  AES-256-GCM. The audit record of each start is written on both sides. The raw limit is one
  SQLite commit per transition, measured in the same run.
- **Webhook durable accepts/s**: ``bench.http_accept``'s ``POST /hooks/park`` → 202 against an
  ``orchestrator serve`` child with ``ORCHESTRATOR_AUTH=off`` and no keyring, against one with
  authentication on (a key pepper set) and ``ORCHESTRATOR_ENCRYPTION_KEYS``. A webhook is
  authenticated by its own signature rule, not an API key, so on this path "auth on" costs the
  middleware's pass; the data it stores is sealed. The raw limit is the bare aiohttp server's
  ``POST`` → 202 from the same client, measured in the same run.
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

import aiohttp
from aiohttp.test_utils import TestServer

from bench.embedded import TimedNoop, raw_sqlite_commit_us
from bench.encryption import KEYS, PAYLOAD, workflow
from bench.http_accept import CONCURRENCY, drive, hook_definitions, start_child, stop_child
from connectors.base import Connectors
from orchestrator.auth.control import access_control
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

PEPPER = "bench-pepper"


@dataclass
class SecuredResult:
    rounds: int
    concurrent: int
    transitions_off_per_s: float
    transitions_on_per_s: float
    commit_us: float  # one SQLite commit (synchronous=full): the raw limit of a transition
    webhook_off_per_s: float
    webhook_on_per_s: float
    bare_per_s: float  # the bare aiohttp POST -> 202, same client

    @property
    def transitions_ratio(self) -> float:
        return self.transitions_on_per_s / self.transitions_off_per_s if self.transitions_off_per_s else 0.0

    @property
    def webhook_ratio(self) -> float:
        return self.webhook_on_per_s / self.webhook_off_per_s if self.webhook_off_per_s else 0.0


async def transitions_per_s(folder: Path, secured: bool, concurrent: int) -> float:
    settings = Settings(
        event_log_url=f"sqlite:///{folder}/secured-{time.monotonic_ns()}.db?synchronous=full",
        transport_url="inprocess://?concurrency=64",
        retention_interval=0,
        auth=secured,
        key_pepper=PEPPER if secured else None,
        encryption_keys=KEYS if secured else None,
    )
    async with Runtime(settings, connectors=Connectors([TimedNoop()])) as runtime:
        control = access_control(runtime.access, settings)
        headers = {}
        if secured:
            key = (await control.keys.create("bench", "default", {"default": ["operator"]})).key
            headers["Authorization"] = f"Bearer {key}"
        await runtime.register(workflow())
        server = TestServer(build_app(runtime, settings, control=control))
        await server.start_server()
        connector = aiohttp.TCPConnector(limit=64)
        try:
            async with aiohttp.ClientSession(str(server.make_url("/")), connector=connector, headers=headers) as http:

                async def start() -> str:
                    async with http.post("/api/v1/executions", json={"workflow": "bench-sealed", "input": PAYLOAD}) as r:
                        body = await r.json()
                        assert r.status in (200, 201, 202), body
                        return str(body["execution_id"])

                await runtime.wait(await start(), timeout=60)  # warm: data keys, key cache, plans
                began = time.perf_counter()
                ids = await asyncio.gather(*(start() for _ in range(concurrent)))
                await asyncio.gather(*(runtime.wait(i, timeout=600) for i in ids))
                elapsed = time.perf_counter() - began
        finally:
            await server.close()
        events = len(await runtime.history(ids[0]))
    return concurrent * events / elapsed


async def webhook_per_s(folder: Path, secured: bool, seconds: float, warmup: float) -> float:
    command = [
        sys.executable, "-m", "orchestrator", "serve", "--port", "0",
        "--event-log", f"sqlite:///{folder}/hooks-{time.monotonic_ns()}.db?synchronous=full",
        "--transport", "inprocess://", "--definitions", *map(str, hook_definitions(folder)),
    ]  # fmt: skip
    env = (
        {"ORCHESTRATOR_ENCRYPTION_KEYS": KEYS, "ORCHESTRATOR_KEY_PEPPER": PEPPER}
        if secured
        else {"ORCHESTRATOR_AUTH": "off"}
    )
    server, url = await start_child(command, folder / "serve.log", env=env)
    try:
        return (await drive(f"{url}/hooks/park", CONCURRENCY, seconds, warmup)).per_s
    finally:
        stop_child(server)


async def bare_per_s(folder: Path, seconds: float, warmup: float) -> float:
    server, url = await start_child([sys.executable, "-m", "bench.http_accept", "bare"], folder / "bare.log")
    try:
        return (await drive(f"{url}/hooks/x", CONCURRENCY, seconds, warmup)).per_s
    finally:
        stop_child(server)


async def run_secured(*, quick: bool = False, rounds: int | None = None) -> SecuredResult:
    rounds = rounds or (1 if quick else 3)
    concurrent = 100 if quick else 1000
    seconds, warmup = (1.5, 0.5) if quick else (8.0, 2.0)
    sides: dict[str, list[float]] = {"t_off": [], "t_on": [], "w_off": [], "w_on": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        commit = raw_sqlite_commit_us(folder / "commit.db", "full", 500 if quick else 2000)
        for _ in range(rounds):
            for side, secured in (("off", False), ("on", True)):
                sides[f"t_{side}"].append(await transitions_per_s(folder, secured, concurrent))
        for _ in range(rounds):
            for side, secured in (("off", False), ("on", True)):
                sides[f"w_{side}"].append(await webhook_per_s(folder, secured, seconds, warmup))
        bare = await bare_per_s(folder, seconds, warmup)
    return SecuredResult(
        rounds=rounds,
        concurrent=concurrent,
        transitions_off_per_s=statistics.median(sides["t_off"]),
        transitions_on_per_s=statistics.median(sides["t_on"]),
        commit_us=commit,
        webhook_off_per_s=statistics.median(sides["w_off"]),
        webhook_on_per_s=statistics.median(sides["w_on"]),
        bare_per_s=bare,
    )


def secured_rows(r: SecuredResult) -> list[str]:
    commit_rate = 1e6 / r.commit_us if r.commit_us else 0.0
    return [
        f"### Authentication and encryption at rest: both on against both off (same run, median of "
        f"{r.rounds} interleaved rounds)",
        "",
        "| figure | both off | auth + encryption on | ratio | raw limit (same run) | target |",
        "|---|---|---|---|---|---|",
        f"| transitions/s, embedded, {r.concurrent} executions started over the API (SQLite synchronous=full) | "
        f"{r.transitions_off_per_s:,.0f} | {r.transitions_on_per_s:,.0f} | {r.transitions_ratio:.2f}x | "
        f"1 commit per transition: {commit_rate:,.0f}/s | ≥ 0.85x |",
        f"| webhook durable accept, `POST /hooks/park` → 202 | {r.webhook_off_per_s:,.0f}/s | "
        f"{r.webhook_on_per_s:,.0f}/s | {r.webhook_ratio:.2f}x | bare aiohttp POST → 202: {r.bare_per_s:,.0f}/s "
        f"| ≥ 0.85x |",
    ]


def as_dict(r: SecuredResult) -> dict[str, object]:
    return {**asdict(r), "transitions_ratio": r.transitions_ratio, "webhook_ratio": r.webhook_ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run_secured(quick=args.quick, rounds=args.rounds))
    print(json.dumps(as_dict(result), indent=2) if args.json else "\n".join(secured_rows(result)))


if __name__ == "__main__":
    main()
