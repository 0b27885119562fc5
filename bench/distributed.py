"""Kafka + Cassandra mode: per-step overhead and transitions/s, beside the raw floor measured in
the same run: an aiokafka produce-to-consume round trip (acks=all) and cassandra-driver inserts
into a table shaped like the event log (plain and conditional), single and pipelined.

Needs the servers of ``scripts/services start``. Uses a fresh keyspace and fresh topics.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args

from bench.embedded import TimedNoop, percentile, run_workload
from connectors.base import Connectors
from orchestrator.core.timefmt import parse_rfc3339
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow

BODY = b'{"specversion":"1.0","type":"io.orchestrator.StepSucceeded","data":{"step":"s1","output":null}}' * 3


@dataclass
class DistributedResult:
    kafka_round_trip_p50_us: float
    kafka_round_trip_p99_us: float
    cassandra_insert_p50_us: float
    cassandra_lwt_p50_us: float
    cassandra_insert_rate: float
    cassandra_lwt_rate: float
    step_overhead_p50_us: float
    step_overhead_p99_us: float
    transitions_per_s: float
    workflows_per_s: float
    concurrent_executions: int

    @property
    def floor_us(self) -> float:
        return self.kafka_round_trip_p50_us + self.cassandra_insert_p50_us


async def kafka_round_trip(broker: str, topic: str, count: int) -> list[float]:
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", enable_idempotence=True, linger_ms=0)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker,
        group_id=f"{topic}.g",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(topic, b"warm", key=b"k")
        await consumer.getone()
        samples = []
        for n in range(count):
            began = time.perf_counter()
            await producer.send_and_wait(topic, str(n).encode(), key=b"k")
            await consumer.getone()
            samples.append((time.perf_counter() - began) * 1e6)
        return samples
    finally:
        await consumer.stop()
        await producer.stop()


def cassandra_floor(host: str, port: int, keyspace: str, count: int) -> dict[str, float]:
    cluster = Cluster([host], port=port, protocol_version=5)
    session = cluster.connect()
    try:
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        )
        session.execute(
            f"CREATE TABLE IF NOT EXISTS {keyspace}.raw_events (execution_id text, sequence bigint, type text,"
            " time text, body blob, PRIMARY KEY ((execution_id), sequence))"
        )
        columns = "(execution_id, sequence, type, time, body)"
        plain = session.prepare(f"INSERT INTO {keyspace}.raw_events {columns} VALUES (?,?,?,?,?)")
        lwt = session.prepare(f"INSERT INTO {keyspace}.raw_events {columns} VALUES (?,?,?,?,?) IF NOT EXISTS")
        result: dict[str, float] = {}
        for name, statement in (("insert", plain), ("lwt", lwt)):
            samples = []
            for n in range(count):
                began = time.perf_counter()
                session.execute(statement, (f"{name}{n % 100}", n, "StepSucceeded", "t", BODY))
                samples.append((time.perf_counter() - began) * 1e6)
            result[f"{name}_p50_us"] = statistics.median(samples)
            params = [(f"{name}p{n % 1000}", n, "StepSucceeded", "t", BODY) for n in range(count * 10)]
            began = time.perf_counter()
            execute_concurrent_with_args(session, statement, params, concurrency=200)
            result[f"{name}_rate"] = len(params) / (time.perf_counter() - began)
        session.execute(f"DROP KEYSPACE {keyspace}")
        return result
    finally:
        cluster.shutdown()


async def run_distributed(
    *,
    broker: str = "127.0.0.1:9092",
    cassandra: str = "127.0.0.1:9042",
    sequential: int = 20,
    concurrent: int = 300,
) -> DistributedResult:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    host, _, port = cassandra.partition(":")
    round_trips = await kafka_round_trip(broker, f"{prefix}.raw", 300)
    floor = await asyncio.to_thread(cassandra_floor, host, int(port or 9042), f"{prefix}_raw", 300)
    noop = TimedNoop()
    settings = Settings(
        event_log_url=f"cassandra://{cassandra}/{prefix}?migrate=auto",
        transport_url=f"kafka://{broker}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}&partitions=12",
    )
    async with Runtime(settings, connectors=Connectors([noop])) as runtime:
        workload = await run_workload(runtime, noop, sequential, concurrent)
    await drop_keyspace(host, int(port or 9042), prefix)
    return DistributedResult(
        kafka_round_trip_p50_us=statistics.median(round_trips),
        kafka_round_trip_p99_us=percentile(round_trips, 0.99),
        cassandra_insert_p50_us=floor["insert_p50_us"],
        cassandra_lwt_p50_us=floor["lwt_p50_us"],
        cassandra_insert_rate=floor["insert_rate"],
        cassandra_lwt_rate=floor["lwt_rate"],
        step_overhead_p50_us=statistics.median(workload.gaps_us),
        step_overhead_p99_us=percentile(workload.gaps_us, 0.99),
        transitions_per_s=workload.transitions_per_s,
        workflows_per_s=workload.workflows_per_s,
        concurrent_executions=concurrent,
    )


async def drop_keyspace(host: str, port: int, keyspace: str) -> None:
    def drop() -> None:
        cluster = Cluster([host], port=port, protocol_version=5)
        try:
            cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
        finally:
            cluster.shutdown()

    await asyncio.to_thread(drop)


def distributed_table(r: DistributedResult) -> list[str]:
    floor = r.floor_us
    return [
        "### Kafka + Cassandra (one process, role=all, 12 partitions)",
        "",
        "| figure | measured | raw limit (same run) | ratio | target |",
        "|---|---|---|---|---|",
        f"| per-step overhead p50 | {r.step_overhead_p50_us / 1000:.2f} ms | floor {floor / 1000:.2f} ms "
        f"(Kafka round trip {r.kafka_round_trip_p50_us / 1000:.2f} + Cassandra insert {r.cassandra_insert_p50_us / 1000:.2f}; "
        f"LWT insert {r.cassandra_lwt_p50_us / 1000:.2f}) | {r.step_overhead_p50_us / floor:.2f}x | ≤ 1.5x |",
        f"| per-step overhead p99 | {r.step_overhead_p99_us / 1000:.2f} ms | Kafka round trip p99 "
        f"{r.kafka_round_trip_p99_us / 1000:.2f} ms | | |",
        f"| transitions/s ({r.concurrent_executions} concurrent executions) | {r.transitions_per_s:,.0f} | "
        f"pipelined inserts {r.cassandra_insert_rate:,.0f}/s, LWTs {r.cassandra_lwt_rate:,.0f}/s (2 transitions per LWT) | "
        f"{r.transitions_per_s / r.cassandra_insert_rate:.2f}x of inserts | ≥ 0.5x and ≥ 2,000/s |",
        f"| workflows/s (10 steps) | {r.workflows_per_s:,.0f} | | | |",
    ]


def as_dict(result: DistributedResult) -> dict[str, Any]:
    return {**result.__dict__, "floor_us": result.floor_us}


def spawn_workers(
    count: int, event_log: str, transport: str, prefix: str
) -> tuple[list[subprocess.Popen[bytes]], Path]:
    """``count`` worker processes with the 10-step no-op workflow registered from a file."""
    folder = Path(__file__).resolve().parent
    definition = folder / "results" / f"{prefix}.yaml"
    definition.parent.mkdir(exist_ok=True)
    workflow = Workflow("bench-noop")
    for index in range(10):
        workflow.task(f"s{index}", "noop")
    definition.write_text(yaml.safe_dump(workflow.to_dict()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(
        PYTHONPATH=str(folder.parent),
        ORCHESTRATOR_EVENT_LOG_URL=event_log,
        ORCHESTRATOR_TRANSPORT_URL=transport,
        ORCHESTRATOR_DEFINITIONS=str(definition),
    )
    command = [sys.executable, "-m", "orchestrator", "worker"]
    quiet = subprocess.DEVNULL
    return [subprocess.Popen(command, env=env, stdout=quiet, stderr=quiet) for _ in range(count)], definition


def stop_workers(workers: list[subprocess.Popen[bytes]], definition: Path) -> None:
    for worker in workers:
        worker.terminate()
        worker.wait(30)
    definition.unlink(missing_ok=True)


async def run_two_workers(
    *, broker: str = "127.0.0.1:9092", cassandra: str = "127.0.0.1:9042", concurrent: int = 400
) -> float:
    """Transitions/s with two ``orchestrator worker`` processes and this process as the API
    (role=api), timed from the first start to the last event in the histories."""
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    host, _, port = cassandra.partition(":")
    event_log = f"cassandra://{cassandra}/{prefix}?migrate=auto"
    transport = (
        f"kafka://{broker}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}&partitions=12"
    )
    workers, definition = spawn_workers(2, event_log, transport, prefix)
    try:
        api = Settings(event_log_url=event_log, transport_url=f"{transport}&role=api")
        async with Runtime(api) as runtime:
            for _ in range(600):
                if "bench-noop" in {d.name for d in await runtime.registry.list()}:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(3)  # both workers in the group
            began = time.time()
            starts = await asyncio.gather(*(runtime.start_execution("bench-noop") for _ in range(concurrent)))
            await asyncio.gather(*(runtime.wait(s.execution_id, timeout=600) for s in starts))
            events, last = 0, began
            for started in starts:
                history = await runtime.history(started.execution_id)
                events += len(history)
                last = max(last, parse_rfc3339(history[-1].time))
        return events / (last - began)
    finally:
        stop_workers(workers, definition)
        await drop_keyspace(host, int(port or 9042), prefix)
