"""The console's page loads in headless Chromium, beside the raw limits measured in the same run.

    python -m bench.console_load [--quick] [--rounds N] [--json]

A SQLite event log is seeded in this process (10,000 one-step executions and one execution of
100,004 events; ``--quick``: 1,000 and 10,004), then the real ``orchestrator serve`` command
serves it in a child process with authentication off (the figures are the page, not a sign-in).
Each round opens a fresh browser context (a cold cache) and times, from the navigation's start:

- **executions page**: ``/console/executions`` until its first row is visible (target: under 1 s
  with 10,000 executions recorded);
- **long history**: ``/console/executions/{id}`` of the 100,004-event execution until its first
  history row is visible (target: under 2 s);

and beside them, in the same browser and run, the raw limits those pages cannot beat:

- **navigation floor**: loading a static file of the console (the browser's own cost);
- **API calls**: the calls each page waits on, made with ``fetch`` from an open page, one after the
  other as the page makes them (the server's cost).

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright.
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

from playwright.async_api import Browser, async_playwright

from bench.http_accept import start_child, stop_child
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.validation import parse_definition

CHROMIUM = "/usr/bin/chromium"
ONE_STEP = {"name": "bench_console", "steps": [{"name": "s", "type": "task", "connector": "noop"}]}


def long_definition(iterations: int) -> dict[str, object]:
    """A loop of a no-op task and a choice: three events per iteration."""
    return {
        "name": "bench_console_long",
        "steps": [
            {"name": "inc", "type": "task", "connector": "noop", "input": {"n": "sum([steps.inc.n || `0`, `1`])"}, "next": "again"},
            {"name": "again", "type": "choice", "default": "done", "choices": [{"when": f"steps.inc.n < `{iterations}`", "next": "inc"}]},
            {"name": "done", "type": "succeed"},
        ],
    }  # fmt: skip


@dataclass
class ConsoleLoadResult:
    executions: int
    history_events: int
    rounds: int
    seed_seconds: float
    executions_page_ms: float  # median
    executions_page_max_ms: float
    history_page_ms: float
    history_page_max_ms: float
    navigation_floor_ms: float  # raw limit: a static file of the console
    executions_api_ms: float  # raw limit: the calls the executions page waits on
    history_api_ms: float  # raw limit: the calls the execution page waits on


async def seed(url: str, executions: int, iterations: int) -> tuple[str, int]:
    """Record the executions and the long one; the long one's id and length."""
    async with Runtime(Settings(event_log_url=url, retention_interval=0, auth=False)) as runtime:
        await runtime.register(parse_definition(ONE_STEP))
        await runtime.register(parse_definition(long_definition(iterations)))
        long = await runtime.start_execution("bench_console_long", {})
        for first in range(0, executions, 500):
            started = [await runtime.start_execution("bench_console", {"n": n}) for n in range(first, min(first + 500, executions))]
            for result in started:
                await runtime.wait(result.execution_id, timeout=120)
        await runtime.wait(long.execution_id, timeout=1800)
        summary = await runtime.log.summary(long.execution_id)
        assert summary is not None and summary.status == "succeeded", summary
        return long.execution_id, summary.last_sequence


async def time_page(browser: Browser, url: str, ready: str) -> float:
    """Milliseconds from a fresh context's navigation to ``ready`` (a selector) being visible."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        began = time.perf_counter()
        await page.goto(url)
        await page.locator(ready).first.wait_for(state="visible", timeout=60_000)
        return (time.perf_counter() - began) * 1000
    finally:
        await context.close()


async def time_fetches(browser: Browser, base: str, paths: list[str]) -> float:
    """Milliseconds for the browser to fetch ``paths`` one after the other (JSON parsed)."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(base + "/console/assets/style.css")
        return float(
            await page.evaluate(
                """async (paths) => {
                    const began = performance.now()
                    for (const path of paths) await (await fetch(path)).json()
                    return performance.now() - began
                }""",
                paths,
            )
        )
    finally:
        await context.close()


async def run_console_load(*, quick: bool = False, rounds: int = 5) -> ConsoleLoadResult:
    executions, iterations = (1_000, 3_334) if quick else (10_000, 33_334)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder}/console.db"
        began = time.perf_counter()
        long_id, events = await seed(url, executions, iterations)
        seeded = time.perf_counter() - began
        command = [sys.executable, "-m", "orchestrator", "serve", "--port", "0", "--event-log", url]
        server, base = await start_child(command, folder / "serve.log", env={"ORCHESTRATOR_AUTH": "false"})
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    await time_page(browser, base + "/console/executions", "tr[data-id]")  # warm the server
                    listing, history, floor, list_api, history_api = [], [], [], [], []
                    path = f"/api/v1/executions/{long_id}"
                    for _ in range(rounds):
                        listing.append(await time_page(browser, base + "/console/executions", "tr[data-id]"))
                        history.append(
                            await time_page(browser, f"{base}/console/executions/{long_id}", "[data-sequence='1'] button")
                        )
                        floor.append(await time_page(browser, base + "/console/assets/style.css", "body"))
                        list_api.append(await time_fetches(browser, base, ["/api/v1/me", "/api/v1/executions?limit=25"]))
                        history_api.append(
                            await time_fetches(
                                browser,
                                base,
                                ["/api/v1/me", path, "/api/v1/definitions/bench_console_long?version=1",
                                 f"{path}/timeline?limit=1000", f"{path}/history?after=0&limit=200"],
                            )
                        )  # fmt: skip
                finally:
                    await browser.close()
        finally:
            stop_child(server)
    return ConsoleLoadResult(
        executions=executions,
        history_events=events,
        rounds=rounds,
        seed_seconds=round(seeded, 1),
        executions_page_ms=round(statistics.median(listing), 1),
        executions_page_max_ms=round(max(listing), 1),
        history_page_ms=round(statistics.median(history), 1),
        history_page_max_ms=round(max(history), 1),
        navigation_floor_ms=round(statistics.median(floor), 1),
        executions_api_ms=round(statistics.median(list_api), 1),
        history_api_ms=round(statistics.median(history_api), 1),
    )


def rows(r: ConsoleLoadResult) -> list[str]:
    return [
        f"| console executions page, {r.executions:,} executions recorded (fresh context, to the first row) | "
        f"p50 {r.executions_page_ms:,.0f} ms (max {r.executions_page_max_ms:,.0f}) | navigation floor "
        f"{r.navigation_floor_ms:,.0f} ms; its API calls {r.executions_api_ms:,.0f} ms | < 1,000 ms |",
        f"| console execution page, a {r.history_events:,}-event history (to the first history row) | "
        f"p50 {r.history_page_ms:,.0f} ms (max {r.history_page_max_ms:,.0f}) | navigation floor "
        f"{r.navigation_floor_ms:,.0f} ms; its API calls {r.history_api_ms:,.0f} ms | < 2,000 ms |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run_console_load(quick=args.quick, rounds=args.rounds))
    print(json.dumps(asdict(result), indent=2) if args.json else "\n".join(rows(result)))


if __name__ == "__main__":
    main()
