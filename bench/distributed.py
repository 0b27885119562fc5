"""Kafka + Cassandra mode: per-step overhead and transitions/s, beside the raw floor measured in
the same run: an aiokafka produce-to-consume round trip (acks=all) and cassandra-driver inserts
into a table shaped like the event log (plain and conditional), single and pipelined.

Needs the servers of ``scripts/services start``. Uses a fresh keyspace and fresh topics.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args

from bench.embedded import TimedNoop, percentile, run_workload
from connectors.base import Connectors
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

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
