"""``kafka.publish``: produce one record per step attempt and wait until the brokers have it.

Step ``config`` (static, in the definition)::

    connection   name of the connection (ORCHESTRATOR_CONNECTION_<NAME>); default "kafka"
    topic        required
    cloudevent   default true: a binary-mode CloudEvent (``ce_*`` headers), else the bare value
    type         the CloudEvent type; default "io.orchestrator.step.<step>"

Step arguments (from the step's ``input``)::

    value        required, any JSON value; the record value is its JSON encoding
    key          a string or null (the record key decides the partition)
    headers      {name: string value}

The output is ``{"topic", "partition", "offset"}`` of the written record. The producer is
idempotent with ``acks=all``: a returned step means every in-sync replica has the record. A step
runs at least once, so a record can be written twice (a lost acknowledgement, a crash before
the answer was recorded); every attempt of one step visit carries the same CloudEvent ``id``
(the step's idempotency key) and ``source`` for consumers to dedupe on.

Errors: ``kafka.config`` (bad config, unknown or malformed connection, invalid topic),
``kafka.bad_request`` (bad arguments), ``kafka.message_too_large``, ``kafka.unknown_topic``,
``kafka.unauthorized`` (none retryable); ``kafka.unavailable`` (brokers unreachable, no leader,
producer state lost: retryable); ``timeout`` when no acknowledgement came within the step's
timeout (default 30 s; retryable); ``kafka.error`` for any other Kafka error (not retryable).

aiokafka is imported on the first call, so a process that never publishes does not load it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from connectors.base import ConnectorError, StepCall
from connectors.pool import PooledConnector, close_quietly
from connectors.publishing import (
    args_of,
    bad_request,
    cloudevent_attributes,
    common,
    config_error,
    config_of,
    connection_url,
    internal_error,
    internal_topics,
    json_bytes,
    string_map,
    timeout_of,
    topic_problem,
)
from connectors.tracing import HEADER, has_header, outbound_traceparent
from schemas import cloudevents

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

    from orchestrator.backends.kafka.client import KafkaOptions

PREFIX = "kafka"
DEFAULT_CONNECTION = "kafka"
JSON = "application/json"
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One record to produce, checked and encoded (pure: built without a broker)."""

    connection: str
    topic: str
    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]]


class KafkaPublishConnector(PooledConnector["AIOKafkaProducer"]):
    """One idempotent producer per connection name, opened on first use, closed in ``stop()``."""

    name = "kafka.publish"

    def step_problems(self, config: Mapping[str, Any]) -> list[str]:
        """Registration: a topic internal to the orchestrator."""
        topic = config.get("topic")
        problem = topic_problem(topic, internal_topics(self._settings)) if isinstance(topic, str) else None
        return [] if problem is None else [problem]

    async def invoke(self, call: StepCall) -> dict[str, Any]:
        record = build_record(call, internal_topics(self._settings))
        where = f"topic {record.topic!r} on connection {record.connection!r}"
        timeout = timeout_of(call)
        producer = None
        try:
            async with asyncio.timeout(timeout):
                producer = await self.pool.get(record.connection)
                delivery = await producer.send(
                    record.topic, record.value, key=record.key, headers=record.headers
                )
                metadata = await delivery
        except TimeoutError:
            raise ConnectorError("timeout", f"{where}: not acknowledged within {timeout:g}s") from None
        except ConnectorError:
            raise
        except Exception as exc:
            error = kafka_error(exc, where)
            if error is None:
                raise
            if producer is not None and _producer_broken(exc):
                await self.pool.discard(record.connection, producer)
            raise error from exc
        return {"topic": metadata.topic, "partition": metadata.partition, "offset": metadata.offset}

    async def _open(self, connection: str) -> AIOKafkaProducer:
        options = producer_options(connection, connection_url(PREFIX, self._settings, connection))
        from orchestrator.backends.kafka.client import idempotent_producer

        producer = idempotent_producer(
            options.bootstrap,
            f"orchestrator.publish.{connection}",
            linger_ms=options.linger_ms,
            send_timeout=options.send_timeout,
            security=options.security,
        )
        try:
            await producer.start()
        except BaseException:
            await close_quietly(producer.stop)
            raise
        return producer

    async def _close_client(self, producer: AIOKafkaProducer) -> None:
        await producer.stop()  # flushes what is pending first


def build_record(call: StepCall, internal: frozenset[str] = frozenset()) -> KafkaRecord:
    """Check the step's config and arguments and encode the record; ConnectorError if invalid
    (``kafka.internal`` for an internal topic; ``internal``: more names than the prefixes)."""
    config = config_of(PREFIX, call, {"topic"})
    shared = common(PREFIX, config, DEFAULT_CONNECTION)
    topic = config.get("topic")
    if not isinstance(topic, str) or not _TOPIC.match(topic) or topic in (".", ".."):
        raise config_error(PREFIX, f"'topic' must be a Kafka topic name ([A-Za-z0-9._-], 1-249), got {topic!r}")
    if (problem := topic_problem(topic, internal)) is not None:
        raise internal_error(PREFIX, problem)
    args = args_of(PREFIX, call, {"key", "headers"}, "value")
    key = args.get("key")
    if key is not None and not isinstance(key, str):
        raise bad_request(PREFIX, f"'key' must be a string or null, got {type(key).__name__}")
    extra = string_map(PREFIX, args.get("headers"), "headers")
    value = json_bytes(PREFIX, args["value"], "value")
    headers: list[tuple[str, bytes]] = []
    if shared.cloudevent:
        reserved = [n for n in extra if n.lower().startswith(cloudevents.KAFKA_PREFIX) or n.lower() == "content-type"]
        if reserved:
            raise bad_request(PREFIX, f"headers {reserved} are set by the CloudEvent; use cloudevent: false")
        attributes = {**cloudevent_attributes(call, shared.type), "datacontenttype": JSON}
        try:
            value, headers = cloudevents.to_kafka_binary(attributes, value)
        except ValueError as exc:
            raise config_error(PREFIX, f"cannot build the CloudEvent: {exc}") from None
    elif not any(n.lower() == "content-type" for n in extra):
        headers.append(("content-type", JSON.encode()))
    headers.extend((name, text.encode()) for name, text in extra.items())
    trace = outbound_traceparent(call)
    if trace is not None and not has_header(extra):
        headers.append((HEADER, trace.encode()))
    return KafkaRecord(shared.connection, topic, value, None if key is None else key.encode(), headers)


def producer_options(connection: str, url: str) -> KafkaOptions:
    """The options of a ``kafka://host:port[,host:port][?...]`` connection, read like the
    transport's and the Kafka trigger's (``KafkaOptions``), so one URL serves all three; the
    producer uses ``linger_ms`` and ``send_timeout``. Credentials are refused (and a URL that
    has them is never quoted)."""
    from orchestrator.backends.kafka.client import KafkaOptions

    parts = urlsplit(url)
    if parts.scheme != "kafka":
        raise config_error(PREFIX, f"connection {connection!r} is not a kafka://host:port URL")
    if "@" in parts.netloc:
        raise config_error(PREFIX, f"connection {connection!r}: credentials in Kafka URLs are not supported")
    try:
        return KafkaOptions.from_url(url)
    except ValueError as exc:
        raise config_error(PREFIX, f"connection {connection!r}: {exc}") from None


def kafka_error(exc: BaseException, where: str) -> ConnectorError | None:
    """The step error for an aiokafka (or socket) exception; None for anything else."""
    from aiokafka import errors as kafka

    detail = f"{where}: {type(exc).__name__}: {exc}"

    def error(kind: str, retryable: bool) -> ConnectorError:
        return ConnectorError(f"{PREFIX}.{kind}", detail, retryable=retryable)

    if isinstance(exc, kafka.MessageSizeTooLargeError | kafka.RecordListTooLargeError):
        return error("message_too_large", False)
    if isinstance(exc, kafka.TopicAuthorizationFailedError | kafka.ClusterAuthorizationFailedError):
        return error("unauthorized", False)
    if isinstance(exc, kafka.InvalidTopicError):
        return error("config", False)
    if isinstance(exc, kafka.UnknownTopicOrPartitionError):
        return error("unknown_topic", False)
    if _producer_broken(exc) or isinstance(exc, kafka.KafkaConnectionError | kafka.KafkaTimeoutError | OSError):
        return error("unavailable", True)
    if isinstance(exc, kafka.KafkaError):
        return error("unavailable", True) if exc.retriable else error("error", False)
    return None


def _producer_broken(exc: BaseException) -> bool:
    """The producer will not recover by itself (aiokafka does not reset a lost producer id)."""
    from aiokafka import errors as kafka

    return isinstance(
        exc,
        kafka.OutOfOrderSequenceNumber
        | kafka.UnknownProducerId
        | kafka.InvalidProducerEpoch
        | kafka.ProducerFenced
        | kafka.ProducerClosed,
    )
