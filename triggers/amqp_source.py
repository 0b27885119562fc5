"""The RabbitMQ (AMQP 0-9-1) trigger: consume a queue, start (or deliver to) executions, ack after.

One source per ``AmqpTrigger``. At ``start()`` it opens a robust connection (aio-pika
``connect_robust``) to the trigger's named connection, one channel with ``prefetch`` as its QoS
and publisher confirms on, and declares what it needs (all durable):

- the trigger's ``queue``; bound to ``exchange`` with ``binding_key`` when an exchange is set
  (the exchange is declared with ``exchange_type``);
- the dead-letter exchange ``dead_letter_exchange`` (default ``<queue>.dlx``, fanout) and the
  queue ``<queue>.dead`` bound to it, so dead letters are kept until someone reads them.

Each delivery becomes an :class:`~triggers.inbound.InboundMessage` (CloudEvents AMQP binding or a
plain JSON body, see :mod:`schemas.cloudevents`) and goes through :meth:`Router.accept`. The
delivery is acknowledged only after ``accept`` returned. A "dead" outcome (or a body that cannot
be decoded) is first published to the dead-letter exchange as a persistent copy with the reason in
``x-orchestrator-error``, the confirm awaited, and only then is the original acknowledged. When
``accept`` raises (the outcome is unknown, e.g. the event log is down) the delivery is nacked with
requeue after a short pause, so the broker redelivers it: never lost, never acknowledged early.

Deliveries are handled concurrently, each in its own task; the broker never sends more than
``prefetch`` unacknowledged ones, and acks are per delivery tag, so their order does not matter.
A dedup key derived from the message (its ``message_id`` property, else the CloudEvent id, else a
hash of the body) makes every redelivery harmless: it finds the execution it already started.

After a broker restart the robust connection reconnects by itself and re-declares the channel's
QoS, exchanges, queues, bindings and consumer. Deliveries that were in flight on the lost channel
cannot be acknowledged any more; the broker requeued them when the channel died, and their
redelivery is recognised as a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from orchestrator.tls import amqp_client
from schemas.cloudevents import from_amqp
from schemas.definition import AmqpTrigger
from triggers.inbound import BadMessage, InboundMessage, Outcome, Router, content_identity
from triggers.sources import SourceSpec, SourceStats

log = logging.getLogger(__name__)

ERROR_HEADER = "x-orchestrator-error"
TRIGGER_HEADER = "x-orchestrator-trigger"
WORKFLOW_HEADER = "x-orchestrator-workflow"
QUEUE_HEADER = "x-orchestrator-queue"
EXCHANGE_HEADER = "x-orchestrator-exchange"
ROUTING_KEY_HEADER = "x-orchestrator-routing-key"
MAX_REASON = 4000  # headers travel in one frame; keep the reason well below frame_max


class AmqpTriggerSource:
    """A ``TriggerSource`` for ``AmqpTrigger``; see the module docstring.

    ``spec.extra`` may set ``retry_delay`` (seconds before an unknown outcome is requeued, 1.0) and
    ``stop_timeout`` (seconds ``stop()`` waits for deliveries in hand, 10.0)."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.trigger: AmqpTrigger = spec.trigger
        self.router = Router(spec.runtime, spec.workflow, spec.trigger)
        self.stats = SourceStats()
        self.retry_delay = float(spec.extra.get("retry_delay", 1.0))
        self.stop_timeout = float(spec.extra.get("stop_timeout", 10.0))
        self.in_flight = 0
        self.peak_in_flight = 0  # the most deliveries ever in hand at once (<= prefetch)
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._dead_letters: AbstractExchange | None = None
        self._consumer_tag: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # The broker hands out at most `prefetch`; this also bounds the deliveries of a lost
        # channel still finishing while the restored channel's ones arrive.
        self._accepting = asyncio.Semaphore(self.trigger.prefetch)
        self._stopping = asyncio.Event()

    @property
    def dead_letter_exchange(self) -> str:
        return self.trigger.dead_letter_exchange or f"{self.trigger.queue}.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.trigger.queue}.dead"

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, declare the topology, subscribe; returns once the consumer is registered."""
        url = self.spec.settings.connection(self.trigger.connection)
        name = f"orchestrator trigger {self.spec.workflow}/{self.trigger.name}"
        url, ssl_context = amqp_client(url)  # our ssl_* options become a context (orchestrator/tls.py)
        self._connection = await aio_pika.connect_robust(
            url, ssl_context=ssl_context, client_properties={"connection_name": name}
        )
        try:
            await self._subscribe(self._connection)
        except BaseException:
            await self._connection.close()
            self._connection = None
            raise
        log.info(
            "amqp trigger %s/%s consuming %s (prefetch %d)",
            self.spec.workflow,
            self.trigger.name,
            self.trigger.queue,
            self.trigger.prefetch,
        )

    async def _subscribe(self, connection: AbstractRobustConnection) -> None:
        trigger = self.trigger
        # on_return_raises: a dead letter that no queue takes is not "parked"; the original is
        # then requeued instead of acknowledged.
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        self._channel = channel
        await channel.set_qos(prefetch_count=trigger.prefetch)
        queue = await self._declare_queue(connection, channel)
        if trigger.exchange:
            exchange = await channel.declare_exchange(
                trigger.exchange, type=trigger.exchange_type, durable=True
            )
            await queue.bind(exchange, routing_key=trigger.binding_key)
        dead_letters = await channel.declare_exchange(
            self.dead_letter_exchange, type=aio_pika.ExchangeType.FANOUT, durable=True
        )
        dead_queue = await channel.declare_queue(self.dead_letter_queue, durable=True)
        await dead_queue.bind(dead_letters)
        self._dead_letters = dead_letters
        self._queue = queue
        self._consumer_tag = await queue.consume(self._on_delivery)

    async def _declare_queue(
        self, connection: AbstractRobustConnection, channel: AbstractChannel
    ) -> AbstractQueue:
        """Declare the queue durable; when it already exists with other properties (a quorum
        queue, its own TTL or length limit), use it as it is. A failed declaration closes its
        channel, so it is tried on a throwaway channel first."""
        name = self.trigger.queue
        probe = await connection.channel(publisher_confirms=False)
        try:
            await probe.declare_queue(name, durable=True, robust=False)
            inequivalent = False
        except aio_pika.exceptions.ChannelPreconditionFailed as exc:
            log.info(
                "amqp trigger %s: using the existing queue %s as it is (%s)", self.trigger.name, name, exc
            )
            inequivalent = True
        finally:
            if not probe.is_closed:
                await probe.close()
        return await channel.declare_queue(name, durable=not inequivalent, passive=inequivalent)

    async def stop(self) -> None:
        """Cancel the consumer, wait (bounded) for the deliveries in hand, close.

        A delivery still in hand after ``stop_timeout`` is abandoned unacknowledged: closing the
        channel returns it to the queue."""
        self._stopping.set()
        if self._queue is not None and self._consumer_tag is not None:
            try:
                await asyncio.wait_for(self._queue.cancel(self._consumer_tag), 5)
            except Exception as exc:  # a dead channel has no consumer left to cancel
                log.debug("cancelling the consumer of %s failed: %r", self.trigger.queue, exc)
        self._consumer_tag = None
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=self.stop_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.warning(
                    "amqp trigger %s: abandoned %d unacknowledged deliveries at stop",
                    self.trigger.name,
                    len(pending),
                )
        if self._channel is not None:
            channel, self._channel = self._channel, None
            try:
                await channel.close()
            except Exception as exc:
                log.debug("closing the channel failed: %r", exc)
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()

    async def __aenter__(self) -> AmqpTriggerSource:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- deliveries -----------------------------------------------------------------------------

    async def _on_delivery(self, message: AbstractIncomingMessage) -> None:
        if self._stopping.is_set():
            return  # arrived between cancel and cancel-ok: left unacked, requeued at close
        task = asyncio.create_task(self._handle(message), name=f"amqp-delivery-{message.delivery_tag}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        self.stats.received += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            async with self._accepting:
                await self._process(message)
        finally:
            self.in_flight -= 1

    async def _process(self, message: AbstractIncomingMessage) -> None:
        try:
            outcome = await self._accept(message)
        except Exception as exc:
            await self._requeue(message, f"accept failed: {exc!r}")
            return
        if outcome.kind == "dead":
            try:
                await self._dead_letter(message, outcome.reason)
            except Exception as exc:
                await self._requeue(message, f"dead-lettering failed: {exc!r}")
                return
        await self._settle(message, "ack")
        self.stats.count(outcome.kind)
        self.router.report(outcome.kind)

    async def _accept(self, message: AbstractIncomingMessage) -> Outcome:
        try:
            inbound = self.inbound(message)
        except BadMessage as exc:
            return Outcome("dead", reason=str(exc))
        except Exception as exc:  # decoding is pure: it would fail the same way every time
            log.exception("amqp trigger %s: cannot decode a message", self.trigger.name)
            return Outcome("dead", reason=f"cannot decode the message: {exc!r}")
        return await self.router.accept(inbound)

    def inbound(self, message: AbstractIncomingMessage) -> InboundMessage:
        """The transport-neutral message; BadMessage when the body cannot be decoded."""
        decoded = from_amqp(message.body, dict(message.headers or {}), message.content_type)
        if message.message_id:
            identity = f"amqp:{message.message_id}"
        else:
            identity = content_identity("amqp", message.body)
        return InboundMessage(
            data=decoded.data,
            identity=identity,
            headers={str(k): header_text(v) for k, v in (message.headers or {}).items()},
            cloudevent=decoded.attributes,
            message_id=message.message_id or None,
            where={
                "queue": self.trigger.queue,
                "exchange": message.exchange or "",
                "routing_key": message.routing_key or "",
                "redelivered": bool(message.redelivered),
            },
        )

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        """Publish a persistent copy to the dead-letter exchange and wait for the broker's confirm."""
        assert self._dead_letters is not None
        # Earlier x-orchestrator-* headers (a dead letter replayed into the queue) are replaced.
        headers: dict[str, Any] = {
            k: v for k, v in (message.headers or {}).items() if not str(k).startswith("x-orchestrator-")
        }
        headers.update(
            {
                ERROR_HEADER: reason[:MAX_REASON],
                TRIGGER_HEADER: self.trigger.name,
                WORKFLOW_HEADER: self.spec.workflow,
                QUEUE_HEADER: self.trigger.queue,
                EXCHANGE_HEADER: message.exchange or "",
                ROUTING_KEY_HEADER: message.routing_key or "",
            }
        )
        copy = aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            priority=message.priority,
            correlation_id=message.correlation_id,
            reply_to=message.reply_to,
            message_id=message.message_id,
            timestamp=message.timestamp,
            type=message.type,
            app_id=message.app_id,
        )
        await self._dead_letters.publish(copy, routing_key=message.routing_key or "", mandatory=True)
        log.warning(
            "amqp trigger %s: dead-lettered a message from %s to %s: %s",
            self.trigger.name,
            self.trigger.queue,
            self.dead_letter_exchange,
            reason,
        )

    async def _requeue(self, message: AbstractIncomingMessage, error: str) -> None:
        """The outcome is unknown: pause, then hand the delivery back to the broker."""
        self.stats.last_error = error
        self.router.report("retried")
        log.warning("amqp trigger %s: %s; requeueing the delivery", self.trigger.name, error)
        with contextlib.suppress(TimeoutError):  # stopping: hand it back at once
            await asyncio.wait_for(self._stopping.wait(), self.retry_delay)
        await self._settle(message, "nack")

    async def _settle(self, message: AbstractIncomingMessage, how: str) -> None:
        try:
            if how == "ack":
                await message.ack()
            else:
                await message.nack(requeue=True)
        except Exception as exc:
            # The channel it came on is gone (broker restart, connection loss): the broker has
            # requeued the delivery already and will redeliver it, marked redelivered.
            self.stats.last_error = f"{how} failed: {exc!r}"
            log.info("amqp trigger %s: could not %s a delivery: %r", self.trigger.name, how, exc)


def header_text(value: Any) -> str:
    """A header value as text, for expressions (``headers.x``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, default=str, separators=(",", ":"))
