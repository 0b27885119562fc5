"""The parts of the trigger benchmark (``bench.triggers``): the shared workflow, runtime and
clocks, then the Kafka and the RabbitMQ parts, each measuring the raw client and the trigger.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import json
import logging
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bench.embedded import percentile
from connectors.base import Connectors, StepCall
from orchestrator.ports import ExecutionQuery
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.validation import parse_definition
from triggers.inbound import InboundMessage, Outcome, Router
from triggers.sources import SourceSpec

KAFKA = "127.0.0.1:9092"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
PARTITIONS = 4
LATENCY_RATE = 50.0  # messages/s sent for the latency parts
PUBLISH_WINDOW = 200  # AMQP publishes awaiting their confirms at once while filling a queue
WORKFLOW = "bench-trigger"
INPUT_SCHEMA = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}


log = logging.getLogger(__name__)


@dataclass
class Rate:
    """N messages (or direct calls) turned into executions, clock from the first one in hand."""

    starts_per_s: float  # ... to the N-th start durable (ExecutionStarted committed)
    steps_per_s: float  # ... to the N-th first step begun (the connector invoked)
    behind: int  # first steps not begun yet when the N-th start was durable


# -- messages, the workflow, the runtime ------------------------------------------------------


def body(index: int, sent: float = 0.0) -> bytes:
    """A ~200-byte JSON order; ``sent`` is the wall-clock send time (latency parts)."""
    value = {
        "id": f"order-{index:07d}",
        "sent": sent,
        "customer": f"customer-{index % 997:04d}",
        "region": ("eu", "us", "apac")[index % 3],
        "total": round(index * 1.37 % 500, 2),
        "items": [{"sku": f"sku-{index % 101:03d}", "qty": 1 + index % 4}],
    }
    raw = json.dumps(value, separators=(",", ":"))
    return json.dumps({**value, "note": "x" * max(0, 186 - len(raw))}, separators=(",", ":")).encode()


class FirstStep:
    """The no-op connector of the first step: notes, per call, now minus the send time."""

    name = "noop"

    def __init__(self) -> None:
        self.latencies: list[float] = []  # seconds, for calls whose args carry a send time
        self.calls = 0
        self.enough = asyncio.Event()
        self.wanted = 0  # latency samples wanted
        self.all_calls = 0  # rate parts: when the call number ``all_calls`` began
        self.all_called: float | None = None
        self.everything = asyncio.Event()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def invoke(self, call: StepCall) -> Any:
        now = time.time()
        self.calls += 1
        if self.calls == self.all_calls:
            self.all_called = time.perf_counter()
            self.everything.set()
        sent = call.args.get("sent") if isinstance(call.args, dict) else None
        if sent:
            self.latencies.append(now - sent)
            if len(self.latencies) >= self.wanted > 0:
                self.enough.set()
        return None


def definition(trigger: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "name": WORKFLOW,
        "input_schema": INPUT_SCHEMA,
        "triggers": [trigger] if trigger else [],
        "steps": [
            {
                "name": "first",
                "type": "task",
                "connector": "noop",
                "input": {"sent": "input.sent"},
                "next": "done",
            },
            {"name": "done", "type": "succeed"},
        ],
    }


@contextlib.asynccontextmanager
async def embedded(connections: dict[str, str]) -> AsyncIterator[tuple[Runtime, FirstStep]]:
    """A fresh embedded runtime: SQLite (synchronous=full, the default) + in-process transport."""
    first = FirstStep()
    with tempfile.TemporaryDirectory(prefix="bench-triggers-") as folder:
        settings = Settings(
            event_log_url=f"sqlite:///{folder}/triggers.db",
            retention_interval=0,
            connections=connections,
        )
        async with Runtime(settings, connectors=Connectors([first])) as runtime:
            yield runtime, first


async def build_source(
    runtime: Runtime, trigger: dict[str, Any], factory: Callable[[SourceSpec], Any]
) -> Any:
    parsed = parse_definition(definition(trigger))
    stored = await runtime.register(parsed)
    assert stored.version is not None
    spec = SourceSpec(stored.name, stored.version, stored.triggers[0], runtime, runtime.settings)
    return factory(spec)


class StartClock:
    """Wraps a source's ``Router.accept``: when the first message reached it, when the N-th start
    was durable (``accept`` returned ``started``)."""

    def __init__(self, router: Router, expected: int, first: FirstStep) -> None:
        self.expected = expected
        self.first_step = first
        first.all_calls = expected
        self.behind = 0
        self.first: float | None = None
        self.last: float | None = None
        self.started = 0
        self.done = asyncio.Event()
        inner = router.accept

        async def accept(message: InboundMessage) -> Outcome:
            if self.first is None:
                self.first = time.perf_counter()
            outcome = await inner(message)
            if outcome.kind == "started":
                self.started += 1
                if self.started == self.expected:
                    self.last = time.perf_counter()
                    self.behind = self.expected - self.first_step.calls
                    self.done.set()
            return outcome

        router.accept = accept  # type: ignore[method-assign]

    async def rate(self, timeout: float = 300.0) -> Rate:
        """Once every start is durable: wait for every first step to begin, and measure."""
        await wait_for(self.done, timeout, f"{self.expected} starts")
        await wait_for(self.first_step.everything, timeout, f"{self.expected} first steps")
        assert self.first is not None and self.last is not None and self.first_step.all_called
        return Rate(
            self.expected / (self.last - self.first),
            self.expected / (self.first_step.all_called - self.first),
            self.behind,
        )


async def wait_for(event: asyncio.Event, timeout: float, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        raise RuntimeError(f"not within {timeout:.0f}s: {what}") from None


async def settle(runtime: Runtime, expected: int, timeout: float = 120.0) -> None:
    """Let the started executions finish, then check the log holds exactly ``expected`` of them."""
    deadline = time.monotonic() + timeout
    query = ExecutionQuery(workflow=WORKFLOW, status="running", limit=1)
    while (await runtime.list_executions(query)).items and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    count, cursor = 0, None
    while True:
        page = await runtime.list_executions(ExecutionQuery(workflow=WORKFLOW, limit=1000, cursor=cursor))
        count += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    if count != expected:
        raise RuntimeError(f"the event log holds {count} executions, expected {expected}")


async def direct_starts(count: int, concurrency: int) -> Rate:
    """``Runtime.start_execution`` by ``concurrency`` coroutines, no broker."""
    async with embedded({}) as (runtime, first):
        first.all_calls = count
        await runtime.register(parse_definition(definition(None)))
        inputs = [json.loads(body(i)) for i in range(count)]
        next_index = 0

        async def caller() -> None:
            nonlocal next_index
            while next_index < count:
                index = next_index
                next_index += 1
                await runtime.start_execution(
                    WORKFLOW, inputs[index], dedup_key=f"direct:{index}", actor="bench"
                )

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        last = time.perf_counter()
        behind = count - first.calls
        await wait_for(first.everything, 300, f"{count} first steps")
        assert first.all_called is not None
        rate = Rate(count / (last - began), count / (first.all_called - began), behind)
        await settle(runtime, count)
    return rate


def ms(values: list[float]) -> tuple[float, float]:
    return statistics.median(values) * 1e3, percentile(values, 0.99) * 1e3


async def paced(count: int, rate: float, send: Callable[[int, float], Coroutine[Any, Any, None]]) -> None:
    """``send(index, wall_time)`` ``count`` times at ``rate``/s, each in its own task."""
    began = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    for index in range(count):
        delay = began + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(index, time.time())))
    await asyncio.gather(*tasks)


# -- Kafka --------------------------------------------------------------------------------------


class KafkaParts:
    """Topics and groups of one run, deleted by ``cleanup``."""

    def __init__(self, run: str, broker: str = KAFKA) -> None:
        self.run = run
        self.broker = broker
        self.topics: list[str] = []
        self.made = 0
        self.groups: list[str] = []

    def name(self, part: str) -> str:
        """A name of this run, never the same twice (parts may run more than once)."""
        self.made += 1
        return f"bench-trig-{self.run}-{self.made}-{part}"

    async def topic(self, part: str) -> str:
        """A fresh topic with PARTITIONS partitions, all with a leader."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        topic = self.name(part)
        self.topics += [topic, f"{topic}.dlq"]  # the trigger creates <topic>.dlq
        admin = AIOKafkaAdminClient(bootstrap_servers=self.broker, request_timeout_ms=10000)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
            for _ in range(100):
                described = await admin.describe_topics([topic])
                parts = described[0].get("partitions") or []
                if described[0].get("error_code") == 0 and parts and all(p["leader"] >= 0 for p in parts):
                    break
                await asyncio.sleep(0.1)
        finally:
            await admin.close()
        return topic

    def producer(self) -> Any:
        from aiokafka import AIOKafkaProducer

        return AIOKafkaProducer(
            bootstrap_servers=self.broker, acks="all", enable_idempotence=True, linger_ms=0
        )

    async def fill(self, topic: str, count: int) -> None:
        """``count`` records, spread evenly over the partitions, all acknowledged."""
        producer = self.producer()
        await producer.start()
        try:
            futures = [
                await producer.send(topic, body(index), partition=index % PARTITIONS)
                for index in range(count)
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    def consumer(self, group: str) -> Any:
        from aiokafka import AIOKafkaConsumer

        self.groups.append(group)
        return AIOKafkaConsumer(
            bootstrap_servers=self.broker,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            heartbeat_interval_ms=1000,
        )

    async def raw_rate(self, count: int) -> float:
        """A plain group consumer reads ``count`` records, committing after every batch."""
        topic = await self.topic("raw")
        await self.fill(topic, count)
        consumer = self.consumer(self.name("raw-group"))
        await consumer.start()
        try:
            consumer.subscribe([topic])
            got, first = 0, None
            while got < count:
                batch = await consumer.getmany(timeout_ms=10000)
                if not batch:
                    raise RuntimeError(f"raw consumer stalled at {got} of {count} records")
                if first is None:
                    first = time.perf_counter()
                for records in batch.values():
                    for record in records:
                        json.loads(record.value)  # the trigger decodes every record too
                    got += len(records)
                await consumer.commit()
            assert first is not None
            return count / (time.perf_counter() - first)
        finally:
            await consumer.stop()

    async def raw_latency(self, samples: int, rate: float) -> list[float]:
        """Send -> in the hands of a plain group consumer."""
        from aiokafka.abc import ConsumerRebalanceListener

        topic = await self.topic("raw-latency")
        consumer = self.consumer(self.name("raw-latency-group"))
        assigned = asyncio.Event()

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                return None

            async def on_partitions_assigned(self, partitions: Any) -> None:
                assigned.set()

        latencies: list[float] = []
        await consumer.start()
        producer = self.producer()
        await producer.start()
        try:
            consumer.subscribe([topic], listener=Listener())

            async def consume() -> None:
                while len(latencies) < samples:
                    batch = await consumer.getmany(timeout_ms=500)
                    now = time.time()
                    for records in batch.values():
                        latencies.extend(now - json.loads(r.value)["sent"] for r in records)
                    if batch:
                        await consumer.commit()

            reading = asyncio.create_task(consume())
            await wait_for(assigned, 30, "partitions assigned to the raw latency consumer")

            async def send(index: int, now: float) -> None:
                await (await producer.send(topic, body(index, now), partition=index % PARTITIONS))

            await paced(samples, rate, send)
            await asyncio.wait_for(reading, 30)
        finally:
            await producer.stop()
            await consumer.stop()
        return latencies

    def trigger(self, topic: str) -> dict[str, Any]:
        return {"type": "kafka", "name": "orders", "topics": [topic], "start_from": "earliest"}

    def connections(self, concurrency: int) -> dict[str, str]:
        return {"kafka": f"kafka://{self.broker}?partitions={PARTITIONS}&concurrency={concurrency}"}

    async def trigger_rate(
        self, count: int, concurrency: int, profile: cProfile.Profile | None = None
    ) -> tuple[Rate, int]:
        """The trigger turns ``count`` pre-produced records into started executions: starts/s."""
        from triggers.kafka_source import KafkaTriggerSource

        topic = await self.topic("trigger")
        await self.fill(topic, count)
        async with embedded(self.connections(concurrency)) as (runtime, first):
            trigger = {**self.trigger(topic), "group": self.name("trigger-group")}
            self.groups.append(trigger["group"])
            source = await build_source(runtime, trigger, KafkaTriggerSource)
            clock = StartClock(source.router, count, first)
            if profile is not None:
                profile.enable()
            await source.start()
            try:
                rate = await clock.rate()
            finally:
                if profile is not None:
                    profile.disable()
                await source.stop()
            assert source.stats.started == count, source.stats
            await settle(runtime, count)
            return rate, source.limit

    async def trigger_latency(self, samples: int, rate: float, concurrency: int) -> list[float]:
        """Send -> the first step of the execution the trigger started begins."""
        from triggers.kafka_source import KafkaTriggerSource

        topic = await self.topic("trigger-latency")
        async with embedded(self.connections(concurrency)) as (runtime, first):
            trigger = {**self.trigger(topic), "group": self.name("trigger-latency-group")}
            self.groups.append(trigger["group"])
            source = await build_source(runtime, trigger, KafkaTriggerSource)
            first.wanted = samples
            await source.start()
            producer = self.producer()
            await producer.start()
            try:
                await wait_for(source.assigned, 30, "partitions assigned to the Kafka trigger")

                async def send(index: int, now: float) -> None:
                    await (await producer.send(topic, body(index, now), partition=index % PARTITIONS))

                await paced(samples, rate, send)
                await wait_for(first.enough, 60, f"{samples} first steps")
            finally:
                await producer.stop()
                await source.stop()
            await settle(runtime, samples)
            return first.latencies

    async def cleanup(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.protocol.admin import DeleteGroupsRequest

        admin = AIOKafkaAdminClient(bootstrap_servers=self.broker, request_timeout_ms=10000)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            doomed = [t for t in dict.fromkeys(self.topics) if t in existing]
            if doomed:
                await admin.delete_topics(doomed)
            if self.groups:  # aiokafka's admin has no delete_consumer_groups: send the request
                with contextlib.suppress(Exception):
                    node = await admin.find_coordinator(self.groups[0])
                    await admin._send_request(DeleteGroupsRequest(self.groups), node_id=node)
        finally:
            await admin.close()


# -- RabbitMQ -------------------------------------------------------------------------------------


class AmqpParts:
    """Queues of one run (and the trigger's dead-letter exchange and queue), deleted by ``cleanup``."""

    def __init__(self, run: str, url: str = AMQP) -> None:
        self.run = run
        self.url = url
        self.queues: list[str] = []
        self.made = 0

    def name(self, part: str) -> str:
        self.made += 1
        queue = f"bench-trig-{self.run}-{self.made}-{part}"
        self.queues.append(queue)
        return queue

    async def fill(self, queue: str, count: int) -> None:
        """Declare ``queue`` durable and publish ``count`` persistent messages, confirms awaited."""
        import aio_pika

        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await channel.declare_queue(queue, durable=True)
            window = asyncio.Semaphore(PUBLISH_WINDOW)

            async def publish(index: int) -> None:
                async with window:
                    await channel.default_exchange.publish(message(index), routing_key=queue)

            await asyncio.gather(*(publish(index) for index in range(count)))
        finally:
            await connection.close()

    async def raw_rate(self, count: int, prefetch: int) -> float:
        """A plain consumer with ``prefetch`` acks every delivery: messages/s."""
        import aio_pika

        queue_name = self.name("raw")
        await self.fill(queue_name, count)
        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=prefetch)
            queue = await channel.declare_queue(queue_name, durable=True)
            done = asyncio.Event()
            acked, first, last = 0, 0.0, 0.0

            async def on_message(delivery: Any) -> None:
                nonlocal acked, first, last
                if not first:
                    first = time.perf_counter()
                json.loads(delivery.body)  # the trigger decodes every message too
                await delivery.ack()
                acked += 1
                if acked == count:
                    last = time.perf_counter()
                    done.set()

            tag = await queue.consume(on_message)
            await wait_for(done, 300, f"{count} raw AMQP acks")
            await queue.cancel(tag)
        finally:
            await connection.close()
        return count / (last - first)

    async def raw_latency(self, samples: int, rate: float, prefetch: int) -> list[float]:
        """Publish -> in the hands of a plain consumer."""
        import aio_pika

        queue_name = self.name("raw-latency")
        latencies: list[float] = []
        enough = asyncio.Event()
        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=prefetch)
            queue = await channel.declare_queue(queue_name, durable=True)

            async def on_message(delivery: Any) -> None:
                latencies.append(time.time() - json.loads(delivery.body)["sent"])
                await delivery.ack()
                if len(latencies) >= samples:
                    enough.set()

            tag = await queue.consume(on_message)
            await self.publish_paced(queue_name, samples, rate)
            await wait_for(enough, 60, f"{samples} raw AMQP deliveries")
            await queue.cancel(tag)
        finally:
            await connection.close()
        return latencies

    async def publish_paced(self, queue: str, samples: int, rate: float) -> None:
        import aio_pika

        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel(publisher_confirms=True)

            async def send(index: int, now: float) -> None:
                await channel.default_exchange.publish(message(index, now), routing_key=queue)

            await paced(samples, rate, send)
        finally:
            await connection.close()

    def trigger(self, queue: str, prefetch: int) -> dict[str, Any]:
        return {"type": "amqp", "name": "orders", "queue": queue, "prefetch": prefetch}

    async def trigger_rate(self, count: int, prefetch: int) -> Rate:
        from triggers.amqp_source import AmqpTriggerSource

        queue = self.name("trigger")
        await self.fill(queue, count)
        async with embedded({"amqp": self.url}) as (runtime, first):
            source = await build_source(runtime, self.trigger(queue, prefetch), AmqpTriggerSource)
            clock = StartClock(source.router, count, first)
            await source.start()
            try:
                rate = await clock.rate()
            finally:
                await source.stop()
            assert source.stats.started == count, source.stats
            await settle(runtime, count)
            return rate

    async def trigger_latency(self, samples: int, rate: float, prefetch: int) -> list[float]:
        from triggers.amqp_source import AmqpTriggerSource

        queue = self.name("trigger-latency")
        async with embedded({"amqp": self.url}) as (runtime, first):
            source = await build_source(runtime, self.trigger(queue, prefetch), AmqpTriggerSource)
            first.wanted = samples
            await source.start()
            try:
                await self.publish_paced(queue, samples, rate)
                await wait_for(first.enough, 60, f"{samples} first steps")
            finally:
                await source.stop()
            await settle(runtime, samples)
            return first.latencies

    async def cleanup(self) -> None:
        import aio_pika

        connection = await aio_pika.connect(self.url)
        try:
            for queue in self.queues:
                for name in (queue, f"{queue}.dead"):
                    channel = await connection.channel()
                    with contextlib.suppress(Exception):
                        await channel.queue_delete(name)
                    if not channel.is_closed:
                        await channel.close()
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(f"{queue}.dlx")
                if not channel.is_closed:
                    await channel.close()
        finally:
            await connection.close()


def message(index: int, sent: float = 0.0) -> Any:
    import aio_pika

    return aio_pika.Message(
        body(index, sent),
        message_id=f"order-{index:07d}",
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
