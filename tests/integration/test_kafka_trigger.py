"""The Kafka topic trigger against the real broker: messages published with kcat start executions.

Each test uses topics of its own. The runtime is embedded (SQLite in tmp_path, in-process
transport); only the trigger talks to Kafka. The crash test runs a real ``orchestrator serve``
process and SIGKILLs it; the restart test stops and starts the shared broker (and always starts
it again).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import OutOfOrderSequenceNumber

from orchestrator.backends.urls import EVENT_LOGS, open_backend
from orchestrator.ports import ExecutionQuery
from orchestrator.runtime import Runtime, execution_id_for
from orchestrator.settings import Settings
from schemas.cloudevents import structured, to_kafka_binary
from schemas.validation import parse_definition
from tests.e2e.serverproc import ServerProcess, cli_env, http_json
from tests.recording_instruments import RecordingInstruments
from triggers.kafka_source import KafkaTriggerSource
from triggers.sources import SourceSpec

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services"

ORDER_SCHEMA = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
ECHO_STEPS = [
    {"name": "record", "type": "task", "connector": "noop", "input": {"order": "input"}, "next": "done"},
    {"name": "done", "type": "succeed", "output": "steps.record.order"},
]


def unique(name: str) -> str:
    return f"kt.{uuid.uuid4().hex[:10]}.{name}"


def bootstrap(kafka_url: str) -> str:
    return kafka_url.removeprefix("kafka://").split("?", 1)[0]


def kcat_produce(
    kafka_url: str,
    topic: str,
    values: list[str],
    *,
    key: str | None = None,
    headers: tuple[str, ...] = (),
) -> None:
    """Publish one message per value (values must not contain newlines) with kcat."""
    command = ["kcat", "-b", bootstrap(kafka_url), "-P", "-t", topic]
    if key is not None:
        command += ["-k", key]
    for header in headers:
        command += ["-H", header]
    result = subprocess.run(
        command, input="\n".join(values) + "\n", capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr


def kcat_read(kafka_url: str, topic: str) -> list[dict[str, Any]]:
    """Every record of a topic (kcat -J): key, payload and headers as a dict."""
    result = subprocess.run(
        ["kcat", "-b", bootstrap(kafka_url), "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    for record in records:
        raw = record.get("headers") or []
        record["headers"] = dict(zip(raw[::2], raw[1::2], strict=True))
    return records


async def read_records(kafka_url: str, topic: str, count: int) -> list[tuple[bytes, dict[str, bytes]]]:
    """The first ``count`` records of a topic as (value, headers), read with aiokafka."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap(kafka_url), auto_offset_reset="earliest")
    await consumer.start()
    found: list[tuple[bytes, dict[str, bytes]]] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += [(r.value or b"", dict(r.headers)) for r in records]
    finally:
        await consumer.stop()
    return found


def services(*args: str) -> None:
    result = subprocess.run([str(SERVICES), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


async def executions(runtime: Runtime, workflow: str) -> list[Any]:
    found, cursor = [], None
    while True:
        page = await runtime.log.list_executions(ExecutionQuery(workflow=workflow, limit=500, cursor=cursor))
        found += page.items
        cursor = page.next_cursor
        if cursor is None:
            return found


async def count_executions(runtime: Runtime, workflow: str, n: int, timeout: float = 30.0) -> list[Any]:
    async def enough() -> bool:
        return len(await executions(runtime, workflow)) >= n

    await eventually(enough, timeout, f"{n} executions of {workflow}")
    return await executions(runtime, workflow)


async def committed(kafka_url: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(kafka_url), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


class Harness:
    """An embedded runtime plus the trigger sources a test builds; stops them all at the end."""

    def __init__(self, runtime: Runtime, kafka_url: str, recorded: RecordingInstruments) -> None:
        self.runtime = runtime
        self.recorded = recorded  # the runtime's instruments
        self.kafka_url = kafka_url
        self.sources: list[KafkaTriggerSource] = []

    async def register(self, definition: dict[str, Any]) -> int:
        stored = await self.runtime.register(parse_definition(definition))
        assert stored.version is not None
        return stored.version

    async def source(
        self, definition: dict[str, Any], options: str = "partitions=4", *, wait: bool = True
    ) -> KafkaTriggerSource:
        version = await self.register(definition)
        trigger = parse_definition(definition).triggers[0]
        settings = dataclasses.replace(
            self.runtime.settings, connections={"kafka": f"{self.kafka_url}?{options}"}
        )
        source = KafkaTriggerSource(SourceSpec(definition["name"], version, trigger, self.runtime, settings))
        await source.start()
        self.sources.append(source)
        if wait:
            await asyncio.wait_for(source.assigned.wait(), 30)
        return source

    async def stop(self, source: KafkaTriggerSource) -> None:
        self.sources.remove(source)
        await source.stop()


@pytest.fixture
async def harness(kafka_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    settings = Settings(
        event_log_url=f"sqlite:///{tmp_path / 'orchestrator.db'}",
        connections={"kafka": kafka_url},
        retention_interval=0,
    )
    recorded = RecordingInstruments()
    async with Runtime(settings, instruments=recorded) as runtime:
        harness = Harness(runtime, kafka_url, recorded)
        try:
            yield harness
        finally:
            for source in list(harness.sources):
                await harness.stop(source)


def orders(topic: str, **trigger: Any) -> dict[str, Any]:
    name = trigger.pop("workflow", "orders")
    return {
        "name": name,
        "input_schema": trigger.pop("input_schema", ORDER_SCHEMA),
        "triggers": [{"type": "kafka", "name": "orders", "topics": [topic], "start_from": "earliest", **trigger}],
        "steps": ECHO_STEPS,
    }


# -- starting executions ---------------------------------------------------------------------


async def test_plain_json_and_cloudevents_start_executions(harness: Harness) -> None:
    topic = unique("orders")
    source = await harness.source(orders(topic))
    url = harness.kafka_url
    kcat_produce(url, topic, ['{"id": "plain-1", "total": 3}'], key="customer-1", headers=("origin=shop",))
    value, ce_headers = to_kafka_binary(
        {"id": "evt-1", "source": "/shop", "type": "order.created"}, {"id": "binary-1", "total": 5}
    )
    kcat_produce(
        url,
        topic,
        [value.decode()],
        key="customer-2",
        headers=tuple(f"{name}={raw.decode()}" for name, raw in ce_headers),
    )
    event = structured({"id": "evt-2", "source": "/shop", "type": "order.created"}, {"id": "structured-1"})
    kcat_produce(url, topic, [event.decode()], headers=("content-type=application/cloudevents+json",))

    found = await count_executions(harness.runtime, "orders", 3)
    assert len(found) == 3
    inputs = {}
    for summary in found:
        state = await harness.runtime.wait(summary.execution_id, timeout=30)
        assert state.status == "succeeded"
        inputs[state.input["id"]] = (summary.execution_id, state)
    assert sorted(inputs) == ["binary-1", "plain-1", "structured-1"]
    assert inputs["plain-1"][1].output == {"id": "plain-1", "total": 3}
    assert inputs["binary-1"][1].input == {"id": "binary-1", "total": 5}  # the CloudEvent's data only

    # CloudEvents are keyed by source + id; a plain message by its topic/partition/offset.
    assert inputs["binary-1"][0] == execution_id_for("default", "orders", "kafka:orders:ce:/shop/evt-1")
    assert inputs["structured-1"][0] == execution_id_for("default", "orders", "kafka:orders:ce:/shop/evt-2")
    history = await harness.runtime.history(inputs["plain-1"][0])
    started = history[0]
    assert started.type == "ExecutionStarted"
    assert started.actor == "trigger:orders/orders"
    assert {e.tenant for e in history} == {"default"} and all(e.actor for e in history)
    assert started.data["dedup_key"].startswith(f"kafka:orders:kafka:{topic}/")
    assert [e.type for e in history][-1] == "ExecutionSucceeded"
    assert "StepSucceeded" in [e.type for e in history]
    await eventually(lambda: _true(source.stats.started == 3), 10, "stats")
    assert source.stats.received == 3 and source.stats.dead_lettered == 0


async def _true(value: bool) -> bool:
    return value


async def test_filter_mapping_and_configured_message_id(harness: Harness) -> None:
    topic = unique("mapped")
    definition = orders(
        topic,
        filter="data.kind == 'order'",
        input="{id: data.order, customer: key, region: headers.region, topic: topic}",
        message_id="data.order",
    )
    source = await harness.source(definition)
    url = harness.kafka_url
    kcat_produce(url, topic, ['{"kind": "order", "order": "A"}'], key="ada", headers=("region=eu",))
    kcat_produce(url, topic, ['{"kind": "order", "order": "A"}'], key="ada", headers=("region=eu",))  # again
    kcat_produce(url, topic, ['{"kind": "refund", "order": "R"}'], key="ada")
    kcat_produce(url, topic, ['{"kind": "order", "order": "B"}'], key="bob", headers=("region=us",))

    await eventually(lambda: _true(source.stats.received == 4), 30, "4 messages received")
    await eventually(lambda: _true(source.stats.started + source.stats.duplicates == 3), 10, "outcomes")
    found = await executions(harness.runtime, "orders")
    states = {s.input["id"]: s for s in [await harness.runtime.state(f.execution_id) for f in found]}
    assert sorted(states) == ["A", "B"]
    assert states["A"].input == {"id": "A", "customer": "ada", "region": "eu", "topic": topic}
    assert states["B"].input == {"id": "B", "customer": "bob", "region": "us", "topic": topic}
    assert states["A"].execution_id == execution_id_for("default", "orders", "kafka:orders:id:A")
    assert (source.stats.started, source.stats.duplicates, source.stats.filtered) == (2, 1, 1)


async def test_the_same_cloudevent_twice_starts_one_execution(harness: Harness) -> None:
    topic = unique("ce-dedup")
    source = await harness.source(orders(topic))
    event = structured({"id": "same", "source": "/billing", "type": "invoice"}, {"id": "inv-1"})
    for _ in range(2):  # e.g. a producer retry: two records, two offsets, one event
        kcat_produce(
            harness.kafka_url, topic, [event.decode()], headers=("content-type=application/cloudevents+json",)
        )
    await eventually(lambda: _true(source.stats.started + source.stats.duplicates == 2), 30, "2 outcomes")
    found = await executions(harness.runtime, "orders")
    assert [f.execution_id for f in found] == [execution_id_for("default", "orders", "kafka:orders:ce:/billing/same")]
    assert (source.stats.started, source.stats.duplicates) == (1, 1)


async def test_correlation_delivers_each_event_once(harness: Harness) -> None:
    """A waiting execution receives the event; the same event redelivered is not received again."""
    topic = unique("approvals")
    await harness.register(
        {
            "name": "approval",
            "steps": [
                {"name": "first", "type": "wait_for_event", "event": "decision", "correlation_key": "input.request", "next": "second"},
                {"name": "second", "type": "wait_for_event", "event": "decision", "correlation_key": "input.request", "next": "done"},
                {"name": "done", "type": "succeed", "output": "{first: steps.first, second: steps.second}"},
            ],
        }
    )
    started = await harness.runtime.start_execution("approval", {"request": "r-42"})
    execution = started.execution_id

    async def waiting_on(step: str) -> bool:
        state = await harness.runtime.state(execution)
        return step in state.active

    await eventually(lambda: waiting_on("first"), 10, "waiting on the first event")
    definition = {
        "name": "approvals_listener",
        "triggers": [
            {
                "type": "kafka",
                "name": "decisions",
                "topics": [topic],
                "start_from": "earliest",
                "correlation": {"event": "decision", "key": "data.request", "payload": "data.answer"},
            }
        ],
        "steps": [{"name": "unused", "type": "succeed"}],
    }
    # The listener's own workflow is never started: correlation triggers only deliver.
    source = await harness.source(definition)
    one = structured({"id": "d-1", "source": "/approvals", "type": "decision"}, {"request": "r-42", "answer": "yes"})
    two = structured({"id": "d-2", "source": "/approvals", "type": "decision"}, {"request": "r-42", "answer": "sure"})
    ce = ("content-type=application/cloudevents+json",)
    kcat_produce(harness.kafka_url, topic, [one.decode()], key="r-42", headers=ce)
    await eventually(lambda: waiting_on("second"), 30, "the first event received")
    kcat_produce(harness.kafka_url, topic, [one.decode()], key="r-42", headers=ce)  # redelivered
    kcat_produce(harness.kafka_url, topic, [two.decode()], key="r-42", headers=ce)

    state = await harness.runtime.wait(execution, timeout=30)
    assert state.status == "succeeded"
    assert state.output == {"first": "yes", "second": "sure"}
    received = await harness.runtime.history(execution, types={"EventReceived"})
    assert len(received) == 2
    assert await executions(harness.runtime, "approvals_listener") == []
    # the redelivered one reached nobody (the execution had taken it): parked, not silently dropped
    assert source.stats.delivered == 2 and source.stats.dead_lettered == 1 and source.stats.started == 0


# -- bad messages ------------------------------------------------------------------------------


async def test_bad_messages_are_dead_lettered_and_do_not_block(harness: Harness) -> None:
    topic = unique("bad")
    source = await harness.source(orders(topic), options="partitions=1")
    url = harness.kafka_url
    kcat_produce(url, topic, ["this is not json"], key="k", headers=("trace=t-1",))
    kcat_produce(url, topic, ['{"id": 5}'], key="k")  # fails the input schema
    kcat_produce(url, topic, ['{"id": "x"}'], key="k", headers=("ce_specversion=1.0", "ce_id=1"))  # bad CE
    kcat_produce(url, topic, ['{"id": "good"}'], key="k")

    found = await count_executions(harness.runtime, "orders", 1)
    assert [(await harness.runtime.state(f.execution_id)).input for f in found] == [{"id": "good"}]
    await eventually(lambda: _true(source.stats.dead_lettered == 3), 10, "3 dead letters")

    dead = kcat_read(url, f"{topic}.dlq")
    assert [d["payload"] for d in dead] == ["this is not json", '{"id": 5}', '{"id": "x"}']
    assert {d["key"] for d in dead} == {"k"}
    reasons = [d["headers"]["x-orchestrator-error"] for d in dead]
    assert "not JSON" in reasons[0]
    assert "input schema" in reasons[1] and "5 is not of type 'string'" in reasons[1]
    assert "missing required attribute" in reasons[2] and "'source'" in reasons[2]
    assert dead[0]["headers"]["trace"] == "t-1"  # the original headers are kept
    assert dead[2]["headers"]["ce_id"] == "1"
    for offset, record in enumerate(dead):
        assert record["headers"]["x-orchestrator-source"] == f"{topic}/0/{offset}"
        assert record["headers"]["x-orchestrator-trigger"] == "orders"
        assert record["headers"]["x-orchestrator-workflow"] == "orders"

    async def all_committed() -> bool:
        return (await committed(url, source.group, topic, 1)) == {0: 4}

    await eventually(all_committed, 10, "the offset after the good message committed")
    outcomes = harness.recorded.of("trigger_outcome")
    assert sorted(outcomes) == [("kafka", "orders", "orders", "dead_lettered")] * 3 + [
        ("kafka", "orders", "orders", "started")
    ]

    async def lag_reported() -> bool:
        return any(args[:3] == (source.group, topic, 0) for args in harness.recorded.of("consumer_lag"))

    await eventually(lag_reported, 10, "the consumer lag of the trigger's partition")
    assert all(lag >= 0 for *_, lag in harness.recorded.of("consumer_lag"))


POISON = [  # (value, what the dead letter's reason says); the filter needs comparable items
    (b'{"order": {"id": "a"}, "items": [' + b"7" * 5000 + b"]}", "longer than 4300 digits"),
    (b'{"order": ' + b"[" * 50_000, "nested deeper than"),
    (b'{"order": {"id": "\xff"}}', "not UTF-8"),
    (b'{"order": {"id": "n"}, "items": [NaN]}', "NaN is not valid JSON"),
    (b'{"order": {"id": "i"}, "items": 1e400}', "too large for a JSON number"),
    (b'{"order": {"id": "m"}, "items": [{"k": 1}, {"k": "x"}]}', "cannot compare these values"),
]


async def test_undecodable_records_and_failing_expressions_are_dead_lettered(harness: Harness) -> None:
    """Before, a huge integer or deep nesting escaped the decoder (ValueError, RecursionError) and
    the partition was retried forever; a filter comparing a string with a number likewise."""
    topic = unique("poison")
    definition = orders(topic, filter="max_by(data.items, &k) != null", input="data.order")
    source = await harness.source(definition, options="partitions=1")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(harness.kafka_url))
    await producer.start()
    try:
        for value, _ in POISON:
            await producer.send_and_wait(topic, value, key=b"k")
        await producer.send_and_wait(topic, b'{"order": {"id": "good"}, "items": [{"k": 1}, {"k": 2}]}', key=b"k")
    finally:
        await producer.stop()

    found = await count_executions(harness.runtime, "orders", 1)
    assert [(await harness.runtime.state(f.execution_id)).input for f in found] == [{"id": "good"}]
    await eventually(lambda: _true(source.stats.dead_lettered == len(POISON)), 10, "every poison parked")
    parked = await read_records(harness.kafka_url, f"{topic}.dlq", len(POISON))  # kcat -J: not UTF-8
    assert [value for value, _ in parked] == [value for value, _ in POISON]  # the bytes as they came
    for (_, headers), (_, expected) in zip(parked, POISON, strict=True):
        assert expected in headers["x-orchestrator-error"].decode(), headers

    async def all_committed() -> bool:
        return (await committed(harness.kafka_url, source.group, topic, 1)) == {0: len(POISON) + 1}

    await eventually(all_committed, 10, "the offset after the good message committed")


# -- failures, throughput, rebalances ----------------------------------------------------------


async def test_an_unknown_outcome_is_retried_and_not_committed(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """accept raising (e.g. the event log down) holds the partition's commit point and retries."""
    topic = unique("flaky")
    source = await harness.source(orders(topic, message_id="data.id"), options="partitions=1")
    real_accept = source.router.accept
    outage = {"on": True, "calls": 0}

    async def accept(message: Any) -> Any:
        if outage["on"]:
            outage["calls"] += 1
            raise ConnectionError("event log unreachable")
        return await real_accept(message)

    source.router.accept = accept  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING, logger="triggers.kafka_source")
    kcat_produce(harness.kafka_url, topic, [json.dumps({"id": f"o{i}"}) for i in range(20)])
    await asyncio.sleep(2.0)  # down for a while: the backoff grows (0.1, 0.2, 0.4, 0.8 s)
    assert await executions(harness.runtime, "orders") == []
    assert (await committed(harness.kafka_url, source.group, topic, 1))[0] in (None, 0)
    outage["on"] = False

    found = await count_executions(harness.runtime, "orders", 20)
    await asyncio.sleep(0.5)
    inputs = [(await harness.runtime.state(f.execution_id)).input["id"] for f in found]
    assert sorted(inputs) == sorted(f"o{i}" for i in range(20))
    assert source.stats.last_error == "ConnectionError: event log unreachable"
    # Each retry probes with the first unfinished record alone: a handful of calls, not 20 per round.
    assert 3 <= outage["calls"] <= 20 + 6, outage["calls"]
    failures = [r for r in caplog.records if "failed, not committed" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]  # one warning per streak
    assert any("recovered after" in r.getMessage() for r in caplog.records)

    async def all_committed() -> bool:
        return (await committed(harness.kafka_url, source.group, topic, 1)) == {0: 20}

    await eventually(all_committed, 10, "all 20 committed")


async def test_throughput_and_rebalance_between_two_consumers(harness: Harness) -> None:
    """Two sources share a group; the second joins mid-stream and then leaves: every message
    becomes exactly one execution. Prints the rate of the first stretch."""
    topic = unique("many")
    n = 3000
    definition = orders(topic, message_id="data.id", workflow="bulk", start_from="earliest")
    first = await harness.source(definition, options="partitions=6")
    lines = [json.dumps({"id": f"m{i}"}) for i in range(n)]
    began = time.monotonic()
    kcat_produce(harness.kafka_url, topic, lines)
    await count_executions(harness.runtime, "bulk", n // 3, timeout=60)
    rate = (n // 3) / (time.monotonic() - began)
    second = await harness.source(definition, options="partitions=6", wait=False)
    await count_executions(harness.runtime, "bulk", 2 * n // 3, timeout=60)
    await harness.stop(second)
    found = await count_executions(harness.runtime, "bulk", n, timeout=120)
    await asyncio.sleep(1.0)
    found = await executions(harness.runtime, "bulk")
    assert len(found) == n
    ids = {f.execution_id for f in found}
    assert ids == {execution_id_for("default", "bulk", f"kafka:orders:id:m{i}") for i in range(n)}
    assert first.stats.started + second.stats.started == n
    print(f"\nkafka trigger: {rate:.0f} starts/s (embedded SQLite, concurrency 64)")


async def test_stop_commits_and_the_next_source_resumes_there(harness: Harness) -> None:
    topic = unique("resume")
    definition = orders(topic, workflow="resume")
    first = await harness.source(definition, options="partitions=2")
    kcat_produce(harness.kafka_url, topic, [json.dumps({"id": f"a{i}"}) for i in range(10)], key="k")
    await count_executions(harness.runtime, "resume", 10)
    await harness.stop(first)
    kcat_produce(harness.kafka_url, topic, [json.dumps({"id": f"b{i}"}) for i in range(5)], key="k")
    second = await harness.source(definition, options="partitions=2")
    await count_executions(harness.runtime, "resume", 15)
    await asyncio.sleep(0.5)
    assert second.stats.received == 5  # nothing before the stop is read again
    assert (second.stats.started, second.stats.duplicates) == (5, 0)


# -- broker restart ----------------------------------------------------------------------------


async def test_broker_restart_mid_stream_loses_and_duplicates_nothing(harness: Harness) -> None:
    topic = unique("outage")
    n = 600
    source = await harness.source(orders(topic, message_id="data.id", workflow="outage"), options="partitions=4")
    def new_producer() -> AIOKafkaProducer:
        return AIOKafkaProducer(bootstrap_servers=bootstrap(harness.kafka_url), enable_idempotence=True, acks="all")

    producer = new_producer()
    await producer.start()

    async def produce() -> None:
        nonlocal producer
        started = True
        for i in range(n):
            while True:  # through the outage: a resend is a duplicate record, deduplicated by data.id
                try:
                    if not started:
                        await producer.start()
                        started = True
                    await (await producer.send(topic, json.dumps({"id": f"m{i}"}).encode(), key=f"k{i % 7}".encode()))
                    break
                except OutOfOrderSequenceNumber:
                    # The restarted broker lost this producer's sequence state: an idempotent
                    # producer cannot go on after that, so the sender starts a new one.
                    await producer.stop()
                    producer, started = new_producer(), False
                    await asyncio.sleep(0.5)
                except Exception:
                    if not started:  # the new producer could not start yet: a fresh one next time
                        await producer.stop()
                        producer = new_producer()
                    await asyncio.sleep(0.5)
            await asyncio.sleep(0.005)

    producing = asyncio.create_task(produce())
    try:
        await count_executions(harness.runtime, "outage", 50, timeout=60)
        assert not producing.done() and len(await executions(harness.runtime, "outage")) < n
        try:
            await asyncio.to_thread(services, "stop", "kafka")
            await asyncio.sleep(3)
        finally:
            await asyncio.to_thread(services, "start", "kafka")
        await asyncio.wait_for(producing, 180)
    finally:
        producing.cancel()
        await asyncio.gather(producing, return_exceptions=True)
        await producer.stop()
    found = await count_executions(harness.runtime, "outage", n, timeout=180)
    await asyncio.sleep(1.0)
    found = await executions(harness.runtime, "outage")
    assert len(found) == n
    assert {f.execution_id for f in found} == {
        execution_id_for("default", "outage", f"kafka:orders:id:m{i}") for i in range(n)
    }
    assert source.stats.started == n


# -- a real server, SIGKILLed mid-stream --------------------------------------------------------


def test_serve_killed_mid_stream_starts_each_message_once(kafka_url: str, tmp_path: Path) -> None:
    """SIGKILL a real server mid-stream and restart it: every message is one execution; the
    restarted server starts exactly the ones the killed one had not, the rest are duplicates."""
    topic = unique("crash")
    n = 1500
    definition = orders(topic, message_id="data.id", workflow="crashy")
    definition["steps"] = [
        {
            "name": "slow",
            "type": "task",
            "connector": "python",
            "config": {"function": "tests.integration.steps:pause"},
            "input": {"n": "`0`", "seconds": "`0.05`"},
        }
    ]
    path = tmp_path / "crashy.yaml"
    path.write_text(yaml.safe_dump(definition))
    db = tmp_path / "orchestrator.db"
    env = cli_env(f"sqlite:///{db}", {"ORCHESTRATOR_CONNECTION_KAFKA": f"{kafka_url}?partitions=4&concurrency=16"})
    server = ServerProcess(env, ["--definitions", str(path)], tmp_path / "server.log")
    server.start()
    try:
        kcat_produce(kafka_url, topic, [json.dumps({"id": f"m{i}"}) for i in range(n)])
        asyncio.run(_wait_for_count(db, "crashy", n // 4, 60, server))
        server.kill()
        killed_at = asyncio.run(_count(db, "crashy"))  # final: the killed process wrote no more
        assert killed_at < n, "consumed everything before the kill; make the stream longer"
        server.start()
        asyncio.run(_wait_for_count(db, "crashy", n, 120, server))
        time.sleep(1.0)
        stats = _trigger_stats(server.url, "crashy", "orders")
    finally:
        server.stop()
    ids = asyncio.run(_ids(db, "crashy"))
    assert len(ids) == n
    assert ids == {execution_id_for("default", "crashy", f"kafka:orders:id:m{i}") for i in range(n)}
    assert stats["started"] == n - killed_at
    assert stats["dead_lettered"] == 0
    print(f"\nkilled after {killed_at} of {n}; the restart started {stats['started']}, "
          f"{stats['duplicates']} redelivered records were duplicates")


def _trigger_stats(url: str, workflow: str, name: str) -> dict[str, Any]:
    status, body = http_json("GET", url + "/api/v1/triggers")
    assert status == 200, body
    items = body["triggers"] if isinstance(body, dict) else body
    found = [t for t in items if t["workflow"] == workflow and t["name"] == name]
    assert len(found) == 1 and found[0]["stats"] is not None, body
    stats: dict[str, Any] = found[0]["stats"]
    return stats


async def _ids(db: Path, workflow: str) -> set[str]:
    """The executions in the server's event log (read beside the server; SQLite WAL)."""
    event_log = open_backend(EVENT_LOGS, f"sqlite:///{db}", "event log")
    await event_log.start()
    try:
        found, cursor = set(), None
        while True:
            page = await event_log.list_executions(ExecutionQuery(workflow=workflow, limit=500, cursor=cursor))
            found |= {s.execution_id for s in page.items}
            cursor = page.next_cursor
            if cursor is None:
                return found
    finally:
        await event_log.stop()


async def _count(db: Path, workflow: str) -> int:
    return len(await _ids(db, workflow))


async def _wait_for_count(db: Path, workflow: str, n: int, timeout: float, server: ServerProcess) -> None:
    deadline = time.monotonic() + timeout
    while await _count(db, workflow) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {n} executions after {timeout}s:\n{server.output()[-4000:]}")
        await asyncio.sleep(0.2)


async def test_dead_letters_are_listed_and_one_moved_back_after_the_fix(harness: Harness) -> None:
    """A record refused by the input schema is parked; listed with its reason; once the schema
    accepts it, moving it back starts its execution, and its old reason does not travel along."""
    from orchestrator.ports import UnknownDeadLetter
    from triggers.dead_letter_queues import dead_letter_queue

    topic = unique("moveback")
    definition = orders(topic)
    source = await harness.source(definition, options="partitions=2")
    kcat_produce(harness.kafka_url, topic, ['{"id": 7}'], key="k", headers=("trace=t-7",))
    await eventually(lambda: _true(source.stats.dead_lettered == 1), 20, "the record parked")
    queue = dead_letter_queue(parse_definition(definition).triggers[0], harness.kafka_url)
    assert queue.destination == f"kafka topic {topic}.dlq"
    [letter] = await queue.list(10)
    assert "input schema" in letter.error and letter.value == '{"id": 7}' and letter.key == "k"
    assert letter.source.startswith(f"{topic}/") and letter.headers["trace"] == "t-7"
    with pytest.raises(UnknownDeadLetter):
        await queue.move_back("0:999999")
    with pytest.raises(UnknownDeadLetter):
        await queue.move_back("nonsense")
    assert await executions(harness.runtime, "orders") == []
    await harness.register({**definition, "input_schema": {"type": "object"}})  # the fix
    from aiohttp.test_utils import TestClient, TestServer

    from orchestrator.process import build_app

    settings = dataclasses.replace(harness.runtime.settings, auth=False)
    async with TestClient(TestServer(build_app(harness.runtime, settings))) as client:
        base = "/api/v1/triggers/orders/orders/dead-letters"
        listing = await (await client.get(base)).json()
        assert listing["destination"] == queue.destination and [i["id"] for i in listing["items"]] == [letter.id]
        missing = await client.post(f"{base}/0:999999/redrive")
        assert missing.status == 404 and (await missing.json())["error"]["code"] == "unknown_dead_letter"
        moved = await client.post(f"{base}/{letter.id}/redrive")
        assert moved.status == 200, await moved.text()
        assert (await moved.json())["moved_to"] == f"kafka topic {topic}"
    [started] = await count_executions(harness.runtime, "orders", 1)
    assert (await harness.runtime.state(started.execution_id)).input == {"id": 7}
    moved = [headers for value, headers in await read_records(harness.kafka_url, topic, 2) if value == b'{"id": 7}']
    assert len(moved) == 2 and not any(name.startswith("x-orchestrator-") for name in moved[1])
    assert moved[1]["trace"] == b"t-7"
    assert [letter.id] == [parked.id for parked in await queue.list(10)]  # a topic keeps what it holds
