"""Raw limits of the pieces under the orchestrator, measured in the same run as its figures.

    python -m bench.raw_limits [--quick] [--distributed] [--json]

- asyncio queue hop rate: ``bench.embedded.queue_hop_us`` (one put to the get in another
  coroutine, back and forth), as hops per second;
- aiokafka produce rate and consume rate (``--distributed``): 1 KiB records, producer with
  ``acks=all`` and idempotence (the transport's settings, linger 0), every send in flight at once
  and all acks awaited; then a fresh consumer, assigned every partition (no group join in the
  timing), reads them from the beginning (``getmany``, no per-record work) until it has them all. A fresh 12-partition topic, deleted after;
- aio-pika publish with publisher confirms (``--distributed``): 1 KiB persistent messages
  (delivery mode 2, ``mandatory``, as ``connectors/amqp_publish.py`` sends them) to a durable
  queue, one at a time (each confirm awaited before the next) and pipelined (``AMQP_WINDOW`` in
  flight). A fresh queue, deleted after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from dataclasses import asdict, dataclass

from bench.embedded import queue_hop_us

RECORD = b"x" * 1024
PARTITIONS = 12
AMQP_WINDOW = 200


@dataclass
class KafkaRates:
    records: int
    record_bytes: int
    produce_per_s: float  # acked (acks=all) records/s, all in flight
    consume_per_s: float  # records/s fetched by a fresh consumer (assigned) from offset 0


@dataclass
class AmqpRates:
    one_at_a_time_per_s: float  # publish + confirm, sequential
    pipelined_per_s: float  # AMQP_WINDOW publishes awaiting their confirms at once
    window: int
    messages: int


@dataclass
class RawLimits:
    queue_hop_us: float
    queue_hops_per_s: float
    kafka: KafkaRates | None = None
    amqp: AmqpRates | None = None


async def kafka_rates(broker: str, records: int) -> KafkaRates:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker, request_timeout_ms=10000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
        producer = AIOKafkaProducer(
            bootstrap_servers=broker, acks="all", enable_idempotence=True, linger_ms=0
        )
        await producer.start()
        try:
            for partition in range(PARTITIONS):  # every partition has a leader before the clock starts
                for attempt in range(100):
                    try:
                        await producer.send_and_wait(topic, b"warm", partition=partition)
                        break
                    except KafkaError:
                        if attempt == 99:
                            raise
                        await asyncio.sleep(0.1)
            began = time.perf_counter()
            futures = [await producer.send(topic, RECORD) for _ in range(records)]
            await asyncio.gather(*futures)
            produce_s = time.perf_counter() - began
        finally:
            await producer.stop()
        # Assigned, not subscribed: no group join in the timing, only fetching and decoding.
        consumer = AIOKafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
        await consumer.start()
        try:
            total = records + PARTITIONS  # with the warm-up records
            got = 0
            began = time.perf_counter()
            consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
            await consumer.seek_to_beginning()
            while got < total:
                batch = await consumer.getmany(timeout_ms=10000, max_records=5000)
                if not batch:
                    raise RuntimeError(f"consumer stalled at {got} of {total} records")
                got += sum(len(v) for v in batch.values())
            consume_s = time.perf_counter() - began
        finally:
            await consumer.stop()
        return KafkaRates(records, len(RECORD), records / produce_s, total / consume_s)
    finally:
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()


async def amqp_rates(url: str, messages: int) -> AmqpRates:
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await channel.declare_queue(f"bench-raw-{uuid.uuid4().hex[:8]}", durable=True)
        try:

            async def publish() -> None:
                await channel.default_exchange.publish(
                    aio_pika.Message(RECORD, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue.name,
                    mandatory=True,
                )

            for _ in range(20):
                await publish()
            sequential = max(messages // 10, 50)
            began = time.perf_counter()
            for _ in range(sequential):
                await publish()
            one_at_a_time = sequential / (time.perf_counter() - began)
            window = asyncio.Semaphore(AMQP_WINDOW)

            async def bounded() -> None:
                async with window:
                    await publish()

            began = time.perf_counter()
            await asyncio.gather(*(bounded() for _ in range(messages)))
            pipelined = messages / (time.perf_counter() - began)
        finally:
            await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
    return AmqpRates(one_at_a_time, pipelined, AMQP_WINDOW, messages)


async def run_raw_limits(
    *,
    quick: bool = False,
    distributed: bool = False,
    broker: str = "127.0.0.1:9092",
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/",
    hop_us: float | None = None,
) -> RawLimits:
    """``hop_us``: a queue hop already measured in this run (``bench.embedded``), else measured here."""
    hop = hop_us or await queue_hop_us(20_000 if quick else 200_000)
    result = RawLimits(queue_hop_us=hop, queue_hops_per_s=1e6 / hop)
    if distributed:
        result.kafka = await kafka_rates(broker, 20_000 if quick else 200_000)
        result.amqp = await amqp_rates(amqp_url, 2_000 if quick else 20_000)
    return result


def raw_rows(r: RawLimits) -> list[str]:
    rows = [
        f"| asyncio queue hop (put → get in another coroutine) | {r.queue_hops_per_s:,.0f} hops/s "
        f"({r.queue_hop_us:.1f} µs) |",
    ]
    if r.kafka is not None:
        k = r.kafka
        rows += [
            f"| aiokafka produce, acks=all, idempotent, {k.record_bytes // 1024} KiB records, all in flight "
            f"({k.records:,}) | {k.produce_per_s:,.0f} records/s ({k.produce_per_s * k.record_bytes / 2**20:,.0f} MiB/s) |",
            f"| aiokafka consume, every partition assigned, from offset 0, `getmany` | {k.consume_per_s:,.0f} records/s "
            f"({k.consume_per_s * k.record_bytes / 2**20:,.0f} MiB/s) |",
        ]
    if r.amqp is not None:
        a = r.amqp
        rows += [
            f"| aio-pika publish with confirm, 1 KiB persistent, one at a time | {a.one_at_a_time_per_s:,.0f} msgs/s |",
            f"| aio-pika publish with confirm, {a.window} in flight ({a.messages:,}) | {a.pipelined_per_s:,.0f} msgs/s |",
        ]
    return rows


def as_dict(r: RawLimits) -> dict[str, object]:
    return asdict(r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--distributed", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run_raw_limits(quick=args.quick, distributed=args.distributed))
    print(json.dumps(as_dict(result), indent=2) if args.json else "\n".join(raw_rows(result)))


if __name__ == "__main__":
    main()
