"""DBOS Transact on its SQLite system database: a workflow of 10 ``@DBOS.step()`` no-op steps.

DBOS is a process-wide singleton that starts threads, sets up logging and registers atexit
hooks, so the measurement runs in a child process of its own (``python -m
bench.peers.dbos_peer``, one JSON line on stdout) and ``run_dbos`` spawns it, like the Celery
worker; the workflows are started and awaited in that process, the way a DBOS application runs
them (DBOS has no separate worker).

Configuration: ``DBOSConfig(system_database_url="sqlite:///<tmp>/dbos.sqlite")`` and nothing
else. DBOS checkpoints every step's output to the system database before the next step starts,
and a workflow's start and end (status rows); its SQLite engine opens transactions with ``BEGIN
IMMEDIATE`` and leaves SQLite's journal mode and ``synchronous`` at their defaults (a rollback
journal, ``synchronous=FULL``). ``--journal wal`` (the default here) switches the file to WAL
before DBOS opens it, which is what our event log uses with ``synchronous=FULL``: both then fsync
the WAL on every commit, so the comparison is of the engines, not of SQLite journal modes.
``--journal delete`` measures DBOS exactly as it ships.

Workflows and steps are ``async def`` (``--style async``, the default): N workflows started at
once on one event loop with ``DBOS.start_workflow_async``, as ours are on one loop; DBOS runs
each checkpoint in a thread (``asyncio.to_thread``). ``--style sync`` uses plain functions and
``DBOS.start_workflow``, which runs each workflow on a thread of DBOS's unbounded executor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.peers.common import STEPS, PeerResult, gaps_us, summarise

ROOT = Path(__file__).resolve().parents[2]


def run_dbos(
    *,
    sequential: int = 100,
    concurrent: int = 2000,
    journal: str = "wal",
    style: str = "async",
    timeout: float = 900,
) -> PeerResult:
    """Runs the measurement in a child process and returns its figures."""
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "bench.peers.dbos_peer",
        f"--sequential={sequential}",
        f"--concurrent={concurrent}",
        f"--journal={journal}",
        f"--style={style}",
    ]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"DBOS peer exited with {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}"
        )
    return PeerResult(**json.loads(done.stdout.decode().strip().splitlines()[-1]))


Marks = dict[str, list[tuple[int, float, float]]]


def _define(style: str) -> tuple[Any, Marks]:
    """The workflow, registered with DBOS (decorators may run before ``DBOS(config=...)``)."""
    marks: Marks = {}
    return (_define_async if style == "async" else _define_sync)(marks), marks


def _define_async(marks: Marks) -> Any:
    from dbos import DBOS

    @DBOS.step()
    async def step(index: int) -> None:
        began = time.perf_counter()
        marks.setdefault(DBOS.workflow_id or "", []).append((index, began, time.perf_counter()))

    @DBOS.workflow()
    async def ten_steps() -> int:
        for index in range(STEPS):
            await step(index)
        return STEPS

    return ten_steps


def _define_sync(marks: Marks) -> Any:
    from dbos import DBOS

    @DBOS.step()
    def step(index: int) -> None:
        began = time.perf_counter()
        marks.setdefault(DBOS.workflow_id or "", []).append((index, began, time.perf_counter()))

    @DBOS.workflow()
    def ten_steps() -> int:
        for index in range(STEPS):
            step(index)
        return STEPS

    return ten_steps


def pragmas(path: Path) -> tuple[str, int]:
    connection = sqlite3.connect(path)
    try:
        journal = connection.execute("PRAGMA journal_mode").fetchone()[0]
        synchronous = connection.execute("PRAGMA synchronous").fetchone()[0]
    finally:
        connection.close()
    return journal, synchronous


def measure(sequential: int, concurrent: int, journal: str, style: str) -> PeerResult:
    from dbos import DBOS

    for name in ("dbos", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    workflow, marks = _define(style)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dbos.sqlite"
        if journal == "wal":
            # Persistent in the file: every connection DBOS opens is then in WAL mode.
            connection = sqlite3.connect(path)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.close()
        DBOS(
            config={"name": "bench-peers", "system_database_url": f"sqlite:///{path}", "log_level": "WARNING"}
        )
        DBOS.launch()
        try:
            journal_mode, synchronous = pragmas(path)

            async def run() -> tuple[list[float], int, float]:
                async def one() -> tuple[str, int]:
                    if style == "async":
                        handle = await DBOS.start_workflow_async(workflow)
                        return handle.workflow_id, await handle.get_result()
                    sync_handle = await asyncio.to_thread(DBOS.start_workflow, workflow)
                    return sync_handle.workflow_id, await asyncio.to_thread(sync_handle.get_result)

                for _ in range(3):  # warm-up
                    await one()
                marks.clear()
                gaps: list[float] = []
                for _ in range(sequential):
                    workflow_id, _steps = await one()
                    gaps += gaps_us(marks.pop(workflow_id))
                began = time.perf_counter()
                results = await asyncio.gather(*(one() for _ in range(concurrent)))
                elapsed = time.perf_counter() - began
                completed = sum(
                    1 for workflow_id, steps in results if steps == STEPS and len(marks[workflow_id]) == STEPS
                )
                return gaps, completed, elapsed

            gaps, completed, elapsed = asyncio.run(run())
            succeeded = len(DBOS.list_workflows(status="SUCCESS"))
        finally:
            DBOS.destroy(destroy_registry=True)
    notes = []
    expected = 3 + sequential + concurrent
    if succeeded != expected:
        notes.append(f"{succeeded} workflows SUCCESS in the system database, expected {expected}")
    p50, p99 = summarise(gaps)
    sync_name = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(synchronous, str(synchronous))
    return PeerResult(
        system="DBOS Transact",
        version=f"dbos {dbos_version()}, SQLite {sqlite3.sqlite_version}",
        durability=(
            f"every step's output checkpointed to the SQLite system database before the next step "
            f"(journal_mode={journal_mode}, synchronous={sync_name})"
        ),
        configuration=(
            f"{style} workflows and steps, SQLite system database"
            + (" switched to WAL" if journal == "wal" else "")
            + ", DBOS defaults otherwise"
        ),
        step_overhead_p50_us=p50,
        step_overhead_p99_us=p99,
        workflows_per_s=completed / elapsed,
        steps_per_s=completed * STEPS / elapsed,
        concurrent_executions=concurrent,
        completed=completed,
        sequential_executions=sequential,
        seconds=elapsed,
        notes=notes,
    )


def dbos_version() -> str:
    from importlib.metadata import version

    return version("dbos")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.dbos_peer")
    parser.add_argument("--sequential", type=int, default=100)
    parser.add_argument("--concurrent", type=int, default=2000)
    parser.add_argument("--journal", choices=["wal", "delete"], default="wal")
    parser.add_argument("--style", choices=["async", "sync"], default="async")
    args = parser.parse_args(argv)
    result = measure(args.sequential, args.concurrent, args.journal, args.style)
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
