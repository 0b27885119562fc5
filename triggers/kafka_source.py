"""The Kafka topic trigger: consume ``KafkaTrigger.topics`` and start executions (or deliver events).

Factory: ``triggers.kafka_source:KafkaTriggerSource`` (takes one ``SourceSpec``). The brokers come
from ``settings.connection(trigger.connection)``, a ``kafka://host:port[,host:port]`` URL read by
``KafkaOptions.from_url``, so its options apply here too: ``partitions`` and ``replication`` for
topics this source creates, ``concurrency`` (records in flight per source, default 64),
``grace``, ``start_timeout``, ``send_timeout``, ``linger_ms``.

Topics: ``start`` CREATES a missing trigger topic and the dead-letter topic (``partitions`` and
``replication`` from the connection URL, default 12 and 1) and waits until their partitions have
leaders; it never waits for someone else to create them.

Per record: decode (CloudEvents binary or structured, else a JSON body; ``schemas.cloudevents``),
``Router.accept``, and for a ``dead`` outcome (or a record that does not decode) produce the
original key, value and headers plus ``x-orchestrator-*`` headers to the dead-letter topic and wait
for the broker's ack (idempotent producer, acks=all). Only then is the record *finished*.

Offsets: records are processed concurrently (at most ``concurrency`` per source; records with the
same non-empty key in one partition one after another, in offset order). Per partition, the
committed offset is the one after the highest CONTIGUOUS finished record (``OffsetTracker``), so a
crash redelivers everything unfinished (and at most ~50 ms of finished records; commits are
batched) and dedup makes the redelivery harmless. When ``accept`` raises (an unknown outcome, e.g.
the event log is down) the partition pauses, lets its other records finish, seeks back to the first
unfinished offset and resumes after a backoff (0.1 s doubling to 30 s), probing with that record
alone (the records after it wait until it succeeded); one warning per failure streak. A bad message never blocks a partition: it is parked in the dead-letter topic.

Rebalances: on revoke, running records get ``grace`` seconds, what finished is committed, the rest
is redelivered to the new owner. ``stop`` does the same for every partition, then closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import IllegalStateError, KafkaError, MessageSizeTooLargeError

from orchestrator.backends.kafka.client import (
    PRODUCER_STATE_LOST,
    STOP_TIMEOUT,
    KafkaOptions,
    LagReporter,
    describe,
    ensure_topics,
    idempotent_producer,
    keep_trying,
    stop_client,
)
from orchestrator.ports import BackendUnavailable
from schemas.cloudevents import from_kafka
from schemas.definition import KafkaTrigger
from triggers.inbound import BadMessage, InboundMessage, Outcome, Router
from triggers.kafka_offsets import OffsetTracker
from triggers.sources import SourceSpec, SourceStats

__all__ = ["DLQ_HEADER_PREFIX", "KafkaTriggerSource"]

log = logging.getLogger(__name__)
DLQ_HEADER_PREFIX = "x-orchestrator-"
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 30.0
MAX_REASON = 4000  # characters of the reason kept in the dead letter's header
COMMIT_EVERY = 0.05  # commits of many records are coalesced over this long


@dataclass(eq=False)
class _Lane:
    """One assigned partition: its records in flight and its offset bookkeeping."""

    tp: TopicPartition
    tracker: OffsetTracker = field(default_factory=OffsetTracker)
    tasks: dict[int, asyncio.Task[bool]] = field(default_factory=dict)  # by offset
    tails: dict[bytes, asyncio.Task[bool]] = field(default_factory=dict)  # last record of each key
    recovery: asyncio.Task[None] | None = None
    blocked: bool = False  # recovering: records fetched for it are dropped (they are read again)
    closed: bool = False  # revoked or stopping: take nothing, finish nothing
    delay: float = FIRST_BACKOFF
    failing: bool = False
    probing: bool = False  # after a rewind: the next record taken runs alone first
    probe: asyncio.Task[bool] | None = None  # ... and the records taken after it wait for it


class KafkaTriggerSource(ConsumerRebalanceListener):  # type: ignore[misc]
    """A ``TriggerSource`` for one ``KafkaTrigger`` of one workflow (see the module docstring)."""

    def __init__(self, spec: SourceSpec) -> None:
        trigger = spec.trigger
        if not isinstance(trigger, KafkaTrigger):
            raise TypeError(f"KafkaTriggerSource needs a KafkaTrigger, not {type(trigger).__name__}")
        self.spec = spec
        self.trigger = trigger
        self.options = KafkaOptions.from_url(spec.settings.connection(trigger.connection))
        self.group = trigger.group or f"orchestrator.{spec.workflow}.{trigger.name}"
        self.dead_letter_topic = trigger.dead_letter_topic or f"{trigger.topics[0]}.dlq"
        self.name = f"kafka trigger {spec.workflow}/{trigger.name}"
        self.router = Router(spec.runtime, spec.workflow, trigger)
        self.stats = SourceStats()
        self._lag = LagReporter(self.group)
        self.limit = self.options.concurrency
        self.assigned = asyncio.Event()  # set on the first partition assignment (tests wait on it)
        self._consumer: Any = None
        self._producer: Any = None
        self._lanes: dict[TopicPartition, _Lane] = {}
        self._in_flight = 0
        self._room = asyncio.Event()
        self._dirty = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._loops: list[asyncio.Task[None]] = []
        self._failing_lanes: set[TopicPartition] = set()
        self._streak_failures = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Create missing topics, start the dead-letter producer, join the group and consume."""
        opts = self.options
        failures: list[Exception] = []
        stage = "reach the brokers"
        try:
            async with asyncio.timeout(opts.start_timeout):
                await self._ensure_topics(failures)
                stage = "start the dead-letter producer"
                self._producer = self._new_producer()
                await self._producer.start()
                stage = "start the consumer"
                self._consumer = AIOKafkaConsumer(
                    bootstrap_servers=list(opts.bootstrap),
                    **opts.security.client_args(),
                    group_id=self.group,
                    client_id=self.group,
                    enable_auto_commit=False,
                    auto_offset_reset=self.trigger.start_from,
                    isolation_level="read_committed",  # never start from an aborted transaction
                    heartbeat_interval_ms=1000,
                )
                await keep_trying(self._consumer.start, failures)
        except (TimeoutError, KafkaError, OSError) as exc:
            await self._close_clients()
            last = exc if not isinstance(exc, TimeoutError) or not failures else failures[-1]
            raise BackendUnavailable(
                f"{self.name}: cannot {stage} at {','.join(opts.bootstrap)} "
                f"within {opts.start_timeout:g}s ({describe(last)})"
            ) from None
        self._consumer.subscribe(list(self.trigger.topics), listener=self)
        self._loops = [
            asyncio.create_task(self._fetch_loop(), name=f"{self.name} fetch"),
            asyncio.create_task(self._commit_loop(), name=f"{self.name} commit"),
        ]
        log.info("%s: consuming %s in group %s", self.name, ", ".join(self.trigger.topics), self.group)

    async def stop(self) -> None:
        """Stop fetching, give running records ``grace`` seconds, commit what finished, close."""
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        lanes = list(self._lanes.values())
        self._lanes.clear()
        await self._close_lanes(lanes)
        await self._close_clients()

    async def _close_clients(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None and not await stop_client(
            f"{self.name}: stopping the consumer", consumer.stop, STOP_TIMEOUT
        ):
            await stop_client(f"{self.name}: closing its connections", consumer._client.close, STOP_TIMEOUT)
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_client(f"{self.name}: flushing the producer", producer.flush, max(self.options.grace, 1.0))
            await stop_client(f"{self.name}: stopping the producer", producer.stop, STOP_TIMEOUT)

    def _new_producer(self) -> Any:
        opts = self.options
        return idempotent_producer(
            opts.bootstrap,
            f"{self.group}.dlq",
            linger_ms=opts.linger_ms,
            send_timeout=opts.send_timeout,
            security=opts.security,
        )

    async def _ensure_topics(self, failures: list[Exception]) -> None:
        """Create the trigger topics and the dead-letter topic unless they exist; wait for leaders."""
        opts = self.options
        names = [*self.trigger.topics, self.dead_letter_topic]
        await ensure_topics(opts.bootstrap, names, opts.partitions, opts.replication, failures, security=opts.security)

    # -- rebalances (aiokafka calls these from its coordinator) -------------------------------

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        lanes = [self._lanes.pop(tp) for tp in revoked if tp in self._lanes]
        await self._close_lanes(lanes)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        for tp in assigned:
            self._lanes[tp] = _Lane(tp)
        log.info("%s: assigned %s", self.name, sorted(f"{tp.topic}/{tp.partition}" for tp in assigned))
        self.assigned.set()

    async def _close_lanes(self, lanes: list[_Lane]) -> None:
        """Running records get ``grace`` seconds, the rest is cancelled (redelivered); commit."""
        for lane in lanes:
            self._failing_lanes.discard(lane.tp)
            if lane.recovery is not None:
                lane.recovery.cancel()
                lane.blocked = True
        tasks = [task for lane in lanes for task in lane.tasks.values()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.options.grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for lane in lanes:
            lane.closed = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(self.options.grace, 1.0)):
                await self._commit(lanes)

    # -- fetching and processing --------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        delay = FIRST_BACKOFF
        while True:
            room = self.limit - self._in_flight
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                batch = await self._consumer.getmany(timeout_ms=500, max_records=room)
            except Exception as exc:  # aiokafka reconnects by itself; keep asking
                log.warning("%s: fetching failed (%s); retrying in %.1fs", self.name, describe(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = FIRST_BACKOFF
            for tp, records in batch.items():
                lane = self._lanes.get(tp)
                if lane is None or lane.blocked or lane.closed:
                    continue  # revoked or recovering: these are read again (new owner or after the seek)
                for record in records:
                    self._take(lane, record)
            await self._lag.report(self._consumer, self._lanes, self.router.instruments)

    def _take(self, lane: _Lane, record: Any) -> None:
        offset: int = record.offset
        if not lane.tracker.take(offset):
            return
        self.stats.received += 1
        key: bytes | None = record.key
        previous = lane.tails.get(key) if key else None
        if previous is None and lane.probe is not None and not lane.probe.done():
            previous = lane.probe
        task = asyncio.create_task(self._process(lane, record, previous), name=f"{self.name} {offset}")
        lane.tasks[offset] = task
        if key:
            lane.tails[key] = task
        if lane.probing:
            lane.probing, lane.probe = False, task
        self._in_flight += 1
        task.add_done_callback(functools.partial(self._settled, lane, offset, key))

    def _settled(self, lane: _Lane, offset: int, key: bytes | None, task: asyncio.Task[bool]) -> None:
        self._in_flight -= 1
        self._room.set()
        lane.tasks.pop(offset, None)
        if key and lane.tails.get(key) is task:
            del lane.tails[key]
        if lane.closed or task.cancelled() or task.exception() is not None or not task.result():
            return  # not finished: it holds the commit point and is read again
        lane.tracker.finish(offset)
        self._dirty.set()

    async def _process(self, lane: _Lane, record: Any, previous: asyncio.Task[bool] | None) -> bool:
        """True when the record's outcome is durable (and a dead letter parked)."""
        if previous is not None:
            await asyncio.wait([previous])
            if previous.cancelled() or previous.exception() is not None or not previous.result():
                return False  # keep the key's order: this one is read again after the rewind
        try:
            outcome = await self._handle(record)
        except Exception as exc:
            self._failed(lane, record, exc)
            return False
        self.stats.count(outcome.kind)
        self.router.report(outcome.kind)
        if lane.failing and not lane.blocked:  # taken after the rewind: the partition moves again
            self._recovered(lane)
        return True

    async def _handle(self, record: Any) -> Outcome:
        try:
            message = self.message(record)
        except BadMessage as exc:
            outcome = Outcome("dead", reason=str(exc))
        else:
            outcome = await self.router.accept(message)
        if outcome.kind == "dead":
            await self._dead_letter(record, outcome.reason)
        return outcome

    @staticmethod
    def message(record: Any) -> InboundMessage:
        """The record as an InboundMessage; BadMessage if its value or headers do not decode."""
        raw_headers = list(record.headers or ())
        try:
            decoded = from_kafka(record.value, raw_headers)
        except BadMessage:
            raise
        except Exception as exc:  # decoding is pure: it would fail the same way every time
            log.exception("cannot decode %s/%d/%d", record.topic, record.partition, record.offset)
            raise BadMessage(f"cannot decode the record: {exc!r}"[:MAX_REASON]) from None
        where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        return InboundMessage(
            data=decoded.data,
            identity=f"kafka:{record.topic}/{record.partition}/{record.offset}",
            key=None if record.key is None else _text(record.key),
            headers={name: _text(value) for name, value in raw_headers},
            cloudevent=decoded.attributes,
            where=where,
        )

    async def _dead_letter(self, record: Any, reason: str) -> None:
        """Park the record in the dead-letter topic; returns once the broker has it."""
        headers = [(n, v or b"") for n, v in record.headers or () if not n.lower().startswith(DLQ_HEADER_PREFIX)]
        headers += [
            (DLQ_HEADER_PREFIX + "error", reason[:MAX_REASON].encode()),
            (DLQ_HEADER_PREFIX + "trigger", self.trigger.name.encode()),
            (DLQ_HEADER_PREFIX + "workflow", self.spec.workflow.encode()),
            (DLQ_HEADER_PREFIX + "source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        try:
            await self._send(record.key, record.value, headers)
        except MessageSizeTooLargeError:
            note = (DLQ_HEADER_PREFIX + "value-dropped", b"the value is too large for the dead-letter topic")
            await self._send(record.key, None, [*headers, note])
        log.warning(
            "%s: %s/%d/%d dead-lettered to %s: %s",
            self.name, record.topic, record.partition, record.offset, self.dead_letter_topic, reason,
        )

    async def _send(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        producer = self._producer
        if producer is None:
            raise RuntimeError(f"{self.name} is not started")
        try:
            await (await producer.send(self.dead_letter_topic, value, key=key, headers=headers))
        except PRODUCER_STATE_LOST:
            await self._renew_producer(producer)
            raise  # the record is retried (with the new producer, once it started)

    async def _renew_producer(self, broken: Any) -> None:
        """aiokafka does not reset a producer id the broker no longer accepts: start a new producer."""
        if self._producer is not broken:
            return  # another send renewed it already (or we are stopping)
        fresh = self._new_producer()
        try:
            await fresh.start()
        except KafkaError:
            await stop_client(f"{self.name}: stopping a producer that did not start", fresh.stop, STOP_TIMEOUT)
            return  # still unreachable: the retry comes back here
        self._producer = fresh
        await stop_client(f"{self.name}: stopping the old producer", broken.stop, STOP_TIMEOUT)

    # -- failures: rewind the partition and retry with backoff --------------------------------

    def _failed(self, lane: _Lane, record: Any, exc: Exception) -> None:
        self.stats.last_error = describe(exc)
        self.router.report("retried")
        self._streak_failures += 1
        if not self._failing_lanes:
            log.warning(
                "%s: %s/%d/%d failed, not committed; retrying with backoff (%s)",
                self.name, record.topic, record.partition, record.offset, describe(exc),
            )
        self._failing_lanes.add(lane.tp)
        lane.failing = True
        if lane.recovery is None and not lane.blocked and self._owns(lane):
            lane.blocked = True
            lane.recovery = asyncio.create_task(self._recover(lane), name=f"{self.name} recover")

    def _recovered(self, lane: _Lane) -> None:
        lane.failing, lane.delay = False, FIRST_BACKOFF
        self._failing_lanes.discard(lane.tp)
        if not self._failing_lanes:
            log.warning("%s: recovered after %d failed attempts", self.name, self._streak_failures)
            self._streak_failures = 0

    async def _recover(self, lane: _Lane) -> None:
        """Pause the partition, let its running records settle, seek back to the first unfinished
        record and resume after the backoff."""
        consumer = self._consumer
        try:
            if not self._owns(lane):
                return
            with contextlib.suppress(IllegalStateError):
                consumer.pause(lane.tp)
            while lane.tasks:
                await asyncio.wait(list(lane.tasks.values()))
            if not self._owns(lane):
                return  # revoked meanwhile: the new owner reads from the committed offset
            offset = lane.tracker.rewind()
            lane.probing = True
            if offset is not None:
                with contextlib.suppress(IllegalStateError):
                    consumer.seek(lane.tp, offset)
            self._dirty.set()
            await asyncio.sleep(lane.delay)
            lane.delay = min(lane.delay * 2, MAX_BACKOFF)
            if self._owns(lane):
                with contextlib.suppress(IllegalStateError):
                    consumer.resume(lane.tp)
        finally:
            lane.recovery = None
            lane.blocked = lane.closed

    def _owns(self, lane: _Lane) -> bool:
        """``lane`` is still the current assignment of its partition (not revoked, not stopping)."""
        return not lane.closed and self._lanes.get(lane.tp) is lane

    # -- commits ------------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if not await self._commit(list(self._lanes.values())):
                self._dirty.set()
                await asyncio.sleep(1.0)
            await asyncio.sleep(COMMIT_EVERY)

    async def _commit(self, lanes: list[_Lane]) -> bool:
        """Commit each lane's safe offset; False if the broker refused or could not be reached."""
        async with self._commit_lock:
            offsets = {lane.tp: lane.tracker.commit_offset for lane in lanes if lane.tracker.needs_commit}
            if not offsets or self._consumer is None:
                return True
            try:
                await self._consumer.commit(offsets)
            except Exception as exc:  # rebalance, outage: the next commit (or the new owner) catches up
                log.warning("%s: committing %s failed: %s", self.name, _offsets(offsets), describe(exc))
                return False
            for lane in lanes:
                if lane.tp in offsets:
                    lane.tracker.committed = offsets[lane.tp]
            return True


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    return bytes(raw).decode("utf-8", "backslashreplace")


def _offsets(offsets: dict[TopicPartition, Any]) -> str:
    return ", ".join(f"{tp.topic}/{tp.partition}@{offset}" for tp, offset in sorted(offsets.items()))
