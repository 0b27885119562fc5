"""The dead letters of the Kafka and RabbitMQ triggers, where they are parked: read them, and move
one back to the trigger's input once its cause is fixed.

- **Kafka** (``KafkaTrigger``): the dead-letter topic (``<first topic>.dlq`` by default). A listing
  reads the newest ``limit`` records of each partition with a consumer of no group (it commits
  nothing and moves no one's offsets); a letter's id is ``<partition>:<offset>``. Moving one back
  produces a copy of that record (key, value, and its headers but the ``x-orchestrator-*`` ones) to
  the topic it came from (``x-orchestrator-source``, else the trigger's first topic) with an
  idempotent, ``acks=all`` producer. A topic is a log, so the letter stays listed; the trigger's
  dedup key (``message_id``) makes a second move of the same letter harmless where it is set.
- **RabbitMQ** (``AmqpTrigger``): the queue ``<queue>.dead``. A listing takes up to ``limit``
  messages without acknowledging them and hands them all back (``nack`` with requeue), so nothing
  leaves the queue; a letter's id is its ``message_id`` or, without one, a digest of its body and
  headers. Moving one back publishes a persistent copy to the trigger's queue (the default
  exchange, routed by the queue's name), waits for the broker's confirm, and only then
  acknowledges the letter, which leaves the dead queue. A crash between the two leaves the letter
  parked and the copy delivered: at least once, never lost.

Each call opens its own connection and closes it: a listing is an operator's read, not a hot path.
Bodies are shown as text, at most ``PREVIEW_BYTES`` of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import aio_pika
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from orchestrator.backends.kafka.client import KafkaOptions, idempotent_producer, stop_client
from orchestrator.ports import BackendUnavailable, NoDeadLetters, UnknownDeadLetter
from orchestrator.tls import amqp_client
from schemas.definition import AmqpTrigger, KafkaTrigger

PREFIX = "x-orchestrator-"
PREVIEW_BYTES = 4096
MAX_LIMIT = 500
READ_SECONDS = 10.0  # a listing or a move gives up on a broker that does not answer by then
MAX_SCAN = 10_000  # messages a RabbitMQ move looks through for its letter


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    """One dead letter as the API shows it."""

    id: str
    error: str
    source: str  # where it was read from: topic/partition/offset, or the queue
    parked_at: float | None  # epoch seconds: the broker's timestamp of the copy
    key: str | None
    headers: dict[str, str] = field(default_factory=dict)
    value: str | None = None  # text of the body, at most PREVIEW_BYTES
    size: int = 0  # bytes of the body

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "error": self.error,
            "source": self.source,
            "parked_at": self.parked_at,
            "key": self.key,
            "headers": self.headers,
            "value": self.value,
            "size": self.size,
            "truncated": self.value is not None and self.size > PREVIEW_BYTES,
        }


class DeadLetterQueue(Protocol):
    """Where one trigger parks what it cannot take."""

    @property
    def destination(self) -> str:
        """The dead-letter topic or queue, for people to read."""

    async def list(self, limit: int) -> list[ParkedMessage]:
        """Up to ``limit`` parked messages, newest first (Kafka) or in queue order (RabbitMQ)."""

    async def move_back(self, letter_id: str) -> str:
        """Send the letter to the trigger's input again; where it went. UnknownDeadLetter."""


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")


def _preview(body: bytes | None) -> tuple[str | None, int]:
    if body is None:
        return None, 0
    return body[:PREVIEW_BYTES].decode("utf-8", errors="replace"), len(body)


# -- Kafka ----------------------------------------------------------------------------------------


class KafkaDeadLetters:
    """The dead-letter topic of one Kafka trigger (see the module docstring)."""

    def __init__(self, trigger: KafkaTrigger, options: KafkaOptions) -> None:
        self.trigger = trigger
        self.options = options
        self.topic = trigger.dead_letter_topic or f"{trigger.topics[0]}.dlq"

    @property
    def destination(self) -> str:
        return f"kafka topic {self.topic}"

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=list(self.options.bootstrap),
            **self.options.security.client_args(),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """The topic's partitions (none when it does not exist: the trigger never parked anything)."""
        if self.topic not in await consumer.topics():
            return []
        admin = AIOKafkaAdminClient(
            bootstrap_servers=list(self.options.bootstrap), **self.options.security.client_args()
        )
        await admin.start()
        try:
            [described] = await admin.describe_topics([self.topic])
        finally:
            await admin.close()
        numbers = sorted(int(p["partition"]) for p in described.get("partitions") or ())
        return [TopicPartition(self.topic, n) for n in numbers]

    async def list(self, limit: int) -> list[ParkedMessage]:
        limit = max(1, min(limit, MAX_LIMIT))
        consumer = self._consumer()
        try:
            async with asyncio.timeout(READ_SECONDS):
                await consumer.start()
                partitions = await self._partitions(consumer)
                if not partitions:
                    return []
                consumer.assign(partitions)
                begins = await consumer.beginning_offsets(partitions)
                ends = await consumer.end_offsets(partitions)
                for tp in partitions:
                    consumer.seek(tp, max(begins[tp], ends[tp] - limit))
                found: list[Any] = []
                while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                    batches = await consumer.getmany(*partitions, timeout_ms=500, max_records=limit)
                    for tp, records in batches.items():
                        found += [r for r in records if r.offset < ends[tp]]
        except (TimeoutError, KafkaError, OSError) as exc:
            raise BackendUnavailable(f"cannot read the dead letters in {self.topic}: {exc!r}") from None
        finally:
            await stop_client(f"closing the reader of {self.topic}", consumer.stop, READ_SECONDS)
        found.sort(key=lambda r: (r.timestamp, r.partition, r.offset), reverse=True)
        return [self._parked(record) for record in found[:limit]]

    def _parked(self, record: Any) -> ParkedMessage:
        headers = {str(name): _text(value) for name, value in record.headers or ()}
        value, size = _preview(record.value)
        return ParkedMessage(
            id=f"{record.partition}:{record.offset}",
            error=headers.get(PREFIX + "error", ""),
            source=headers.get(PREFIX + "source", ""),
            parked_at=record.timestamp / 1000 if record.timestamp is not None else None,
            key=None if record.key is None else _text(record.key),
            headers=headers,
            value=value,
            size=size,
        )

    async def move_back(self, letter_id: str) -> str:
        partition_text, _, offset_text = letter_id.partition(":")
        if not (partition_text.isdigit() and offset_text.isdigit()):
            raise UnknownDeadLetter(f"no dead letter {letter_id!r} in {self.topic}: ids are <partition>:<offset>")
        tp, offset = TopicPartition(self.topic, int(partition_text)), int(offset_text)
        consumer = self._consumer()
        producer = None
        try:
            async with asyncio.timeout(READ_SECONDS):
                await consumer.start()
                if tp not in await self._partitions(consumer):
                    raise UnknownDeadLetter(f"no dead letter {letter_id!r} in {self.topic}")
                consumer.assign([tp])
                begin, end = (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
                if not begin <= offset < end:
                    held = f"offsets {begin} to {end - 1}" if end > begin else "empty"
                    raise UnknownDeadLetter(f"no dead letter {letter_id!r} in {self.topic} ({held})")
                consumer.seek(tp, offset)
                record = await consumer.getone(tp)
                if record.offset != offset:  # compacted away, or an aborted transaction's
                    raise UnknownDeadLetter(f"no dead letter {letter_id!r} in {self.topic}")
                source = _text(dict(record.headers or ()).get(PREFIX + "source")).split("/")[0]
                target = source if source in self.trigger.topics else self.trigger.topics[0]
                headers = [(n, v or b"") for n, v in record.headers or () if not n.lower().startswith(PREFIX)]
                producer = idempotent_producer(
                    self.options.bootstrap, "orchestrator.dead-letters", linger_ms=0,
                    send_timeout=READ_SECONDS, security=self.options.security,
                )  # fmt: skip
                await producer.start()
                await (await producer.send(target, record.value, key=record.key, headers=headers))
                return f"kafka topic {target}"
        except (TimeoutError, KafkaError, OSError) as exc:
            raise BackendUnavailable(f"cannot move {letter_id} back from {self.topic}: {exc!r}") from None
        finally:
            await stop_client(f"closing the reader of {self.topic}", consumer.stop, READ_SECONDS)
            if producer is not None:
                await stop_client(f"stopping the producer moving {letter_id} back", producer.stop, READ_SECONDS)


# -- RabbitMQ -------------------------------------------------------------------------------------


def amqp_letter_id(message: Any) -> str:
    """The message's ``message_id``, else a digest of its body and headers."""
    if message.message_id:
        return str(message.message_id)
    headers = json.dumps(message.headers or {}, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(headers.encode() + b"\0" + message.body).hexdigest()[:32]


class AmqpDeadLetters:
    """The dead queue of one RabbitMQ trigger (see the module docstring)."""

    def __init__(self, trigger: AmqpTrigger, url: str) -> None:
        self.trigger = trigger
        self.url = url
        self.queue = f"{trigger.queue}.dead"

    @property
    def destination(self) -> str:
        return f"rabbitmq queue {self.queue}"

    async def _taken(self, channel: Any, limit: int) -> list[Any]:
        """Up to ``limit`` messages of the dead queue, unacknowledged (the caller hands them back)."""
        try:
            queue = await channel.declare_queue(self.queue, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return []  # the trigger never ran: nothing parked
        taken: list[Any] = []
        while len(taken) < limit:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            taken.append(message)
        return taken

    async def list(self, limit: int) -> list[ParkedMessage]:
        limit = max(1, min(limit, MAX_LIMIT))
        url, ssl_context = amqp_client(self.url)
        try:
            async with asyncio.timeout(READ_SECONDS):
                connection = await aio_pika.connect(url, ssl_context=ssl_context)
                async with connection:
                    channel = await connection.channel()
                    taken = await self._taken(channel, limit)
                    parked = [self._parked(message) for message in taken]
                    for message in taken:
                        await message.nack(requeue=True)
                    return parked
        except (TimeoutError, aio_pika.exceptions.AMQPError, OSError) as exc:
            raise BackendUnavailable(f"cannot read the dead letters in {self.queue}: {exc!r}") from None

    def _parked(self, message: Any) -> ParkedMessage:
        headers = {
            str(k): _text(v) if isinstance(v, bytes | str) else json.dumps(v, default=str)
            for k, v in (message.headers or {}).items()
        }
        value, size = _preview(message.body)
        return ParkedMessage(
            id=amqp_letter_id(message),
            error=headers.get(PREFIX + "error", ""),
            source=headers.get(PREFIX + "queue", self.trigger.queue),
            parked_at=message.timestamp.timestamp() if message.timestamp else None,
            key=message.routing_key or None,
            headers=headers,
            value=value,
            size=size,
        )

    async def move_back(self, letter_id: str) -> str:
        url, ssl_context = amqp_client(self.url)
        try:
            async with asyncio.timeout(READ_SECONDS):
                connection = await aio_pika.connect(url, ssl_context=ssl_context)
                async with connection:
                    channel = await connection.channel(publisher_confirms=True)
                    taken = await self._taken(channel, MAX_SCAN)
                    found = next((m for m in taken if amqp_letter_id(m) == letter_id), None)
                    try:
                        if found is None:
                            raise UnknownDeadLetter(f"no dead letter {letter_id!r} in {self.queue}")
                        headers = {k: v for k, v in (found.headers or {}).items() if not str(k).startswith(PREFIX)}
                        copy = aio_pika.Message(
                            found.body, headers=headers, content_type=found.content_type,
                            content_encoding=found.content_encoding, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            priority=found.priority, correlation_id=found.correlation_id, message_id=found.message_id,
                            timestamp=found.timestamp, type=found.type, app_id=found.app_id,
                        )  # fmt: skip
                        await channel.default_exchange.publish(copy, routing_key=self.trigger.queue, mandatory=True)
                        await found.ack()  # only once the broker confirmed the copy
                    finally:
                        for message in taken:
                            if message is not found:
                                await message.nack(requeue=True)
                    return f"rabbitmq queue {self.trigger.queue}"
        except (TimeoutError, aio_pika.exceptions.AMQPError, OSError) as exc:
            raise BackendUnavailable(f"cannot move {letter_id} back from {self.queue}: {exc!r}") from None


def dead_letter_queue(trigger: Any, connection_url: str) -> DeadLetterQueue:
    """The dead letters of ``trigger`` (its named connection's URL given); NoDeadLetters for a
    kind that parks none."""
    if isinstance(trigger, KafkaTrigger):
        return KafkaDeadLetters(trigger, KafkaOptions.from_url(connection_url))
    if isinstance(trigger, AmqpTrigger):
        return AmqpDeadLetters(trigger, connection_url)
    raise NoDeadLetters(f"a {trigger.type} trigger parks no dead letters (only kafka and amqp triggers do)")
