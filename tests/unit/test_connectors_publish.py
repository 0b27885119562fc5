"""kafka.publish and amqp.publish without brokers: config and argument checks, the encoded
record/message (CloudEvent attributes decoded back with the shared bindings), error mapping,
connection URLs, the connection pool, and that the default connector set stays light."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import errors as kafka_errors
from aiormq import exceptions as amqp_errors
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from connectors.amqp_publish import AmqpPublishConnector, amqp_error, build_message
from connectors.base import ConnectorError, StepCall
from connectors.kafka_publish import KafkaPublishConnector, build_record, kafka_error, producer_options
from connectors.pool import ConnectionPool
from connectors.publishing import connection_url
from orchestrator.settings import Settings
from schemas import cloudevents
from schemas.definition import TaskStep
from schemas.expressions import evaluate_mapping
from schemas.validation import parse_definition

KEY = "exec-1:announce:1"


def call(config: Any = None, args: Any = None, step: str = "announce", timeout: float | None = None) -> StepCall:
    return StepCall(
        execution_id="exec-1",
        workflow="orders",
        step=step,
        attempt=2,
        idempotency_key=KEY,
        config={} if config is None else config,
        args=args,
        timeout_seconds=timeout,
    )


def error_of(build: Any, step_call: StepCall) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        build(step_call)
    return caught.value


# -- kafka.publish: the record ----------------------------------------------------------------


def test_kafka_record_is_a_binary_cloudevent_with_the_idempotency_key_as_id() -> None:
    record = build_record(
        call({"topic": "orders.events"}, {"value": {"id": 7, "total": 9.5}, "key": "o-7", "headers": {"trace": "t1"}})
    )
    assert (record.connection, record.topic, record.key) == ("kafka", "orders.events", b"o-7")
    assert json.loads(record.value) == {"id": 7, "total": 9.5}
    assert ("trace", b"t1") in record.headers
    decoded = cloudevents.from_kafka(record.value, record.headers)
    assert decoded.data == {"id": 7, "total": 9.5}
    assert decoded.attributes is not None
    attributes = decoded.attributes
    assert attributes["id"] == KEY
    assert attributes["source"] == "/orchestrator/orders"
    assert attributes["type"] == "io.orchestrator.step.announce"
    assert attributes["subject"] == "exec-1"
    assert attributes["specversion"] == "1.0"
    assert attributes["datacontenttype"] == "application/json"
    assert attributes["time"].endswith("Z")


def test_kafka_record_configured_type_and_connection() -> None:
    record = build_record(
        call({"topic": "t", "connection": "events", "type": "com.example.order.placed"}, {"value": None})
    )
    decoded = cloudevents.from_kafka(record.value, record.headers)
    assert record.connection == "events"
    assert record.key is None
    assert decoded.attributes is not None and decoded.attributes["type"] == "com.example.order.placed"
    assert decoded.data is None


def test_kafka_record_without_cloudevent_is_the_bare_json_value() -> None:
    record = build_record(call({"topic": "t", "cloudevent": False}, {"value": "hi", "headers": {"a": "b"}}))
    assert record.value == b'"hi"'
    assert record.headers == [("content-type", b"application/json"), ("a", b"b")]
    assert not any(name.startswith("ce_") for name, _ in record.headers)
    assert cloudevents.from_kafka(record.value, record.headers).attributes is None


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({}, "'topic'"),
        ({"topic": ""}, "'topic'"),
        ({"topic": "has space"}, "'topic'"),
        ({"topic": "x" * 250}, "'topic'"),
        ({"topic": ".."}, "'topic'"),
        ({"topic": "t", "topc": "typo"}, "unknown config 'topc'"),
        ({"topic": "t", "cloudevent": "yes"}, "'cloudevent'"),
        ({"topic": "t", "connection": ""}, "'connection'"),
        ({"topic": "t", "connection": 5}, "'connection'"),
        ({"topic": "t", "type": ""}, "'type'"),
        ("not an object", "config must be an object"),
    ],
)
def test_kafka_bad_config_is_a_non_retryable_config_error(config: Any, needle: str) -> None:
    error = error_of(build_record, call(config, {"value": 1}))
    assert (error.type, error.retryable) == ("kafka.config", False)
    assert needle in error.message


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (None, "arguments must be an object"),
        ([1, 2], "arguments must be an object"),
        ({}, "'value' is required"),
        ({"value": 1, "partition": 3}, "unknown arguments 'partition'"),
        ({"value": 1, "key": 5}, "'key'"),
        ({"value": 1, "headers": {"n": 1}}, "'headers'"),
        ({"value": 1, "headers": ["n"]}, "'headers'"),
        ({"value": float("nan")}, "not JSON-serialisable"),
        ({"value": {1, 2}}, "not JSON-serialisable"),
        ({"value": 1, "headers": {"ce_id": "mine"}}, "set by the CloudEvent"),
        ({"value": 1, "headers": {"Content-Type": "text/plain"}}, "set by the CloudEvent"),
    ],
)
def test_kafka_bad_arguments_are_a_non_retryable_bad_request(args: Any, needle: str) -> None:
    error = error_of(build_record, call({"topic": "t"}, args))
    assert (error.type, error.retryable) == ("kafka.bad_request", False)
    assert needle in error.message


def test_kafka_headers_without_cloudevent_may_use_any_name() -> None:
    record = build_record(
        call({"topic": "t", "cloudevent": False}, {"value": 1, "headers": {"ce_id": "x", "content-type": "a/b"}})
    )
    assert record.headers == [("ce_id", b"x"), ("content-type", b"a/b")]


# -- kafka.publish: errors and connections ------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind", "retryable"),
    [
        (kafka_errors.MessageSizeTooLargeError(), "kafka.message_too_large", False),
        (kafka_errors.RecordListTooLargeError(), "kafka.message_too_large", False),
        (kafka_errors.TopicAuthorizationFailedError(), "kafka.unauthorized", False),
        (kafka_errors.InvalidTopicError(), "kafka.config", False),
        (kafka_errors.UnknownTopicOrPartitionError(), "kafka.unknown_topic", False),
        (kafka_errors.KafkaConnectionError("refused"), "kafka.unavailable", True),
        (kafka_errors.KafkaTimeoutError(), "kafka.unavailable", True),
        (kafka_errors.NotEnoughReplicasError(), "kafka.unavailable", True),
        (kafka_errors.RequestTimedOutError(), "kafka.unavailable", True),
        (kafka_errors.OutOfOrderSequenceNumber(), "kafka.unavailable", True),
        (kafka_errors.ProducerClosed(), "kafka.unavailable", True),
        (kafka_errors.CorruptRecordException(), "kafka.error", False),
        (ConnectionResetError(), "kafka.unavailable", True),
    ],
)
def test_kafka_error_mapping(exc: BaseException, kind: str, retryable: bool) -> None:
    error = kafka_error(exc, "topic 't' on connection 'kafka'")
    assert error is not None
    assert (error.type, error.retryable) == (kind, retryable)
    assert error.message.startswith("topic 't' on connection 'kafka': " + type(exc).__name__)


def test_kafka_error_leaves_bugs_alone() -> None:
    assert kafka_error(KeyError("x"), "w") is None


def test_producer_options_read_the_url_like_the_transport() -> None:
    options = producer_options("k", "kafka://a:1,b?group=x&linger_ms=5&send_timeout=7")
    assert options.bootstrap == ("a:1", "b:9092")
    assert (options.linger_ms, options.send_timeout) == (5, 7.0)


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("amqp://u:secret@h/", "not a kafka://host:port URL"),
        ("kafka://u:secret@h:9092", "credentials"),
        ("kafka://", "not a kafka://host:port URL"),
        ("secret", "not a kafka://host:port URL"),
        ("kafka://h:1?bogus=1", "unknown option 'bogus'"),
    ],
)
def test_producer_options_reject_bad_urls_without_quoting_credentials(url: str, needle: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        producer_options("events", url)
    assert (caught.value.type, caught.value.retryable) == ("kafka.config", False)
    assert "'events'" in caught.value.message and needle in caught.value.message
    assert "secret" not in str(caught.value)


def test_unknown_connection_names_the_variable_to_set() -> None:
    settings = Settings(connections={"kafka": "kafka://h:1"})
    assert connection_url("kafka", settings, "KAFKA") == "kafka://h:1"  # names are case-insensitive
    with pytest.raises(ConnectorError) as caught:
        connection_url("amqp", settings, "billing")
    assert (caught.value.type, caught.value.retryable) == ("amqp.config", False)
    assert "ORCHESTRATOR_CONNECTION_BILLING" in caught.value.message


def test_connection_from_a_secret() -> None:
    settings = Settings(secrets={"CONNECTION_EVENTS": "kafka://s:1"})
    assert connection_url("kafka", settings, "events") == "kafka://s:1"


async def test_unknown_connection_fails_before_any_client_is_opened() -> None:
    connector = KafkaPublishConnector(Settings())
    async with connector:
        with pytest.raises(ConnectorError) as caught:
            await connector.invoke(call({"topic": "t", "connection": "nowhere"}, {"value": 1}))
    assert (caught.value.type, caught.value.retryable) == ("kafka.config", False)
    assert "ORCHESTRATOR_CONNECTION_NOWHERE" in caught.value.message
    assert (len(connector.pool), connector.pool.opened) == (0, 0)


async def test_a_malformed_amqp_connection_is_a_config_error() -> None:
    connector = AmqpPublishConnector(Settings(connections={"amqp": "kafka://h:1"}))
    async with connector:
        with pytest.raises(ConnectorError) as caught:
            await connector.invoke(call({}, {"body": 1, "routing_key": "q"}))
    assert (caught.value.type, caught.value.retryable) == ("amqp.config", False)
    assert "amqp://" in caught.value.message


# -- amqp.publish: the message ---------------------------------------------------------------


def test_amqp_message_is_a_cloudevent_with_the_idempotency_key_as_message_id() -> None:
    message = build_message(
        call({"exchange": "orders", "routing_key": "placed"}, {"body": [1, "a"], "headers": {"trace": "t1"}})
    )
    assert (message.connection, message.exchange, message.routing_key) == ("amqp", "orders", "placed")
    assert message.message_id == KEY
    assert message.type == "io.orchestrator.step.announce"
    assert message.headers["trace"] == "t1"
    decoded = cloudevents.from_amqp(message.body, message.headers, message.content_type)
    assert decoded.data == [1, "a"]
    assert decoded.attributes is not None
    assert {k: decoded.attributes[k] for k in ("id", "source", "type", "subject", "datacontenttype")} == {
        "id": KEY,
        "source": "/orchestrator/orders",
        "type": "io.orchestrator.step.announce",
        "subject": "exec-1",
        "datacontenttype": "application/json",
    }


def test_amqp_defaults_and_routing_key_from_arguments() -> None:
    message = build_message(call({"cloudevent": False}, {"body": {"a": 1}, "routing_key": "jobs"}))
    assert (message.exchange, message.routing_key) == ("", "jobs")
    assert message.body == b'{"a":1}'
    assert (message.content_type, message.headers, message.type) == ("application/json", {}, None)
    assert build_message(call({"routing_key": "cfg"}, {"body": 1})).routing_key == "cfg"
    assert build_message(call({"routing_key": "cfg"}, {"body": 1, "routing_key": "arg"})).routing_key == "arg"


@pytest.mark.parametrize(
    ("config", "args", "kind", "needle"),
    [
        ({"exchange": "bad name"}, {"body": 1}, "amqp.config", "'exchange'"),
        ({"exchange": 3}, {"body": 1}, "amqp.config", "'exchange'"),
        ({"routing_key": 3}, {"body": 1}, "amqp.config", "'routing_key'"),
        ({"routing_key": "k" * 256}, {"body": 1}, "amqp.config", "'routing_key'"),
        ({"topic": "t"}, {"body": 1}, "amqp.config", "unknown config 'topic'"),
        ({}, {"value": 1}, "amqp.bad_request", "unknown arguments 'value'"),
        ({}, {}, "amqp.bad_request", "'body' is required"),
        ({}, {"body": 1, "routing_key": ["a"]}, "amqp.bad_request", "'routing_key'"),
        ({}, {"body": 1, "headers": {"cloudEvents_id": "x"}}, "amqp.bad_request", "set by the CloudEvent"),
        ({}, {"body": 1, "headers": {"cloudevents:type": "x"}}, "amqp.bad_request", "set by the CloudEvent"),
    ],
)
def test_amqp_bad_config_and_arguments(config: Any, args: Any, kind: str, needle: str) -> None:
    error = error_of(build_message, call(config, args))
    assert (error.type, error.retryable) == (kind, False)
    assert needle in error.message


def _returned(reply_text: str = "NO_ROUTE") -> amqp_errors.PublishError:
    frame = Basic.Return(reply_code=312, reply_text=reply_text, exchange="orders", routing_key="nowhere")
    message = DeliveredMessage(delivery=frame, header=ContentHeader(), body=b"", channel=None)  # type: ignore[arg-type]
    return amqp_errors.PublishError(message, frame)


@pytest.mark.parametrize(
    ("exc", "kind", "retryable"),
    [
        (_returned(), "amqp.unroutable", False),
        (amqp_errors.DeliveryError(None, Basic.Nack(delivery_tag=1)), "amqp.nack", True),
        (amqp_errors.ChannelNotFoundEntity("NOT_FOUND - no exchange 'x'"), "amqp.not_found", False),
        (amqp_errors.ChannelAccessRefused("ACCESS_REFUSED"), "amqp.access_refused", False),
        (amqp_errors.ChannelPreconditionFailed("message size"), "amqp.precondition_failed", False),
        (amqp_errors.ProbableAuthenticationError("ACCESS_REFUSED - Login was refused"), "amqp.unauthorized", False),
        (amqp_errors.ProbableAuthenticationError("connection reset"), "amqp.unavailable", True),
        (amqp_errors.AMQPConnectionError(111, "refused"), "amqp.unavailable", True),
        (amqp_errors.ConnectionClosed(320, "CONNECTION_FORCED"), "amqp.unavailable", True),
        (amqp_errors.ChannelInvalidStateError("closed"), "amqp.unavailable", True),
        (ConnectionRefusedError(), "amqp.unavailable", True),
        (amqp_errors.MethodNotImplemented(), "amqp.error", True),
    ],
)
def test_amqp_error_mapping(exc: BaseException, kind: str, retryable: bool) -> None:
    error = amqp_error(exc, "exchange 'orders'")
    assert error is not None
    assert (error.type, error.retryable) == (kind, retryable)
    assert error.message.startswith("exchange 'orders': ")


def test_amqp_unroutable_names_the_reason() -> None:
    error = amqp_error(_returned(), "w")
    assert error is not None and "NO_ROUTE" in error.message and "nowhere" in error.message


def test_amqp_error_leaves_bugs_alone() -> None:
    assert amqp_error(KeyError("x"), "w") is None


# -- the pool -------------------------------------------------------------------------------------


class Opener:
    def __init__(self) -> None:
        self.opened: list[str] = []
        self.closed: list[object] = []

    async def open(self, name: str) -> object:
        await asyncio.sleep(0.01)  # long enough for the concurrent first calls to pile up
        self.opened.append(name)
        return object()

    async def close(self, client: object) -> None:
        self.closed.append(client)


async def test_pool_opens_one_client_per_name_for_concurrent_first_calls() -> None:
    opener = Opener()
    pool: ConnectionPool[object] = ConnectionPool("test", opener.open, opener.close)
    async with pool:
        clients = await asyncio.gather(*(pool.get(n) for n in ["a", "A", "b"] * 10))
        assert opener.opened.count("a") + opener.opened.count("A") == 1
        assert opener.opened.count("b") == 1
        assert len({id(c) for c in clients}) == 2
        assert (len(pool), pool.opened, pool.names()) == (2, 2, ["a", "b"])
    assert sorted(map(id, opener.closed)) == sorted({id(c) for c in clients})
    assert len(pool) == 0
    with pytest.raises(RuntimeError, match="not started"):
        await pool.get("a")


async def test_pool_discard_closes_and_the_next_call_reopens() -> None:
    opener = Opener()
    pool: ConnectionPool[object] = ConnectionPool("test", opener.open, opener.close)
    async with pool:
        first = await pool.get("a")
        await pool.discard("a", object())  # not the pooled one: nothing happens
        assert await pool.get("a") is first
        await pool.discard("a", first)
        assert opener.closed == [first]
        second = await pool.get("a")
        assert second is not first and pool.opened == 2


async def test_pool_failed_open_is_not_cached() -> None:
    attempts: list[str] = []

    async def failing(name: str) -> object:
        attempts.append(name)
        raise ConnectionRefusedError

    async def close(client: object) -> None:
        raise AssertionError("nothing to close")

    pool: ConnectionPool[object] = ConnectionPool("test", failing, close)
    async with pool:
        for _ in range(2):
            with pytest.raises(ConnectionRefusedError):
                await pool.get("a")
    assert attempts == ["a", "a"] and pool.opened == 0


def test_default_connectors_load_no_broker_client() -> None:
    code = (
        "import sys\n"
        "from connectors.defaults import default_connectors\n"
        "from orchestrator.settings import Settings\n"
        "c = default_connectors(2, Settings(connections={'kafka': 'kafka://h:1'}))\n"
        "assert {'kafka.publish', 'amqp.publish', 'http', 'python', 'noop'} <= set(c.names()), c.names()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('aiokafka', 'aio_pika', 'aiormq'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_docs_example_is_a_valid_definition_whose_steps_encode() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "connectors.md").read_text(encoding="utf-8")
    [example] = [b for b in re.findall(r"```yaml\n(.*?)```", docs, flags=re.DOTALL) if "connector:" in b]
    definition = parse_definition(yaml.safe_load(example))
    context = {"input": {"order": {"id": "o-1", "total": 3}, "region": "eu"}}
    to_kafka, to_rabbit = definition.steps
    assert isinstance(to_kafka, TaskStep) and isinstance(to_rabbit, TaskStep)
    record = build_record(
        call(dict(to_kafka.config), evaluate_mapping(dict(to_kafka.input), context), step=to_kafka.name)
    )
    assert (record.topic, record.key, record.connection) == ("shop.orders", b"o-1", "kafka")
    assert ("region", b"eu") in record.headers and ("ce_type", b"com.example.order.placed") in record.headers
    message = build_message(
        call(dict(to_rabbit.config), evaluate_mapping(dict(to_rabbit.input), context), step=to_rabbit.name)
    )
    assert (message.exchange, message.routing_key, message.headers["region"]) == ("shop", "orders.placed", "eu")
    assert message.headers["cloudEvents_type"] == "io.orchestrator.step.to_rabbit"
