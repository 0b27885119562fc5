"""The transition stream: every committed execution event, published to a Kafka topic as a CloudEvent.

``ORCHESTRATOR_TRANSITIONS_URL=kafka://host:port[,host:port]?topic=orchestrator.transitions
&partitions=12&replication=1&send_timeout=30&start_timeout=10&linger_ms=0`` (off when unset).

An engine observer. Each record: key = execution id (one execution's events share a partition,
in sequence order), value = the envelope's structured CloudEvent (``Envelope.to_bytes()``, the
bytes the event log stores), header ``content-type: application/cloudevents+json`` plus a
``ce_<attribute>`` header per attribute, so consumers route without parsing. The observer
returns once the broker acknowledged (acks=all, idempotent producer), so with the Kafka transport
a command's offset is committed only after its transitions are exported.

At-least-once: a redelivered command (or a resume) commits nothing new, so the events of the
last decision (the log's tail events caused by that command id) are published again; an export
that failed is repaired by the next commit of the execution, which first publishes what is
missing from the log. Duplicates carry the same CloudEvent id. The contract is in docs/events.md.

Ordering inside one process: observers run after the engine lock is released, so two commits of
one execution may reach the exporter out of order. ``note`` (registered as the FIRST observer, it
never awaits, so it runs in commit order) records where each execution's stream stands; the
exporter (registered after the effects) then fills any gap from the log before publishing, and
skips events a later export already published.
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

from orchestrator.backends.kafka.client import ensure_topics, idempotent_producer, options_from_url
from orchestrator.engine.engine import Committed
from orchestrator.engine.keyed_locks import KeyedLocks
from orchestrator.ports import BackendUnavailable, EventLog
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

    @classmethod
    def from_url(cls, url: str) -> TransitionOptions:
        try:
            options = options_from_url(cls, url)
        except ValueError as exc:
            raise ValueError(f"ORCHESTRATOR_TRANSITIONS_URL: {exc}") from None
        if not options.topic or min(options.partitions, options.replication) < 1:
            raise ValueError(f"topic must be set and partitions, replication >= 1 in {url!r}")
        return options


def record(envelope: Envelope) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of one event's Kafka record. Pure."""
    event = envelope.to_cloudevent()
    headers = [("content-type", STRUCTURED.encode())]
    headers += [
        (f"ce_{name}", str(value).encode())
        for name, value in event.items()
        if name not in ("data", "data_base64", "datacontenttype") and value is not None
    ]
    return envelope.subject.encode(), envelope.to_bytes(), headers


class TransitionExporter:
    """Register ``note`` first and ``on_committed`` last among the engine's observers."""

    def __init__(
        self,
        options: TransitionOptions,
        log: EventLog,
        *,
        publish: Publish | None = None,
        memory: int = 100_000,
    ) -> None:
        self.options = options
        self.log = log
        self._publish: Publish = publish or self._send
        self._memory = memory
        self._exported: OrderedDict[str, int] = OrderedDict()  # execution -> published up to here
        self._locks = KeyedLocks()  # one execution's exports one at a time
        self._producer: Any = None
        self.published = 0  # records acknowledged, for tests and metrics

    @classmethod
    def from_url(cls, url: str, log: EventLog) -> TransitionExporter:
        return cls(TransitionOptions.from_url(url), log)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the topic when missing and start the producer; BackendUnavailable if unreachable."""
        opts = self.options
        producer = idempotent_producer(
            opts.bootstrap, opts.client_id, linger_ms=opts.linger_ms, send_timeout=opts.send_timeout
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
        await ensure_topics(opts.bootstrap, [opts.topic], opts.partitions, opts.replication)

    # -- observers ----------------------------------------------------------------------------

    async def note(self, committed: Committed) -> None:
        """First observer; never awaits, so it runs in commit order: where the stream starts."""
        if committed.events:
            execution_id = committed.after.execution_id
            if execution_id not in self._exported:
                self._mark(execution_id, committed.events[0].sequence - 1)

    async def on_committed(self, committed: Committed) -> None:
        """Publish what this commit made durable (and any gap before it); redeliveries republish."""
        execution_id = committed.after.execution_id
        async with self._locks.hold(execution_id):
            if committed.events:
                envelopes = await self._unpublished(execution_id, committed.events)
            else:
                envelopes = await self.last_decision(committed)
            if envelopes:
                await self._publish(envelopes)
                self._mark(execution_id, envelopes[-1].sequence)

    async def _unpublished(self, execution_id: str, events: Sequence[Envelope]) -> list[Envelope]:
        first, last = events[0].sequence, events[-1].sequence
        published = self._exported.get(execution_id, first - 1)
        if last <= published:
            return []  # a later commit's export already published these (from the log)
        missing: list[Envelope] = []
        if first > published + 1:  # an earlier commit not exported yet, or whose export failed
            missing = await self.log.read(execution_id, after_sequence=published, limit=first - 1 - published)
        return missing + [e for e in events if e.sequence > published]

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
        while pending:
            acked = 0
            try:
                futures = []
                for envelope in pending:
                    key, value, headers = record(envelope)
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
