"""Webhook durable-accept rate beside the bare aiohttp POST-to-202 rate, same client, same run.

    python -m bench.http_accept [--quick] [--json]

Both servers run in a child process each (one at a time); the client runs in this process: one
``aiohttp.ClientSession`` with ``CONCURRENCY`` keep-alive connections, each driven by its own
coroutine that POSTs the same ~150-byte JSON body back to back. So the two figures differ only in
what answers:

- **bare**: ``python -m bench.http_accept bare``: an ``aiohttp.web`` app whose one handler reads
  the body and answers 202 with a small JSON body (no logging configured, as a minimal app has);
- **webhook**: the real ``orchestrator serve`` command (``run_server``: ``build_app`` over a
  ``Runtime``, INFO logging with aiohttp's access log, as shipped) on SQLite WAL
  ``synchronous=full`` and the in-process bus. ``POST /hooks/park`` starts a workflow whose first
  step waits for an event that never comes, so the figure is the accept path alone (validate,
  append the start durably, answer 202); ``POST /hooks/run`` starts a one-step no-op workflow,
  so the server also runs what it accepted.

Every answer is checked: a webhook figure counts only 202s (any other status fails the run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import yaml

from schemas.builder import Workflow

CONCURRENCY = 64
BODY = json.dumps(
    {"ref": "refs/heads/main", "repository": {"full_name": "acme/widgets"}, "pusher": {"name": "ada"}, "n": 0}
).encode()
REPO = Path(__file__).resolve().parent.parent


@dataclass
class HttpAcceptResult:
    concurrency: int
    seconds: float  # measured window per figure (after a warm-up)
    bare_per_s: float  # raw limit: bare aiohttp POST -> 202
    bare_p50_ms: float
    webhook_park_per_s: float  # POST /hooks/park -> 202, start durable, workflow parks
    webhook_park_p50_ms: float
    webhook_park_p99_ms: float
    webhook_run_per_s: float  # POST /hooks/run -> 202, and the server runs a 1-step no-op workflow
    placement: str = "server in a child process, aiohttp client in the bench process"

    @property
    def park_ratio(self) -> float:
        return self.webhook_park_per_s / self.bare_per_s

    @property
    def run_ratio(self) -> float:
        return self.webhook_run_per_s / self.bare_per_s


# -- the bare server (child process) ---------------------------------------------------------------


async def serve_bare() -> None:
    from aiohttp import web

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"accepted": True}, status=202)

    app = web.Application()
    app.router.add_post("/hooks/{name}", accept)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"serving on http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


# -- the client ------------------------------------------------------------------------------------


@dataclass
class Drive:
    per_s: float
    p50_ms: float
    p99_ms: float


async def drive(url: str, concurrency: int, seconds: float, warmup: float, expect: int = 202) -> Drive:
    """POST ``BODY`` from ``concurrency`` connections for ``warmup + seconds``; count the last ``seconds``."""
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    bad: dict[int, int] = {}
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        measure_from = began + warmup
        deadline = measure_from + seconds
        counted = [0]

        async def one_connection() -> None:
            while True:
                sent = time.perf_counter()
                if sent >= deadline:
                    return
                async with session.post(url, data=BODY, headers=headers) as response:
                    await response.read()
                    status = response.status
                done = time.perf_counter()
                if status != expect:
                    bad[status] = bad.get(status, 0) + 1
                if sent >= measure_from and done <= deadline:
                    counted[0] += 1
                    latencies.append(done - sent)

        await asyncio.gather(*(one_connection() for _ in range(concurrency)))
    if bad:
        raise RuntimeError(f"{url}: unexpected statuses {bad}")
    latencies.sort()
    return Drive(
        per_s=counted[0] / seconds,
        p50_ms=latencies[len(latencies) // 2] * 1000 if latencies else 0.0,
        p99_ms=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000 if latencies else 0.0,
    )


# -- child processes -------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def popen(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A child with this repository on its path and no ORCHESTRATOR_ variables but ``env``'s."""
    environment = {**child_env(), **(env or {})}
    return subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=log.open("wb"))


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def start_child(
    command: list[str], log: Path, timeout: float = 60, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server child; its base URL from its ``serving on URL`` line."""
    process = popen(command, log, env)
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), timeout)
    text = line.decode().strip()
    if not text.startswith("serving on "):
        process.kill()
        raise RuntimeError(f"{command}: no 'serving on' line ({text!r}); log: {tail(log)}")
    return process, text.removeprefix("serving on ")


def stop_child(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


def hook_definitions(folder: Path) -> list[Path]:
    park = Workflow("bench-hook-park").webhook("park")
    park.wait_for_event("wait", "never-sent", correlation_key="input.n")
    run = Workflow("bench-hook-run").webhook("run")
    run.task("s0", "noop")
    paths = []
    for workflow in (park, run):
        workflow.build()  # validate
        path = folder / f"{workflow.to_dict()['name']}.yaml"
        path.write_text(yaml.safe_dump(workflow.to_dict()))
        paths.append(path)
    return paths


async def run_http_accept(
    *, quick: bool = False, concurrency: int = CONCURRENCY, workdir: Path | None = None
) -> HttpAcceptResult:
    seconds, warmup = (1.5, 0.5) if quick else (10.0, 2.0)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = Path(tmp)
        bare, url = await start_child(
            [sys.executable, "-m", "bench.http_accept", "bare"], folder / "bare.log"
        )
        try:
            raw = await drive(f"{url}/hooks/x", concurrency, seconds, warmup)
        finally:
            stop_child(bare)
        definitions = hook_definitions(folder)
        command = [
            sys.executable,
            "-m",
            "orchestrator",
            "serve",
            "--port",
            "0",
            "--event-log",
            f"sqlite:///{folder}/hooks.db?synchronous=full",
            "--transport",
            "inprocess://",
            "--definitions",
            *map(str, definitions),
        ]
        server, url = await start_child(command, folder / "serve.log")
        try:
            park = await drive(f"{url}/hooks/park", concurrency, seconds, warmup)
            run = await drive(f"{url}/hooks/run", concurrency, seconds, warmup)
        finally:
            stop_child(server)
    return HttpAcceptResult(
        concurrency=concurrency,
        seconds=seconds,
        bare_per_s=raw.per_s,
        bare_p50_ms=raw.p50_ms,
        webhook_park_per_s=park.per_s,
        webhook_park_p50_ms=park.p50_ms,
        webhook_park_p99_ms=park.p99_ms,
        webhook_run_per_s=run.per_s,
    )


def http_rows(r: HttpAcceptResult) -> list[str]:
    """Rows for the orchestrator-figures table."""
    return [
        f"| webhook durable accept, `POST /hooks/{{name}}` → 202 (`orchestrator serve`, SQLite "
        f"synchronous=full; the workflow parks), {r.concurrency} connections | {r.webhook_park_per_s:,.0f}/s "
        f"(p50 {r.webhook_park_p50_ms:.1f} ms, p99 {r.webhook_park_p99_ms:.1f} ms) | bare aiohttp POST → 202 "
        f"{r.bare_per_s:,.0f}/s (p50 {r.bare_p50_ms:.1f} ms), same client | {r.park_ratio:.2f}x | ≥ 0.5x |",
        f"| webhook accept while running what it accepted (1-step no-op workflow) | "
        f"{r.webhook_run_per_s:,.0f}/s | bare aiohttp {r.bare_per_s:,.0f}/s | {r.run_ratio:.2f}x | |",
    ]


def as_dict(r: HttpAcceptResult) -> dict[str, object]:
    return {**asdict(r), "park_ratio": r.park_ratio, "run_ratio": r.run_ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=["bare"], help="(internal) run the bare server")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.mode == "bare":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_bare())
        return
    result = asyncio.run(run_http_accept(quick=args.quick))
    print(json.dumps(as_dict(result), indent=2) if args.json else "\n".join(http_rows(result)))


if __name__ == "__main__":
    main()
