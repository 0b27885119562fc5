"""Append throughput of SQLiteEventLog, beside the raw sqlite3 commit rate of the same disk.

    python bench/sqlite_log.py [--dir DIR] [--seconds 2] [--writers 500]

Every append is one event. "1 writer" appends back to back (never a backlog: each append commits
alone); "N writers" appends from N coroutines at once, one execution each (group commit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.backends.sqlite import SQLiteEventLog
from schemas.envelope import Envelope

TIME = "2024-01-01T00:00:00.000Z"


def envelope(execution_id: str, sequence: int) -> Envelope:
    return Envelope(
        id=f"{execution_id}-{sequence}",
        type="ExecutionStarted" if sequence == 1 else "StepSucceeded",
        subject=execution_id,
        sequence=sequence,
        time=TIME,
        workflow="bench",
        workflowversion=1,
        data={"step": "call", "output": {"status": 200, "body": "ok"}},
    )


def raw_commits(path: str, synchronous: str, seconds: float) -> float:
    """One-row INSERT transactions per second, plain sqlite3, WAL."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    connection.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
    body = envelope("raw", 2).to_bytes()
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO t VALUES (?, ?)", (count, body))
            connection.execute("COMMIT")
            count += 1
    elapsed = time.perf_counter() - start
    connection.close()
    return count / elapsed


async def appends(url: str, writers: int, seconds: float) -> float:
    """Single-event appends per second from ``writers`` coroutines, one execution each."""
    async with SQLiteEventLog.from_url(url) as log:
        deadline = time.perf_counter() + seconds
        counts = [0] * writers

        async def writer(index: int) -> None:
            execution_id = f"w{index}"
            sequence = 0
            while time.perf_counter() < deadline:
                await log.append(execution_id, sequence, [envelope(execution_id, sequence + 1)])
                sequence += 1
            counts[index] = sequence

        start = time.perf_counter()
        await asyncio.gather(*(writer(i) for i in range(writers)))
        elapsed = time.perf_counter() - start
    return sum(counts) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where to put the databases (default: tmp)")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--writers", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        print(f"databases in {directory} (sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cpus)")
        for synchronous in ("full", "normal"):
            raw = raw_commits(f"{directory}/raw-{synchronous}.db", synchronous, args.seconds)
            print(f"synchronous={synchronous:6}  raw sqlite3 one-row commits/s: {raw:10,.0f}")
            for writers in (1, args.writers):
                url = f"sqlite:///{directory}/log-{synchronous}-{writers}.db?synchronous={synchronous}"
                rate = asyncio.run(appends(url, writers, args.seconds))
                label = f"{writers} writer{'s' if writers > 1 else ''}"
                print(f"synchronous={synchronous:6}  appends/s, {label:12}: {rate:10,.0f}")


if __name__ == "__main__":
    main()
