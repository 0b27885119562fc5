"""Raw cassandra-driver inserts beside CassandraEventLog.append, on the same cluster, in one run.

    python bench/cassandra_raw.py [--url cassandra://127.0.0.1:9042] [--seconds 3]
                                  [--inflight 200] [--writers 200] [--samples 500]

Creates a random keyspace (dropped at the end) holding the orchestrator schema plus
``raw_events``, a table shaped like ``events``. Measured:

- raw insert latency: one plain INSERT at a time, ``session.execute`` (p50/p99);
- raw LWT latency: one ``INSERT ... IF NOT EXISTS`` at a time (what a conditional append pays);
- raw 8 KiB insert latency, with and without TCP_NODELAY (the driver's default is without);
- raw pipelined insert and LWT rates: ``execute_concurrent_with_args``, ``--inflight`` in flight;
- append latency: single-event appends to one execution, one at a time (p50/p99), 10-event
  appends (still one LWT), and the first append of an execution (LWT plus the logged batch of
  index rows);
- append rate: single-event appends from ``--writers`` coroutines, one execution each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.backends.cassandra.event_log import CassandraEventLog, migrate
from schemas.envelope import Envelope

TIME = "2024-01-01T00:00:00.000Z"
RAW_TABLE = (
    "CREATE TABLE IF NOT EXISTS {ks}.raw_events (execution_id text, sequence bigint,"
    " event_id text, type text, time text, body blob, PRIMARY KEY ((execution_id), sequence))"
)


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


def percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000, "n": len(samples)}


NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def raw(hosts: list[str], port: int, keyspace: str, args: argparse.Namespace) -> dict[str, Any]:
    cluster = Cluster(hosts, port=port, protocol_version=5, sockopts=NODELAY)
    session = cluster.connect()
    try:
        session.execute(RAW_TABLE.format(ks=keyspace))
        columns = "(execution_id, sequence, event_id, type, time, body)"
        plain = session.prepare(f"INSERT INTO {keyspace}.raw_events {columns} VALUES (?,?,?,?,?,?)")
        lwt = session.prepare(
            f"INSERT INTO {keyspace}.raw_events {columns} VALUES (?,?,?,?,?,?) IF NOT EXISTS"
        )
        body = envelope("raw", 2).to_bytes()

        def row(prefix: str, n: int) -> tuple[object, ...]:
            return (f"{prefix}{n % 1000}", n, f"id-{n}", "StepSucceeded", TIME, body)

        for n in range(200):  # warm up connections and the JIT
            session.execute(plain, row("warm", n))
        results: dict[str, Any] = {}
        for name, statement in (("raw insert", plain), ("raw LWT insert", lwt)):
            samples = []
            for n in range(args.samples):
                began = time.perf_counter()
                session.execute(statement, row(name[:7], n))
                samples.append(time.perf_counter() - began)
            results[f"{name} latency"] = percentiles(samples)
        results["raw 8 KiB insert latency"] = big_inserts(session, plain, args.samples // 5)
        for name, statement in (("raw insert", plain), ("raw LWT insert", lwt)):
            count, began = 0, time.perf_counter()
            while time.perf_counter() - began < args.seconds:
                params = [row(f"pipe{name[4]}", count + n) for n in range(args.inflight * 10)]
                execute_concurrent_with_args(session, statement, params, concurrency=args.inflight)
                count += len(params)
            elapsed = time.perf_counter() - began
            results[f"{name} rate ({args.inflight} in flight)"] = {"per_s": count / elapsed}
    finally:
        cluster.shutdown()
    nagle = Cluster(hosts, port=port, protocol_version=5)  # the driver's default socket options
    try:
        session = nagle.connect()
        statement = session.prepare(plain.query_string)
        label = "raw 8 KiB insert latency, driver default (no TCP_NODELAY)"
        results[label] = big_inserts(session, statement, args.samples // 5)
    finally:
        nagle.shutdown()
    return results


def big_inserts(session: Any, statement: Any, count: int) -> dict[str, float]:
    """Requests over the driver's 4 KiB write chunk, where Nagle's algorithm would stall them."""
    body = b"x" * 8192
    samples = []
    for n in range(max(count, 20)):
        began = time.perf_counter()
        session.execute(statement, (f"big{n % 10}", n, f"id-{n}", "StepSucceeded", TIME, body))
        samples.append(time.perf_counter() - began)
    return percentiles(samples)


async def appends(url: str, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with CassandraEventLog.from_url(url) as log:
        starts = []
        for n in range(max(50, args.samples // 5)):
            began = time.perf_counter()
            await log.append(f"s{n}", 0, [envelope(f"s{n}", 1)])
            starts.append(time.perf_counter() - began)
        results["append latency, first event (LWT + index batch)"] = percentiles(starts)
        samples = []
        for sequence in range(2, args.samples + 2):
            began = time.perf_counter()
            await log.append("s0", sequence - 1, [envelope("s0", sequence)])
            samples.append(time.perf_counter() - began)
        results["append latency, later events (one LWT)"] = percentiles(samples)
        batches, last = [], args.samples + 1
        for _ in range(max(50, args.samples // 5)):
            events = [envelope("s0", last + n) for n in range(1, 11)]
            began = time.perf_counter()
            await log.append("s0", last, events)
            batches.append(time.perf_counter() - began)
            last += 10
        results["append latency, 10-event batch (one LWT)"] = percentiles(batches)

        counts = [0] * args.writers

        async def writer(index: int, deadline: float) -> None:
            execution_id = f"w{index}"
            await log.append(execution_id, 0, [envelope(execution_id, 1)])
            sequence = 1
            while time.perf_counter() < deadline:
                await log.append(execution_id, sequence, [envelope(execution_id, sequence + 1)])
                sequence += 1
            counts[index] = sequence - 1

        began = time.perf_counter()
        await asyncio.gather(*(writer(i, began + args.seconds) for i in range(args.writers)))
        elapsed = time.perf_counter() - began
        label = f"append rate ({args.writers} executions at once, 1 event each)"
        results[label] = {"per_s": sum(counts) / elapsed}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="cassandra://127.0.0.1:9042", help="no keyspace")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--inflight", type=int, default=200)
    parser.add_argument("--writers", type=int, default=200)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    netloc = args.url.removeprefix("cassandra://").split("/", 1)[0]
    hosts = [h.partition(":")[0] for h in netloc.split(",")]
    port = int(netloc.split(",")[0].partition(":")[2] or 9042)
    keyspace = f"bench_{uuid.uuid4().hex[:10]}"
    url = f"cassandra://{netloc}/{keyspace}"
    asyncio.run(migrate(url))
    try:
        results = raw(hosts, port, keyspace, args)
        results.update(asyncio.run(appends(url, args)))
    finally:
        cluster = Cluster(hosts, port=port, protocol_version=5, sockopts=NODELAY)
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
        cluster.shutdown()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, value in results.items():
        if "per_s" in value:
            print(f"{name:62} {value['per_s']:10,.0f} /s")
        else:
            print(f"{name:62} p50 {value['p50_ms']:7.2f} ms  p99 {value['p99_ms']:7.2f} ms")


if __name__ == "__main__":
    main()
