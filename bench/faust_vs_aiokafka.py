"""faust-streaming agents vs plain aiokafka (vs our KafkaTransport) on one 2-hop Kafka "step".

The step mirrors our command -> task -> command path, keyed by execution id:

    engine --request(task)--> worker --reply(command)--> engine

The engine side consumes replies in order per partition and, in the closed loop, produces the next
request for the same key (like ``on_command`` dispatching the next task); the worker side consumes
requests concurrently (tasks are independent) and produces the reply. Every produce waits for the
broker's ack (acks=all) and offsets are committed only after a record was handled.

Figures, all in the same run against the same broker:
  * round-trip (per-step) latency p50/p99, one step at a time (unloaded);
  * sustained steps/s with many keys in flight (closed loop); messages/s = 2 x steps/s;
  * faust probes: is a record whose agent raised committed anyway? how fast does an agent drain a
    queued backlog (its raw delivery rate, to tell CPU limits from hand-off latency)?

Variants: ``aiokafka`` (the floor), ``faust``, ``transport-strict`` and ``transport`` (our
KafkaTransport with ``command_concurrency`` 1 and the default). Decision and numbers:
docs/decisions/kafka-client.md.

Run: ``python -m bench.faust_vs_aiokafka [--broker 127.0.0.1:9092] [--seconds 8] [--linger-ms 0]
[--variants aiokafka,faust,transport-strict,transport]`` (about 1 min; topics are deleted after).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

PARTITIONS = 12
LATENCY_SAMPLES = 300
WINDOW = 1000  # keys (executions) in flight in the closed loop
LINGER_MS = 0  # the transport default; try --linger-ms 1
DRAIN = 20_000
Send = Callable[[bytes, bytes], Awaitable[None]]


@dataclass
class Result:
    name: str
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    steps_per_s: float = 0.0
    loaded_p50_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def msgs_per_s(self) -> float:
        return 2 * self.steps_per_s


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Probe:
    """Driver bookkeeping shared by every variant: stamps requests, times replies, runs the loop."""

    def __init__(self) -> None:
        self.send: Send | None = None  # produce a request (awaits the ack)
        self.waiters: dict[bytes, asyncio.Future[float]] = {}
        self.closed_loop_until = 0.0
        self.counting_from = 0.0
        self.counted = 0
        self.loaded: list[float] = []

    async def request(self, key: bytes) -> None:
        assert self.send is not None
        await self.send(key, json.dumps({"t0": time.perf_counter()}).encode())

    async def on_reply(self, key: bytes, value: bytes) -> None:
        """The engine's handler: time the step; in the closed loop, dispatch the next one."""
        now = time.perf_counter()
        elapsed = now - json.loads(value)["t0"]
        waiter = self.waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(elapsed)
        if now < self.closed_loop_until:
            if now >= self.counting_from:
                self.counted += 1
                self.loaded.append(elapsed)
            await self.request(key)

    async def step(self, key: bytes, timeout: float = 30.0) -> float:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[key] = future
        await self.request(key)
        return await asyncio.wait_for(future, timeout)

    async def measure(self, result: Result, seconds: float) -> Result:
        await self.step(b"warm-0", timeout=60.0)  # the groups are assigned once a step makes it
        for index in range(20):
            await self.step(b"warm-%d" % index)
        latencies = [await self.step(b"lat-%d" % (index % 50)) for index in range(LATENCY_SAMPLES)]
        result.p50_ms = percentile(latencies, 0.5) * 1000
        result.p99_ms = percentile(latencies, 0.99) * 1000
        start = time.perf_counter()
        self.counting_from = start + 2.0  # let the pipeline fill up first
        self.closed_loop_until = self.counting_from + seconds
        await asyncio.gather(*(self.request(b"exec-%d" % index) for index in range(WINDOW)))
        await asyncio.sleep(self.closed_loop_until - time.perf_counter())
        result.steps_per_s = self.counted / seconds
        result.loaded_p50_ms = percentile(self.loaded, 0.5) * 1000
        await asyncio.sleep(1.0)  # let the in-flight tail drain before stopping
        return result


# -- shared Kafka helpers ------------------------------------------------------------------------


async def create_topics(broker: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names])
    finally:
        await admin.close()


async def delete_topics(broker: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def new_producer(broker: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=broker, enable_idempotence=True, acks="all", linger_ms=LINGER_MS
    )


def new_consumer(broker: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


# -- (a) faust-streaming agents ------------------------------------------------------------------


async def run_faust(broker: str, seconds: float) -> Result:
    import faust

    prefix = f"bench-faust-{uuid.uuid4().hex[:8]}"
    await create_topics(broker, [f"{prefix}.req", f"{prefix}.rep", f"{prefix}.crash"])
    app = faust.App(
        prefix,
        broker=f"kafka://{broker}",
        store="memory://",
        datadir=tempfile.mkdtemp(prefix=f"{prefix}-"),  # not the working directory
        web_enabled=False,
        autodiscover=False,
        topic_partitions=PARTITIONS,
        producer_acks=-1,
        producer_linger=LINGER_MS / 1000,
        broker_commit_interval=0.2,
        loghandlers=[],
    )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw"}
    raw["value_serializer"] = "raw"
    requests = app.topic(f"{prefix}.req", partitions=PARTITIONS, **raw)
    replies = app.topic(f"{prefix}.rep", partitions=PARTITIONS, **raw)
    crash_topic = app.topic(f"{prefix}.crash", partitions=PARTITIONS, **raw)
    probe = Probe()

    async def send(key: bytes, value: bytes) -> None:
        await (await requests.send(key=key, value=value))

    probe.send = send

    @app.agent(requests, concurrency=64)
    async def worker(stream: Any) -> None:  # tasks: independent, run concurrently
        async for key, value in stream.items():
            await (await replies.send(key=key, value=value))

    @app.agent(replies, isolated_partitions=True)
    async def engine(stream: Any) -> None:  # commands: in order per partition, partitions in parallel
        async for key, value in stream.items():
            await probe.on_reply(key, value)

    @app.agent(crash_topic)
    async def crashing(stream: Any) -> None:
        async for _value in stream:
            raise RuntimeError("the event-log append failed")

    result = Result("faust-streaming 0.15.3 agents")
    await app.start()
    try:
        await probe.measure(result, seconds)
        result.notes.append(await faust_commits_failed_record(app, crash_topic, broker, prefix))
    finally:
        await app.stop()
        await delete_topics(broker, prefix)
    result.notes.append(await faust_drain(broker))
    return result


async def fill_topic(broker: str, topic: str) -> None:
    await create_topics(broker, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(topic, b"x" * 200, key=b"k%d" % i) for i in range(DRAIN)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def faust_drain(broker: str) -> str:
    """How fast a faust agent consumes a backlog (no round trip): its raw delivery rate."""
    import faust

    prefix = f"bench-drain-faust-{uuid.uuid4().hex[:8]}"
    await fill_topic(broker, f"{prefix}.t")
    app = faust.App(
        prefix,
        broker=f"kafka://{broker}",
        store="memory://",
        datadir=tempfile.mkdtemp(prefix=f"{prefix}-"),  # not the working directory
        web_enabled=False,
        autodiscover=False,
        topic_partitions=PARTITIONS,
        loghandlers=[],
    )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw"}
    topic = app.topic(f"{prefix}.t", value_serializer="raw", **raw)
    done, seen, first = asyncio.Event(), [0], [0.0]

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for _value in stream:
            first[0] = first[0] or time.perf_counter()
            seen[0] += 1
            if seen[0] == DRAIN:
                done.set()

    await app.start()
    try:
        await asyncio.wait_for(done.wait(), 60)
        rate = DRAIN / (time.perf_counter() - first[0])
    finally:
        await app.stop()
        await delete_topics(broker, prefix)
    return f"consume-only drain of {DRAIN:,} queued records: {rate:,.0f} msgs/s"


async def faust_commits_failed_record(app: Any, topic: Any, broker: str, prefix: str) -> str:
    """Send one record to an agent that raises, then read the group's committed offset."""
    metadata = await (await topic.send(key=b"k", value=b"v"))
    await asyncio.sleep(2.0)  # several commit intervals
    tp = TopicPartition(f"{prefix}.crash", metadata.partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, group_id=prefix, enable_auto_commit=False)
    await consumer.start()
    try:
        committed = await consumer.committed(tp)
    finally:
        await consumer.stop()
    lost = committed is not None and committed > metadata.offset
    verdict = "COMMITTED anyway (the record is lost)" if lost else "not committed"
    return f"agent raised on offset {metadata.offset}: committed offset {committed} -> {verdict}"


# -- (b) plain aiokafka with manual commits ----------------------------------------------------


class Committer:
    """Commits the offsets handed to it from a background task, off the processing path."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.offsets: dict[TopicPartition, int] = {}
        self.wake = asyncio.Event()

    def done(self, tp: TopicPartition, next_offset: int) -> None:
        self.offsets[tp] = max(next_offset, self.offsets.get(tp, 0))
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            offsets, self.offsets = self.offsets, {}
            await self.consumer.commit(offsets)
            await asyncio.sleep(0.05)


async def run_aiokafka(broker: str, seconds: float) -> Result:
    """Engine side: one task per partition, strictly in order. Worker side: each fetched batch at once."""
    prefix = f"bench-aiokafka-{uuid.uuid4().hex[:8]}"
    req, rep = f"{prefix}.req", f"{prefix}.rep"
    await create_topics(broker, [req, rep])
    producer = new_producer(broker)
    workers = new_consumer(broker, req, f"{prefix}.tasks")
    engines = new_consumer(broker, rep, f"{prefix}.commands")
    worker_commits, engine_commits = Committer(workers), Committer(engines)
    lanes: dict[TopicPartition, asyncio.Queue[ConsumerRecord[bytes, bytes]]] = {}
    probe = Probe()

    async def send(key: bytes, value: bytes) -> None:
        await (await producer.send(req, value, key=key))

    async def reply(record: ConsumerRecord[bytes, bytes]) -> None:
        assert record.key is not None and record.value is not None
        await (await producer.send(rep, record.value, key=record.key))

    async def engine_lane(tp: TopicPartition, queue: asyncio.Queue[ConsumerRecord[bytes, bytes]]) -> None:
        while True:
            record = await queue.get()
            assert record.key is not None and record.value is not None
            await probe.on_reply(record.key, record.value)
            engine_commits.done(tp, record.offset + 1)

    async def work_loop() -> None:
        while True:
            batch = await workers.getmany(timeout_ms=100, max_records=500)
            await asyncio.gather(*(reply(r) for records in batch.values() for r in records))
            for tp, records in batch.items():
                worker_commits.done(tp, records[-1].offset + 1)

    async def engine_loop() -> None:
        while True:
            batch = await engines.getmany(timeout_ms=100, max_records=500)
            for tp, records in batch.items():
                if tp not in lanes:
                    lanes[tp] = asyncio.Queue()
                    loops.append(asyncio.create_task(engine_lane(tp, lanes[tp])))
                for record in records:
                    lanes[tp].put_nowait(record)

    probe.send = send
    result = Result("aiokafka 0.14 (partition order, manual commits)")
    await producer.start()
    await workers.start()
    await engines.start()
    loops = [asyncio.create_task(c) for c in (work_loop(), engine_loop(), worker_commits.run())]
    loops.append(asyncio.create_task(engine_commits.run()))
    try:
        await probe.measure(result, seconds)
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await workers.stop()
        await engines.stop()
        await producer.stop()
        await delete_topics(broker, prefix)
    return result


# -- (c) our KafkaTransport, the same step through submit/on_command/dispatch/on_task ----------


async def run_transport(broker: str, seconds: float, command_concurrency: int = 16) -> Result:
    from orchestrator.backends.kafka.transport import KafkaTransport
    from orchestrator.core.commands import Command, CompleteStep
    from orchestrator.ports import StepTask

    prefix = f"bench-transport-{uuid.uuid4().hex[:8]}"
    transport = KafkaTransport.from_url(
        f"kafka://{broker}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}"
        f"&partitions={PARTITIONS}&command_concurrency={command_concurrency}&linger_ms={LINGER_MS}"
    )
    probe = Probe()

    def task_for(key: bytes, value: bytes) -> StepTask:
        return StepTask(key.decode(), "bench", "s", 1, "a", "noop", {}, value.decode(), "k")

    async def on_command(command: Command) -> None:
        assert isinstance(command, CompleteStep)
        await probe.on_reply(command.execution_id.encode(), command.output.encode())

    async def on_task(task: StepTask) -> None:
        answer = CompleteStep(execution_id=task.execution_id, now=time.time(), step="s", attempt_id="a")
        await transport.submit(dataclasses.replace(answer, output=task.args))

    async def send(key: bytes, value: bytes) -> None:
        await transport.dispatch(task_for(key, value))

    probe.send = send
    order = "partition order" if command_concurrency == 1 else f"key order, {command_concurrency}/partition"
    result = Result(f"KafkaTransport ({order})")
    await transport.start(on_command, on_task)
    try:
        await probe.measure(result, seconds)
    finally:
        await transport.stop()
        await delete_topics(broker, prefix)
    return result


# -- report -------------------------------------------------------------------------------------


def report(results: list[Result]) -> str:
    floor = next((r for r in results if r.name.startswith("aiokafka")), results[0])
    lines = [
        f"| variant | step p50 | step p99 | p50 / aiokafka p50 | steps/s (closed loop, {WINDOW} keys) "
        "| msgs/s | p50 under load |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.p50_ms:.2f} ms | {r.p99_ms:.2f} ms | {r.p50_ms / floor.p50_ms:.2f}x "
            f"| {r.steps_per_s:,.0f} | {r.msgs_per_s:,.0f} | {r.loaded_p50_ms:.1f} ms |"
        )
    for r in results:
        lines += [f"- {r.name}: {note}" for note in r.notes]
    return "\n".join(lines)


async def main(broker: str, seconds: float, variants: list[str]) -> None:
    runners: dict[str, Callable[[str, float], Awaitable[Result]]] = {
        "aiokafka": run_aiokafka,
        "faust": run_faust,
        "transport": run_transport,
        "transport-strict": lambda broker, seconds: run_transport(broker, seconds, command_concurrency=1),
    }
    load = os.getloadavg()[0]
    print(f"broker {broker}, {os.cpu_count()} cores, load {load:.1f}, linger_ms={LINGER_MS}", flush=True)
    results = []
    for name in variants:
        started = time.perf_counter()
        results.append(await runners[name](broker, seconds))
        print(f"{name}: done in {time.perf_counter() - started:.1f}s", flush=True)
    print(report(results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="127.0.0.1:9092")
    parser.add_argument("--seconds", type=float, default=8.0, help="closed-loop measuring time per variant")
    parser.add_argument("--variants", default="aiokafka,faust,transport-strict,transport")
    parser.add_argument("--linger-ms", type=int, default=LINGER_MS, help="producer linger for every variant")
    args = parser.parse_args()
    LINGER_MS = args.linger_ms
    logging.basicConfig(level=logging.ERROR)
    for noisy in ("aiokafka", "faust.agents.actor"):  # leader elections of new topics; the crash probe
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.broker, args.seconds, args.variants.split(",")))
