"""kafka.publish and amqp.publish steps in workflows run by a Runtime (SQLite + in-process),
against the real Kafka and RabbitMQ: what consumers receive (kcat for Kafka, a bound queue for
AMQP), retried attempts carrying the same CloudEvent id, failures that must not be retried, and
one pooled client per connection however many steps publish."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from connectors.amqp_publish import AmqpPublishConnector
from connectors.base import ConnectorError, Connectors, StepCall
from connectors.kafka_publish import KafkaPublishConnector
from orchestrator.core.state import ExecutionState
from orchestrator.lifecycle import Lifecycle
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas import cloudevents
from schemas.builder import Workflow, retry

pytestmark = pytest.mark.integration
ORDER = {"id": "o-7", "total": 12.5, "lines": [{"sku": "a", "qty": 2}]}


@dataclass
class Broker:
    """A fresh Kafka topic name and an AMQP topic exchange with one queue bound to ``orders.#``."""

    kafka_bootstrap: str
    topic: str
    exchange: str
    queue: AbstractQueue


@pytest.fixture
async def broker(kafka_url: str, amqp_url: str) -> AsyncIterator[Broker]:
    suffix = uuid.uuid4().hex[:10]
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(f"test.publish.{suffix}", aio_pika.ExchangeType.TOPIC)
    queue = await channel.declare_queue(f"test.publish.{suffix}", exclusive=True)
    await queue.bind(exchange, "orders.#")
    bootstrap = kafka_url.removeprefix("kafka://")
    try:
        yield Broker(bootstrap, f"test.publish.{suffix}", exchange.name, queue)
    finally:
        await exchange.delete()
        await connection.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap.split(","))
        await admin.start()
        try:
            with contextlib.suppress(KafkaError):  # a test that failed early never created it
                await admin.delete_topics([f"test.publish.{suffix}"])
        finally:
            await admin.close()


def settings(tmp_path: Path, kafka_url: str, amqp_url: str) -> Settings:
    return Settings(
        event_log_url=f"sqlite:///{tmp_path}/publish.db",
        retention_interval=0,
        connections={"kafka": kafka_url, "amqp": amqp_url},
    )


def announce(broker: Broker, name: str = "announce", **amqp_config: Any) -> Any:
    """Publish the input's order to Kafka (keyed by its id) and to the AMQP exchange."""
    return (
        Workflow(name)
        .task(
            "to_kafka",
            "kafka.publish",
            config={"topic": broker.topic},
            input={"value": "input.order", "key": "input.order.id", "headers": {"trace": "input.trace"}},
            retry=retry(3, initial_seconds=0.05),
        )
        .task(
            "to_amqp",
            "amqp.publish",
            config={
                "exchange": broker.exchange,
                "routing_key": "orders.placed",
                "type": "com.example.order.placed",
                **amqp_config,
            },
            input={"body": "input.order", "headers": {"trace": "input.trace"}},
            retry=retry(3, initial_seconds=0.05),
        )
        .build()
    )


async def run(runtime: Runtime, workflow: str, input: Any) -> ExecutionState:
    started = await runtime.start_execution(workflow, input)
    return await runtime.wait(started.execution_id, timeout=60)


async def kafka_records(bootstrap: str, topic: str, count: int) -> list[dict[str, Any]]:
    """Every record of ``topic`` read with kcat (a consumer independent of our code)."""
    for _ in range(50):
        process = await asyncio.create_subprocess_exec(
            "kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
        records = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        if len(records) >= count:
            assert len(records) == count, records
            return records
        await asyncio.sleep(0.2)
    raise AssertionError(f"expected {count} records on {topic}, kcat: {err.decode()[-500:]}")


def kafka_headers(record: dict[str, Any]) -> list[tuple[str, bytes]]:
    flat = record["headers"]
    return [(flat[i], flat[i + 1].encode()) for i in range(0, len(flat), 2)]


async def amqp_messages(queue: AbstractQueue, count: int, wait: float = 10.0) -> list[AbstractIncomingMessage]:
    found: list[AbstractIncomingMessage] = []
    deadline = asyncio.get_running_loop().time() + wait
    while len(found) < count and asyncio.get_running_loop().time() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.05)
        else:
            found.append(message)
    assert len(found) == count
    assert await queue.get(no_ack=True, fail=False) is None  # and nothing more
    return found


async def idempotency_key(runtime: Runtime, execution_id: str, step: str) -> list[str]:
    """The idempotency key of every scheduled attempt of ``step``."""
    events = await runtime.history(execution_id, types={"StepScheduled"})
    return [e.data["idempotency_key"] for e in events if e.data["step"] == step]


# -- what consumers receive -------------------------------------------------------------------------


async def test_a_workflow_publishes_cloudevents_to_kafka_and_amqp(
    tmp_path: Path, kafka_url: str, amqp_url: str, broker: Broker
) -> None:
    async with Runtime(settings(tmp_path, kafka_url, amqp_url)) as runtime:
        await runtime.register(announce(broker))
        state = await run(runtime, "announce", {"order": ORDER, "trace": "t-1"})
        assert state.status == "succeeded", state.error
        [kafka_key] = await idempotency_key(runtime, state.execution_id, "to_kafka")
        [amqp_key] = await idempotency_key(runtime, state.execution_id, "to_amqp")

    [record] = await kafka_records(broker.kafka_bootstrap, broker.topic, 1)
    assert state.outputs["to_kafka"] == {"topic": broker.topic, "partition": record["partition"], "offset": record["offset"]}
    assert record["key"] == "o-7"
    assert json.loads(record["payload"]) == ORDER
    headers = kafka_headers(record)
    assert ("trace", b"t-1") in headers
    event = cloudevents.from_kafka(record["payload"].encode(), headers)
    assert event.data == ORDER
    assert event.attributes is not None
    assert {k: event.attributes[k] for k in ("specversion", "id", "source", "type", "subject", "datacontenttype")} == {
        "specversion": "1.0",
        "id": kafka_key,
        "source": "/orchestrator/announce",
        "type": "io.orchestrator.step.to_kafka",
        "subject": state.execution_id,
        "datacontenttype": "application/json",
    }
    assert kafka_key == f"{state.execution_id}:to_kafka:1"

    [message] = await amqp_messages(broker.queue, 1)
    assert state.outputs["to_amqp"] == {"exchange": broker.exchange, "routing_key": "orders.placed", "message_id": amqp_key}
    assert (message.exchange, message.routing_key) == (broker.exchange, "orders.placed")
    assert message.message_id == amqp_key
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == "application/json"
    assert json.loads(message.body) == ORDER
    assert message.headers["trace"] == "t-1"
    event = cloudevents.from_amqp(message.body, message.headers, message.content_type)
    assert event.data == ORDER
    assert event.attributes is not None
    assert (event.attributes["id"], event.attributes["type"], event.attributes["subject"]) == (
        amqp_key,
        "com.example.order.placed",
        state.execution_id,
    )


async def test_without_cloudevent_the_bare_json_is_published(
    tmp_path: Path, kafka_url: str, amqp_url: str, broker: Broker
) -> None:
    plain = (
        Workflow("plain")
        .task("k", "kafka.publish", config={"topic": broker.topic, "cloudevent": False}, input={"value": "input"})
        .task(
            "a",
            "amqp.publish",
            config={"exchange": broker.exchange, "cloudevent": False},
            input={"body": "input", "routing_key": "'orders.plain'"},
        )
        .build()
    )
    async with Runtime(settings(tmp_path, kafka_url, amqp_url)) as runtime:
        await runtime.register(plain)
        state = await run(runtime, "plain", [1, "two"])
        assert state.status == "succeeded", state.error
    [record] = await kafka_records(broker.kafka_bootstrap, broker.topic, 1)
    assert record["payload"] == '[1,"two"]' and record["key"] is None
    assert kafka_headers(record) == [("content-type", b"application/json")]
    [message] = await amqp_messages(broker.queue, 1)
    assert message.routing_key == "orders.plain"
    assert message.body == b'[1,"two"]'
    assert not any(name.lower().startswith("cloudevents") for name in message.headers)
    assert message.message_id == f"{state.execution_id}:a:1"  # still there for dedup


# -- retries ------------------------------------------------------------------------------------


class AckLost(Lifecycle):
    """The real connector, but the first attempt of every step reports a retryable failure after
    the broker took the message: what a lost acknowledgement or a crash before the answer looks like."""

    def __init__(self, inner: KafkaPublishConnector | AmqpPublishConnector) -> None:
        self.inner = inner
        self.name = inner.name
        self.attempts: list[int] = []

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def invoke(self, call: StepCall) -> Any:
        output = await self.inner.invoke(call)
        self.attempts.append(call.attempt)
        if call.attempt == 1:
            raise ConnectorError(f"{self.name.split('.')[0]}.unavailable", "acknowledgement lost (test)")
        return output


async def test_a_retried_attempt_resends_with_the_same_cloudevent_id(
    tmp_path: Path, kafka_url: str, amqp_url: str, broker: Broker
) -> None:
    config = settings(tmp_path, kafka_url, amqp_url)
    kafka, amqp = AckLost(KafkaPublishConnector(config)), AckLost(AmqpPublishConnector(config))
    async with Runtime(config, connectors=Connectors([kafka, amqp])) as runtime:
        await runtime.register(announce(broker))
        state = await run(runtime, "announce", {"order": ORDER, "trace": "t-2"})
        assert state.status == "succeeded", state.error
        kafka_keys = await idempotency_key(runtime, state.execution_id, "to_kafka")
        amqp_keys = await idempotency_key(runtime, state.execution_id, "to_amqp")
    assert kafka.attempts == amqp.attempts == [1, 2]
    assert len(kafka_keys) == len(amqp_keys) == 2 and len(set(kafka_keys)) == len(set(amqp_keys)) == 1

    records = await kafka_records(broker.kafka_bootstrap, broker.topic, 2)
    ids = [dict(kafka_headers(r))["ce_id"].decode() for r in records]
    sources = [dict(kafka_headers(r))["ce_source"].decode() for r in records]
    assert ids == [kafka_keys[0]] * 2 and sources == ["/orchestrator/announce"] * 2
    assert [json.loads(r["payload"]) for r in records] == [ORDER, ORDER]
    assert state.outputs["to_kafka"]["offset"] == records[1]["offset"]  # the attempt that counted

    messages = await amqp_messages(broker.queue, 2)
    assert [m.message_id for m in messages] == [amqp_keys[0]] * 2
    assert [m.headers["cloudEvents_id"] for m in messages] == [amqp_keys[0]] * 2


# -- failures that retrying cannot fix ----------------------------------------------------------------


async def test_an_unroutable_amqp_message_fails_the_step_without_retries(
    tmp_path: Path, kafka_url: str, amqp_url: str, broker: Broker
) -> None:
    async with Runtime(settings(tmp_path, kafka_url, amqp_url)) as runtime:
        await runtime.register(announce(broker, routing_key="nobody.home"))
        state = await run(runtime, "announce", {"order": ORDER, "trace": "t-3"})
        assert state.status == "failed"
        assert state.error is not None and state.error["type"] == "amqp.unroutable", state.error
        assert "NO_ROUTE" in state.error["message"]
        assert len(await idempotency_key(runtime, state.execution_id, "to_amqp")) == 1  # retry(3) not used
    await amqp_messages(broker.queue, 0)


async def test_a_missing_exchange_fails_the_step_and_the_connection_recovers(
    tmp_path: Path, kafka_url: str, amqp_url: str, broker: Broker
) -> None:
    async with Runtime(settings(tmp_path, kafka_url, amqp_url)) as runtime:
        await runtime.register(announce(broker, name="lost", exchange=f"{broker.exchange}.missing"))
        await runtime.register(announce(broker))
        lost = await run(runtime, "lost", {"order": ORDER, "trace": "t-4"})
        assert lost.status == "failed"
        assert lost.error is not None and lost.error["type"] == "amqp.not_found", lost.error
        # The broker closed the channel over the missing exchange; the next publish waits for it
        # to reopen and goes out on the same connection.
        found = await run(runtime, "announce", {"order": ORDER, "trace": "t-5"})
        assert found.status == "succeeded", found.error
        pool = cast(AmqpPublishConnector, runtime.connectors.get("amqp.publish")).pool
        assert (pool.opened, len(pool)) == (1, 1)
    [message] = await amqp_messages(broker.queue, 1)
    assert message.headers["trace"] == "t-5"


async def test_an_unknown_connection_fails_clearly_without_retries(
    tmp_path: Path, kafka_url: str, amqp_url: str, broker: Broker
) -> None:
    nowhere = (
        Workflow("nowhere")
        .task(
            "k",
            "kafka.publish",
            config={"topic": broker.topic, "connection": "billing"},
            input={"value": "input"},
            retry=retry(5, initial_seconds=0.05),
        )
        .build()
    )
    async with Runtime(settings(tmp_path, kafka_url, amqp_url)) as runtime:
        await runtime.register(nowhere)
        state = await run(runtime, "nowhere", 1)
        assert state.status == "failed"
        assert state.error is not None and state.error["type"] == "kafka.config", state.error
        assert "connection 'billing' is not configured" in state.error["message"]
        assert "ORCHESTRATOR_CONNECTION_BILLING" in state.error["message"]
        assert len(await idempotency_key(runtime, state.execution_id, "k")) == 1
        assert len(cast(KafkaPublishConnector, runtime.connectors.get("kafka.publish")).pool) == 0


# -- pooling -----------------------------------------------------------------------------------


async def test_one_client_per_connection_serves_many_concurrent_steps(
    tmp_path: Path, kafka_url: str, amqp_url: str, broker: Broker
) -> None:
    runs = 20
    async with Runtime(settings(tmp_path, kafka_url, amqp_url)) as runtime:
        kafka = cast(KafkaPublishConnector, runtime.connectors.get("kafka.publish"))
        amqp = cast(AmqpPublishConnector, runtime.connectors.get("amqp.publish"))
        assert len(kafka.pool) == len(amqp.pool) == 0  # nothing opened before the first step
        await runtime.register(announce(broker))
        # Started together, so the first calls of both connectors race for the connection.
        states = await asyncio.gather(
            *(run(runtime, "announce", {"order": {**ORDER, "id": f"o-{i}"}, "trace": f"t{i}"}) for i in range(runs))
        )
        assert [s.status for s in states] == ["succeeded"] * runs
        for pool in (kafka.pool, amqp.pool):
            assert (pool.opened, len(pool)) == (1, 1)
        assert kafka.pool.names() == ["kafka"] and amqp.pool.names() == ["amqp"]
        producer = await kafka.pool.get("kafka")
    assert len(kafka.pool) == len(amqp.pool) == 0  # closed with the runtime
    assert producer._closed  # the producer was stopped, not abandoned
    records = await kafka_records(broker.kafka_bootstrap, broker.topic, runs)
    assert sorted(r["key"] for r in records) == sorted(f"o-{i}" for i in range(runs))
    messages = await amqp_messages(broker.queue, runs)
    assert sorted(m.headers["trace"] for m in messages) == sorted(f"t{i}" for i in range(runs))
