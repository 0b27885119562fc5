"""Raw limit of a worker crash: how long a bare aiokafka consumer group takes to fail over.

    python -m bench.group_failover [--json]

Two child processes (``python -m bench.group_failover member ...``) each run one
``AIOKafkaConsumer`` in the same group on a fresh topic of ``PARTITIONS`` partitions, with the
consumer settings of the orchestrator's Kafka transport (``heartbeat_interval_ms=1000``, aiokafka's
default ``session_timeout_ms=10000``, no auto commit). Each prints its assignments and every
record it gets, stamped with ``time.time()``. Once both hold partitions, this process SIGKILLs
one, then at once produces one record to each partition the dead member held. Measured from
the kill: when the survivor is assigned those partitions, and when it has consumed every one of
the new records. Nothing leaves the group cleanly, so the broker notices the death only when the
session times out: that timeout is the floor of any Kafka worker failover.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

PARTITIONS = 4
SESSION_TIMEOUT_MS = 10_000  # aiokafka's default, which the orchestrator's transport keeps
HEARTBEAT_MS = 1_000  # orchestrator/backends/kafka/transport.py
REPO = Path(__file__).resolve().parent.parent


@dataclass
class FailoverResult:
    partitions: int
    session_timeout_ms: int
    heartbeat_interval_ms: int
    reassigned_s: float  # kill -> survivor assigned the dead member's partitions
    consumed_s: float  # kill -> survivor consumed a new record on each of them


# -- a group member (child process) ----------------------------------------------------------------


async def member(broker: str, topic: str, group: str) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.abc import ConsumerRebalanceListener

    def say(*words: object) -> None:
        print(time.time(), *words, flush=True)

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
            return None

        async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
            say("assigned", ",".join(str(p) for p in sorted(tp.partition for tp in assigned)))

    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        heartbeat_interval_ms=HEARTBEAT_MS,
        session_timeout_ms=SESSION_TIMEOUT_MS,
    )
    await consumer.start()
    consumer.subscribe([topic], listener=Listener())
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for record in records:
                    say("record", tp.partition, (record.value or b"").decode())
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()


# -- the measurement -------------------------------------------------------------------------------


class Member:
    def __init__(self, broker: str, topic: str, group: str, changed: asyncio.Event) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "bench.group_failover", "member", broker, topic, group]
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.assigned: set[int] = set()
        self.assigned_at = 0.0
        self.records: dict[str, float] = {}  # value -> when consumed
        self.changed = changed  # shared by the members: set on any line from any of them
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await asyncio.to_thread(self.process.stdout.readline):
            stamp, kind, *rest = line.decode().split()
            if kind == "assigned":
                self.assigned = {int(p) for p in rest[0].split(",")} if rest else set()
                self.assigned_at = float(stamp)
            elif kind == "record":
                self.records[rest[1]] = float(stamp)
            self.changed.set()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._reader.cancel()


async def run_group_failover(broker: str = "127.0.0.1:9092") -> FailoverResult:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"bench-failover-{uuid.uuid4().hex[:8]}"
    group = f"{topic}.g"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker, request_timeout_ms=10000)
    await admin.start()
    members: list[Member] = []
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", enable_idempotence=True)
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
        await producer.start()
        changed = asyncio.Event()
        members = [Member(broker, topic, group, changed) for _ in range(2)]
        dead, survivor = members

        async def until(condition: Callable[[], bool], timeout: float) -> None:
            async with asyncio.timeout(timeout):
                while not condition():
                    changed.clear()
                    await changed.wait()

        def split() -> bool:  # one generation with both members, every partition held once
            both = dead.assigned | survivor.assigned
            return both == set(range(PARTITIONS)) and not dead.assigned & survivor.assigned

        def fetching() -> bool:
            return all(f"before-{p}" in m.records for m in members for p in m.assigned)

        await until(lambda: all(m.assigned for m in members) and split(), 90)
        for partition in range(PARTITIONS):  # both members are fetching
            await producer.send_and_wait(topic, f"before-{partition}".encode(), partition=partition)
        await until(fetching, 30)
        orphans = set(dead.assigned)
        dead.process.send_signal(signal.SIGKILL)
        killed = time.time()
        for partition in orphans:
            await producer.send_and_wait(topic, f"after-{partition}".encode(), partition=partition)
        await until(lambda: orphans <= survivor.assigned, 120)
        reassigned = survivor.assigned_at - killed
        await until(lambda: all(f"after-{p}" in survivor.records for p in orphans), 60)
        consumed = max(survivor.records[f"after-{p}"] for p in orphans) - killed
        return FailoverResult(PARTITIONS, SESSION_TIMEOUT_MS, HEARTBEAT_MS, reassigned, consumed)
    finally:
        for m in members:
            m.stop()
        await producer.stop()
        with contextlib.suppress(Exception):
            await admin.delete_topics([topic])
        await admin.close()


def failover_row(r: FailoverResult) -> str:
    return (
        f"| bare aiokafka consumer group failover (2 child processes, {r.partitions} partitions, "
        f"session timeout {r.session_timeout_ms / 1000:.0f} s, heartbeat {r.heartbeat_interval_ms / 1000:.0f} s; "
        f"SIGKILL one) | reassigned after {r.reassigned_s:.1f} s; new records consumed after {r.consumed_s:.1f} s |"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "member":
        logging.basicConfig(level=logging.CRITICAL)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(member(*sys.argv[2:5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="127.0.0.1:9092")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run_group_failover(args.broker))
    print(json.dumps(asdict(result), indent=2) if args.json else failover_row(result))


if __name__ == "__main__":
    main()
