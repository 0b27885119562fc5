"""The transition stream: every committed execution event, published to a Kafka topic as a CloudEvent.

``ORCHESTRATOR_TRANSITIONS_URL=kafka://host:port[,host:port]?topic=orchestrator.transitions
&partitions=12&replication=1&send_timeout=30&start_timeout=10&linger_ms=0`` (off when unset).

A projection of the global feed (``orchestrator/projections/runner.py``): the runner hands it the
feed's events in commit order, it produces them (``apply``), waits for the broker's acks
(``flush``, acks=all, idempotent producer), and only then does the runner save its checkpoint.
So a crash between an append and its publication loses nothing: the next start publishes from
the checkpoint. Each record: key = execution id (one execution's events share a partition, in
sequence order), value = the envelope's structured CloudEvent (``Envelope.to_bytes()``), header
``content-type: application/cloudevents+json`` plus a ``ce_<attribute>`` header per attribute,
so consumers route without parsing. With encryption at rest on, the value is the sealed form the
event log stores (``codec: aes256gcm``, ``data_base64``; header ``ce_codec: aes256gcm``) unless
``ORCHESTRATOR_TRANSITIONS_PLAINTEXT=true`` publishes plaintext for a trusted consumer.

At-least-once: events after the last checkpoint are published again after a crash or a failed
flush; duplicates carry the same CloudEvent id. In one process (in-process transport, a feed
without settle delay) ``on_committed`` is also an engine observer: a command returns once its
events are acknowledged (while the exporter is healthy, for at most ``send_timeout``), and a
redelivered command (it commits nothing new) publishes the events of its last decision again.
The contract is in docs/events.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from orchestrator.backends.kafka.client import (
    PLAINTEXT,
    KafkaSecurity,
    ensure_topics,
    idempotent_producer,
    options_from_url,
)
from orchestrator.engine.engine import Committed
from orchestrator.ports import BackendUnavailable, EventCodec, EventLog
from orchestrator.tls import redact_url
from schemas.envelope import Envelope

log = logging.getLogger(__name__)

STRUCTURED = "application/cloudevents+json"
TAIL_CHUNK = 64  # events read per step when looking back for the last decision
Publish = Callable[[Sequence[Envelope]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TransitionOptions:
    """What ``kafka://`` transition URLs configure; ``from_url`` rejects unknown options."""

    bootstrap: tuple[str, ...]
    topic: str = "orchestrator.transitions"
    partitions: int = 12  # used when the exporter creates the topic
    replication: int = 1
    linger_ms: int = 0
    send_timeout: float = 30.0  # BackendUnavailable when a batch is not acknowledged within this
    start_timeout: float = 10.0
    client_id: str = "orchestrator.transitions"
    security: KafkaSecurity = PLAINTEXT  # TLS and SASL options (backends/kafka/security.py)

    @classmethod
    def from_url(cls, url: str) -> TransitionOptions:
        try:
            options = options_from_url(cls, url)
        except ValueError as exc:
            raise ValueError(f"ORCHESTRATOR_TRANSITIONS_URL: {exc}") from None
        if not options.topic or min(options.partitions, options.replication) < 1:
            raise ValueError(f"topic must be set and partitions, replication >= 1 in {redact_url(url)!r}")
        return options


def record(envelope: Envelope, sealed: bytes | None = None) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of one event's Kafka record (``sealed``: its encrypted form). Pure."""
    event = envelope.to_cloudevent()
    if sealed is not None:
        event["codec"] = "aes256gcm"
    headers = [("content-type", STRUCTURED.encode())]
    headers += [
        (f"ce_{name}", str(value).encode())
        for name, value in event.items()
        if name not in ("data", "data_base64", "datacontenttype") and value is not None
    ]
    return envelope.subject.encode(), envelope.to_bytes() if sealed is None else sealed, headers


class TransitionExporter:
    """The ``transitions`` projection; ``on_committed`` is its optional engine observer."""

    name = "transitions"

    def __init__(
        self,
        options: TransitionOptions,
        log: EventLog,
        *,
        publish: Publish | None = None,
        memory: int = 100_000,
        codec: EventCodec | None = None,
    ) -> None:
        self.options = options
        self.log = log
        self.codec = codec  # seals each value when set (encryption at rest, not plaintext)
        self._publish: Publish = publish or self._send
        self._memory = memory
        self._pending: list[Envelope] = []  # applied, not flushed yet
        self._exported: OrderedDict[str, int] = OrderedDict()  # execution -> published up to here
        self._progress = asyncio.Condition()
        self._healthy = True  # the last flush succeeded
        self._producer: Any = None
        self.published = 0  # records acknowledged, for tests and metrics

    @classmethod
    def from_url(cls, url: str, log: EventLog, codec: EventCodec | None = None) -> TransitionExporter:
        return cls(TransitionOptions.from_url(url), log, codec=codec)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the topic when missing and start the producer; BackendUnavailable if unreachable."""
        opts = self.options
        producer = idempotent_producer(
            opts.bootstrap,
            opts.client_id,
            linger_ms=opts.linger_ms,
            send_timeout=opts.send_timeout,
            security=opts.security,
        )
        try:
            async with asyncio.timeout(opts.start_timeout):
                await self._create_topic()
                await producer.start()
        except (TimeoutError, KafkaError, OSError) as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise BackendUnavailable(
                f"transition stream {','.join(opts.bootstrap)}/{opts.topic}: cannot start ({exc!r})"
            ) from None
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10.0):
                    await producer.stop()  # flushes what is pending

    async def __aenter__(self) -> TransitionExporter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _create_topic(self) -> None:
        opts = self.options
        await ensure_topics(opts.bootstrap, [opts.topic], opts.partitions, opts.replication, security=opts.security)

    # -- the projection -------------------------------------------------------------------------

    async def apply(self, position: int, envelope: Envelope) -> None:
        self._pending.append(envelope)

    async def flush(self) -> None:
        """Publish what was applied, in feed order, and wait for every ack."""
        envelopes, self._pending = self._pending, []  # after a failure the runner applies them again
        if not envelopes:
            return
        try:
            await self._publish(envelopes)
        except Exception:
            await self._note(healthy=False)
            raise
        for envelope in envelopes:
            self._mark(envelope.subject, envelope.sequence)
        await self._note(healthy=True)

    async def reset(self) -> None:
        """Before a rebuild: everything is published again (consumers dedupe on ``id``)."""
        self._pending = []
        self._exported.clear()

    # -- the observer (one process) -------------------------------------------------------------

    async def on_committed(self, committed: Committed) -> None:
        """Return once the commit's events are on the topic. A redelivery (no new events) of a
        command whose events this process published publishes that decision again, after them;
        otherwise the feed publishes whatever is not out yet, so there is nothing to wait for."""
        execution_id, sequence = committed.after.execution_id, committed.after.sequence
        if not committed.events and execution_id not in self._exported:
            return
        done = await self.exported(execution_id, sequence, self.options.send_timeout)
        if done and not committed.events:
            envelopes = await self.last_decision(committed)
            if envelopes:
                await self._publish(envelopes)

    async def exported(self, execution_id: str, sequence: int, timeout: float) -> bool:
        """Wait until the execution's events up to ``sequence`` are acknowledged; False when the
        exporter is failing or ``timeout`` passed first (they are published later)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._progress:
                await self._progress.wait_for(
                    lambda: self._exported.get(execution_id, 0) >= sequence or not self._healthy
                )
                return self._exported.get(execution_id, 0) >= sequence
        return False

    async def last_decision(self, committed: Committed) -> list[Envelope]:
        """The log's tail events caused by this command (a redelivery): published again."""
        command_id = committed.command.command_id
        if command_id is None:
            return []
        execution_id, upto = committed.after.execution_id, committed.after.sequence
        found: list[Envelope] = []
        while upto > 0:
            start = max(0, upto - TAIL_CHUNK)
            chunk = await self.log.read(execution_id, after_sequence=start, limit=upto - start)
            for envelope in reversed(chunk):
                if envelope.causationid != command_id:
                    return found[::-1]
                found.append(envelope)
            upto = start
        return found[::-1]

    async def _note(self, *, healthy: bool) -> None:
        async with self._progress:
            self._healthy = healthy
            self._progress.notify_all()

    def _mark(self, execution_id: str, sequence: int) -> None:
        current = self._exported.get(execution_id, 0)
        self._exported[execution_id] = max(current, sequence)
        self._exported.move_to_end(execution_id)
        while len(self._exported) > self._memory:
            self._exported.popitem(last=False)

    # -- Kafka ----------------------------------------------------------------------------------

    async def _send(self, envelopes: Sequence[Envelope]) -> None:
        """Produce in order and wait for every ack; retries the unacknowledged until send_timeout."""
        if self._producer is None:
            raise RuntimeError("transition exporter not started")
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self.options.send_timeout, 0.1
        pending = list(envelopes)
        sealed: dict[int, bytes] = {}
        if self.codec is not None:
            sealed = dict(zip(map(id, pending), await self.codec.encode(pending), strict=True))
        while pending:
            acked = 0
            try:
                futures = []
                for envelope in pending:
                    key, value, headers = record(envelope, sealed.get(id(envelope)))
                    futures.append(
                        await self._producer.send(self.options.topic, value, key=key, headers=headers)
                    )
                for future in futures:
                    await future
                    acked += 1
                    self.published += 1
                return
            except KafkaError as exc:
                pending = pending[acked:]
                retry = exc.retriable or isinstance(exc, KafkaConnectionError | KafkaTimeoutError)
                remaining = deadline - loop.time()
                if not retry or remaining <= 0:
                    raise BackendUnavailable(
                        f"transition stream: no ack for {len(pending)} event(s) of "
                        f"{pending[0].subject} on {self.options.topic} ({type(exc).__name__}: {exc})"
                    ) from exc
                log.warning("transition export failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 2, 5.0)
