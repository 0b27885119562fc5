"""Kafka transport (``kafka://``): commands and step tasks on two topics, keyed by execution id.

``kafka://host:port[,host2:port]?commands=orchestrator.commands&tasks=orchestrator.tasks&partitions=12
&replication=1&group=orchestrator-workers&role=all|api&concurrency=64&fair=true&read_ahead=10000
&parked_bytes=16777216`` (see ``KafkaOptions`` in
``orchestrator.backends.kafka.client``, the plumbing the triggers and connectors share).

Every record of one execution lands on one partition. A worker process (``role=all``) consumes
both topics in consumer groups ``<group>.commands`` and ``<group>.tasks``; an API process
(``role=api``) only produces. ``submit``/``dispatch`` return once the broker has the record
(acks=all, idempotent producer), retrying through an outage until ``send_timeout``.

Each assigned partition is a ``_Lane``. Commands of one execution run one at a time, in offset
order (at most ``command_concurrency`` executions of a partition at once; 1 makes the whole
partition strictly sequential); tasks run concurrently, at most ``concurrency`` per process,
let in across tenants by a weighted fair queue (``orchestrator.backends.fair_gate``) over every
partition of the process. So that a tenant's backlog in a partition does not keep another
tenant's tasks behind it in Kafka, a tasks lane holds at most ``2 * concurrency`` (at least 256)
records of one tenant (four times that in all) and defers the rest (``read_ahead.py``): kept in
memory up to ``parked_bytes`` (``parked.py``), else uncommitted in Kafka and read again when the
tenant has room, up to ``read_ahead`` records past its commit point. ``fair=false``: tasks are
let in in fetch order, as one FIFO. A lane commits only up to its lowest unfinished record, after the handler returned (for commands:
after the event-log append and its effects), so a crash redelivers everything not done (and at
most ~50 ms of done records, as commits are batched). A failing handler is retried with backoff
and holds the commit point (the runtime's handler parks a command that keeps failing for any
other reason, ``orchestrator.engine.parking``). A command record that does not decode (not strict
JSON, not a command this code knows; whatever the decoder raised) is parked on the dead-letter
topic (``dead_letters.py``) and a task record that does not decode is logged and skipped: it can
never succeed, and must stop neither the partition nor the consumer. On a rebalance or ``stop``
running records get ``grace`` seconds, the rest is abandoned, and what is done is committed. Both
groups report their consumer lag per partition through ``instruments`` (``client.LagReporter``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import IllegalStateError, KafkaConnectionError, KafkaError, KafkaTimeoutError
from aiokafka.partitioner import murmur2

from orchestrator.backends.fair_gate import FairGate
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
from orchestrator.backends.kafka.codec import (
    CodecError,
    decode_command,
    decode_task,
    encode_command,
    encode_task,
)
from orchestrator.backends.kafka.dead_letters import KafkaDeadLetters, dead_letter_topic
from orchestrator.backends.kafka.parked import ParkedRecords, ParkingBudget
from orchestrator.backends.kafka.read_ahead import TENANT_HEADER, ReadAhead, Seen, header_tenant
from orchestrator.core.commands import Command
from orchestrator.crypto.identity import PLAIN_RECORDS
from orchestrator.instrumentation import NO_INSTRUMENTS, Instruments
from orchestrator.ports import BackendUnavailable, CommandHandler, RecordSealer, StepTask, TaskHandler
from orchestrator.tls import redact_url

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BACKOFF = 30.0
MIN_HELD_PER_TENANT = 256  # a tenant's records a tasks lane holds at least, to outlast a refill
FAIR_POLL_RECORDS = 64  # records taken between two turns of the event loop (decoding them blocks it)
FAIR_PARTITION_FETCH_BYTES = 65536  # per partition and fetch: a re-read fetches what it takes, not 1 MB
FAIR_FETCH_WAIT_MS = 100  # the fair tasks consumer's longest fetch wait (aiokafka's default: 500)
FAIR_FETCH_WAIT_BUSY_MS = 10  # ... while a lane has deferred records (see ``_Group._tune_fetch_wait``)
ParkBad = Callable[[TopicPartition, Any, CodecError], Awaitable[None]]


class KafkaTransport:
    """The ``Transport`` port over Kafka. Explicit ``start``/``stop``; all work runs on the caller's loop.

    Shards are the partitions of the commands topic; a process owns those assigned to it now.
    """

    durable = True  # records in flight live in Kafka and are redelivered until their effects are done
    instruments: Instruments = NO_INSTRUMENTS  # set by the runtime (orchestrator.instrumentation.attach)

    def __init__(self, options: KafkaOptions, url: str = "") -> None:
        self.options = options
        self.url = redact_url(url) if url else "kafka://" + ",".join(options.bootstrap)  # as shown
        self._producer: Any = None
        self._groups: list[_Group[Any]] = []
        self.failures: list[Exception] = []  # connection attempts that failed during start
        self._renewing = asyncio.Lock()
        self._stage = ""  # what start() is doing, for its error message
        self._command_partitions = options.partitions  # the real count once start() has looked
        self._weights: dict[str, float] = {}  # of tenants, for the fair order of step tasks
        self.records: RecordSealer = PLAIN_RECORDS  # AES-GCM when a keyring is configured (orchestrator.crypto)
        self.dead_letters = KafkaDeadLetters(options, self._send, seal=self._seal_command)  # ports.DeadLetters

    @classmethod
    def from_url(cls, url: str, concurrency: int | None = None) -> KafkaTransport:
        """``concurrency`` (the runtime passes ``worker_concurrency``) applies unless the URL sets it."""
        defaults = None if concurrency is None else {"concurrency": concurrency}
        return cls(KafkaOptions.from_url(url, defaults), url)

    async def start(self, on_command: CommandHandler, on_task: TaskHandler) -> None:
        """Create missing topics, start the producer and (``role=all``) both consumer groups."""
        opts = self.options
        self._stage, self.failures = "reach the brokers", []
        try:
            async with asyncio.timeout(opts.start_timeout):
                await self._create_topics()
                self._stage = "start the producer"
                self._producer = self.new_producer()
                await self._producer.start()
                if opts.role == "all":
                    self._stage = "join the consumer groups"
                    for group in (
                        _Group(
                            self, opts.commands, self._decode_command, on_command, opts.command_concurrency,
                            on_bad=self._park_bad,
                        ),
                        _Group(
                            self, opts.tasks, self._decode_task, on_task, opts.concurrency, per_lane=False,
                            tenant_of=_tenant if opts.fair else None,
                        ),
                    ):
                        self._groups.append(group)
                        if group.gate is not None:
                            group.gate.set_weights(self._weights)
                        await group.start()
        except (TimeoutError, KafkaError, OSError) as exc:
            await self._close(grace=0.0)
            message = f"Kafka transport {self.url}: cannot {self._stage}"
            if isinstance(exc, TimeoutError):
                last = f"; last error: {describe(self.failures[-1])}" if self.failures else ""
                raise BackendUnavailable(f"{message} within {opts.start_timeout:g}s{last}") from None
            raise BackendUnavailable(f"{message}: {describe(exc)}") from None

    def read_ahead(self) -> dict[str, int | None]:
        """How the fair tasks consumer reads past floods (``read_ahead.py``): records deferred now,
        task records decoded and seeks back to deferred records so far, its fetch wait now."""
        for group in self._groups:
            if group.gate is not None:
                deferred = sum(lane.read_ahead.deferred for lane in group.lanes() if lane.read_ahead is not None)
                return {"deferred": deferred, "decoded": group.decoded, "rereads": group.rereads, "fetch_wait_ms": group.fetch_wait_ms}
        return {}

    def shard_of(self, execution_id: str) -> int:
        """The commands partition of an execution: Kafka's default partitioner (murmur2 of the key)."""
        hashed: int = murmur2(execution_id.encode())
        return (hashed & 0x7FFFFFFF) % self._command_partitions

    def owned_shards(self) -> set[int] | None:
        """The commands partitions assigned to this process now (none with ``role=api``)."""
        return self._groups[0].owned() if self._groups else set()

    def set_tenant_weights(self, weights: Mapping[str, float]) -> None:
        """Weights of the fair order of step tasks across tenants (1 for a tenant not named)."""
        self._weights = dict(weights)
        for group in self._groups:
            if group.gate is not None:
                group.gate.set_weights(weights)

    def in_flight(self) -> int:
        """Commands and tasks fetched and not yet finished, over every group."""
        return sum(group.in_flight() for group in self._groups)

    def consumer_lag(self) -> dict[str, int]:
        """The consumer lag last measured per ``topic/partition`` this process consumes."""
        return {f"{topic}/{partition}": lag for group in self._groups for (topic, partition), lag in group.lag.items()}

    async def stop(self) -> None:
        """Stop consuming (running records get ``grace``; done offsets committed), then flush the producer."""
        await self._close(self.options.grace)

    async def submit(self, command: Command) -> None:
        """Append a command to the commands topic; returns once the broker has it."""
        await self._send(self.options.commands, command.execution_id, self._seal_command(encode_command(command)))

    async def dispatch(self, task: StepTask) -> None:
        record = self.records.seal(encode_task(task), "task")
        await self._send(self.options.tasks, task.execution_id, record, [(TENANT_HEADER, task.tenant.encode())])

    def _seal_command(self, value: bytes) -> bytes:
        return self.records.seal(value, "command")

    def _opened(self, value: bytes, kind: str) -> bytes:
        try:
            return self.records.open(value, kind)
        except ValueError as exc:  # tampered, or under a key this process lacks: a poison record
            raise CodecError(str(exc)) from None

    def _decode_command(self, value: bytes) -> Command:
        return decode_command(self._opened(value, "command"))

    def _decode_task(self, value: bytes) -> StepTask:
        return decode_task(self._opened(value, "task"))

    def new_producer(self) -> Any:
        """An unstarted producer as the transport builds its own (``client.idempotent_producer``)."""
        opts = self.options
        return idempotent_producer(
            opts.bootstrap,
            f"{opts.group}.producer",
            linger_ms=opts.linger_ms,
            send_timeout=opts.send_timeout,
            security=opts.security,
        )

    async def _park_bad(self, tp: TopicPartition, record: Any, error: CodecError) -> None:
        """Park a command record that does not decode, bytes as they are, on the dead-letter topic."""
        key = record.key.decode(errors="replace") if record.key else ""
        origin = f"{tp.topic}/{tp.partition}/{record.offset}"
        letter = await self.dead_letters.park_record(record.value or b"", key, error, 1, origin=origin)
        log.error("command record %s does not decode (%s); parked as dead letter %s", origin, error, letter.id)

    async def _send(self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> Any:
        """Produce one record; its metadata once the broker has it (BackendUnavailable after ``send_timeout``)."""
        if self._producer is None:
            raise RuntimeError("Kafka transport not started")
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self.options.send_timeout, 0.1
        while True:
            producer = self._producer
            try:
                return await (await producer.send(topic, value, key=key.encode(), headers=headers))
            except KafkaError as exc:
                retry = exc.retriable or isinstance(exc, KafkaConnectionError | KafkaTimeoutError)
                if isinstance(exc, PRODUCER_STATE_LOST):
                    retry = await self._renew_producer(producer, exc)
                remaining = deadline - loop.time()
                if not retry or remaining <= 0:
                    raise BackendUnavailable(
                        f"Kafka transport {self.url}: no ack for a record on {topic} "
                        f"within {self.options.send_timeout:g}s ({type(exc).__name__}: {exc})"
                    ) from exc
                log.warning("send to %s failed (%s); retrying in %.1fs", topic, exc, delay)
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 2, 5.0)

    async def _renew_producer(self, broken: Any, why: KafkaError) -> bool:
        """Replace a producer whose idempotence state the broker no longer accepts (after expired batches).

        aiokafka does not reset the producer id itself, so without this every later send would fail.
        """
        async with self._renewing:
            if self._producer is not broken or broken is None:
                return self._producer is not None  # another send renewed it already (or we are stopping)
            log.warning("Kafka producer state lost (%s); starting a new producer", why)
            fresh = self.new_producer()
            try:
                await fresh.start()
            except KafkaError:
                await fresh.stop()
                return True  # still unreachable: the caller backs off and tries again
            self._producer = fresh
        with contextlib.suppress(KafkaError, TimeoutError):
            async with asyncio.timeout(5.0):
                await broken.stop()
        return True

    async def _create_topics(self) -> None:
        opts = self.options

        def connected() -> None:
            self._stage = "create the topics"

        described = await ensure_topics(
            opts.bootstrap,
            (opts.commands, opts.tasks),
            opts.partitions,
            opts.replication,
            self.failures,
            connected,
            security=opts.security,
        )
        commands = next(t for t in described if t["topic"] == opts.commands)
        self._command_partitions = len(commands["partitions"])
        # One partition: dead letters are few, and their ids are offsets in one order.
        await ensure_topics(
            opts.bootstrap, (dead_letter_topic(opts),), 1, opts.replication, self.failures, security=opts.security
        )

    async def _close(self, grace: float) -> None:
        groups, self._groups = self._groups, []
        await asyncio.gather(*(group.stop(grace) for group in groups))
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_client("flushing the producer", producer.flush, max(grace, 1.0))
            await stop_client("stopping the producer", producer.stop, STOP_TIMEOUT)


def _tenant(task: StepTask) -> str:
    return task.tenant


def group_id(options: KafkaOptions, topic: str) -> str:
    """The transport's consumer group on ``topic``: ``<group>.commands`` or ``<group>.tasks``."""
    return f"{options.group}.{'commands' if topic == options.commands else 'tasks'}"


def group_consumer(options: KafkaOptions, topic: str) -> AIOKafkaConsumer:
    """The unstarted consumer of the transport's group on ``topic`` (commands or tasks): offsets
    are committed by the lanes, never automatically. The fair tasks consumer waits at most
    ``FAIR_FETCH_WAIT_MS`` for new records (less during floods, ``_Group._tune_fetch_wait``) and
    takes small batches, so decoding one does not hold the event loop (docs/resources.md)."""
    fair_tasks = options.fair and topic == options.tasks
    return AIOKafkaConsumer(
        bootstrap_servers=list(options.bootstrap),
        **options.security.client_args(),
        group_id=group_id(options, topic),
        client_id=f"{options.group}.{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=FAIR_POLL_RECORDS if fair_tasks else 500,
        heartbeat_interval_ms=1000,
        fetch_max_wait_ms=FAIR_FETCH_WAIT_MS if fair_tasks else 500,
        max_partition_fetch_bytes=FAIR_PARTITION_FETCH_BYTES if fair_tasks else 1048576,
    )


@dataclass(frozen=True, slots=True)
class _Bad:
    """A record that does not decode, on its way to the dead-letter topic."""

    tp: TopicPartition
    record: Any
    error: CodecError


class _Lane(Generic[T]):
    """One assigned partition: runs its records and knows the highest offset that is safe to commit.

    A tasks lane with ``read_ahead`` holds a bounded number of records per tenant and leaves the
    rest in Kafka for later (``read_ahead.py``); the commit point then also stops at the lowest
    record it left there."""

    def __init__(
        self,
        group: _Group[T],
        tp: TopicPartition,
        slot: Callable[[T | _Bad], AbstractAsyncContextManager[Any]],
        ordered: bool,
        read_ahead: ReadAhead | None = None,
    ) -> None:
        self.tp = tp
        self.committed: int | None = None
        self.read_ahead = read_ahead
        self.reading: int | None = None  # where the consumer reads this partition next, once known
        self.held_back = False  # paused: the read-ahead window is full
        self.parked: ParkedRecords | None = None  # read-ahead: deferred records kept in memory (parked.py)
        self.closing = False
        self._group = group
        self._slot = slot
        self._ordered = ordered
        self._pending: dict[int, asyncio.Task[None]] = {}  # unfinished (or abandoned) records by offset
        self._tenants: dict[int, str] = {}  # read-ahead: the tenant of each pending record
        self._running: set[int] = set()
        self._tails: dict[bytes | None, asyncio.Task[None]] = {}  # last record of each execution
        self._next: int | None = None  # one past the last record read
        self._first: int | None = None  # the first record taken (before any commit)

    @property
    def backlog(self) -> int:
        return len(self._pending)

    @property
    def uncommitted(self) -> int:
        """Records taken past the last committed offset (0 before the first record)."""
        if self._next is None:
            return 0
        start = self.committed if self.committed is not None else self._first
        return max(self._next - (start if start is not None else self._next), 0)

    @property
    def commit_offset(self) -> int | None:
        """The lowest unfinished, abandoned or deferred offset, or one past the last record when all are done."""
        unfinished = min(self._pending) if self._pending else None  # done records leave ``_pending``
        deferred = self.read_ahead.lowest_deferred if self.read_ahead is not None else None
        lowest = [offset for offset in (unfinished, deferred) if offset is not None]
        return min(lowest) if lowest else self._next

    def take(self, offset: int, key: bytes | None, item: T | _Bad, tenant: str | None = None) -> None:
        if self._first is None:
            self._first = offset
        self._next = max(self._next or 0, offset + 1)
        previous = self._tails.get(key) if self._ordered else None
        task = asyncio.create_task(self._run(offset, item, previous), name=f"kafka-{self.tp.topic}-{offset}")
        self._pending[offset] = task
        if tenant is not None:
            self._tenants[offset] = tenant
        if self._ordered:
            self._tails[key] = task
        task.add_done_callback(lambda done: self._finished(offset, key, done))

    def read_past(self, offset: int) -> None:
        """Read-ahead: a record left in Kafka for now (deferred), or skipped as undecodable."""
        if self._first is None:
            self._first = offset
        self._next = max(self._next or 0, offset + 1)

    def skip(self, offset: int) -> None:
        self._next = max(self._next or 0, offset + 1)
        self._group.changed(self)

    async def close(self, grace: float) -> None:
        """Let running records finish for up to ``grace`` seconds; abandon (cancel) everything else."""
        self.closing = True  # takes nothing more (parked records stay in Kafka for the successor)
        for offset, task in self._pending.items():
            if offset not in self._running:
                task.cancel()
        running = [self._pending[o] for o in self._running if o in self._pending]
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)

    async def _run(self, offset: int, item: T | _Bad, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # the execution's earlier record first
        delay = 0.1
        while True:
            async with self._slot(item):
                self._running.add(offset)
                try:
                    await self._group.run(item)
                    return
                except Exception:
                    log.exception(
                        "%s offset %d failed; retry in %.1fs, not committed", self.tp, offset, delay
                    )
                finally:
                    self._running.discard(offset)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    def _finished(self, offset: int, key: bytes | None, task: asyncio.Task[None]) -> None:
        if self._tails.get(key) is task:
            del self._tails[key]
        tenant = self._tenants.pop(offset, None)
        if tenant is not None and self.read_ahead is not None:
            self.read_ahead.finish(tenant)
        if task.cancelled() or task.exception() is not None:
            return  # abandoned: stays pending, so nothing at or after it is committed
        del self._pending[offset]
        self._group.changed(self)


class _Group(ConsumerRebalanceListener, Generic[T]):  # type: ignore[misc]
    """One consumer group on one topic: fetches into lanes, commits what they finished, follows rebalances."""

    def __init__(
        self,
        transport: KafkaTransport,
        topic: str,
        decode: Callable[[bytes], T],
        handler: Callable[[T], Awaitable[None]],
        limit: int,
        per_lane: bool = True,
        on_bad: ParkBad | None = None,
        tenant_of: Callable[[T], str] | None = None,
    ) -> None:
        opts = transport.options
        self.handler = handler
        self._on_bad = on_bad  # records that do not decode: parked (commands) or skipped (tasks)
        self._transport = transport
        self._failures = transport.failures
        self._topic = topic
        self._decode = decode
        self._limit = limit
        self._per_lane = per_lane  # commands: a limit per partition, ordered per key; tasks: one limit
        self._shared_limit = asyncio.Semaphore(limit)
        self._max_backlog = max(4 * limit, 100) if per_lane else 2 * limit
        # Tasks, fair: one gate across partitions, taken in weighted fair order by tenant, and
        # lanes that read past a tenant's backlog (``read_ahead.py``).
        self._tenant_of = tenant_of
        self.gate = FairGate(limit) if tenant_of is not None else None
        self._read_ahead = opts.read_ahead
        self._parking = ParkingBudget(opts.parked_bytes)
        self._grace = opts.grace
        self._lanes: dict[TopicPartition, _Lane[T]] = {}
        self._paused: set[TopicPartition] = set()
        self._dirty = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._loops: list[asyncio.Task[None]] = []
        self._consumer = group_consumer(opts, topic)
        self._lag = LagReporter(group_id(opts, topic))
        self.skipped = 0  # records that did not decode, logged and committed past
        self.decoded = 0  # read-ahead: task records decoded (a deferred one is not, if its header names its tenant)
        self.rereads = 0  # read-ahead: seeks back to deferred records

    async def start(self) -> None:
        await keep_trying(self._consumer.start, self._failures)
        self._consumer.subscribe([self._topic], listener=self)
        self._loops = [
            asyncio.create_task(self._fetch_loop(), name=f"kafka-fetch-{self._topic}"),
            asyncio.create_task(self._commit_loop(), name=f"kafka-commit-{self._topic}"),
        ]

    async def stop(self, grace: float) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        lanes = list(self._lanes.values())
        await asyncio.gather(*(lane.close(grace) for lane in lanes))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(grace, 1.0)):
                await self._commit(lanes)
        self._lanes.clear()
        if not await stop_client(f"stopping the {self._topic} consumer", self._consumer.stop, STOP_TIMEOUT):
            # aiokafka 0.14's Fetcher.close re-raises a cancelled in-flight fetch when the broker is
            # gone, skipping the rest of AIOKafkaConsumer.stop: close its connections ourselves.
            await stop_client("closing its connections", self._consumer._client.close, STOP_TIMEOUT)

    def owned(self) -> set[int]:
        return {tp.partition for tp in self._lanes}

    def lanes(self) -> list[_Lane[T]]:
        return list(self._lanes.values())

    def in_flight(self) -> int:
        return sum(lane.backlog for lane in self._lanes.values())

    @property
    def lag(self) -> dict[tuple[str, int], int]:
        return self._lag.last

    def changed(self, lane: _Lane[T]) -> None:
        """A lane finished or skipped records: commit soon, and resume it if it had been paused
        (read-ahead: or read its deferred records again if their tenant has room now)."""
        self._dirty.set()
        if self._lanes.get(lane.tp) is not lane:
            return  # revoked
        if lane.read_ahead is not None:
            ahead = lane.read_ahead
            if lane.held_back and ahead.next is not None and not ahead.beyond_window(ahead.next, lane.commit_offset):
                lane.held_back = False
            if lane.parked and not lane.closing:
                self._take_parked(lane)
            self._reposition(lane)
        elif lane.tp in self._paused and lane.backlog <= self._max_backlog // 2:
            self._set_paused(lane, False)

    def _set_paused(self, lane: _Lane[T], paused: bool) -> None:
        if paused and lane.tp not in self._paused:
            self._paused.add(lane.tp)
            self._consumer.pause(lane.tp)
        elif not paused and lane.tp in self._paused:
            self._paused.discard(lane.tp)
            self._consumer.resume(lane.tp)

    def _reposition(self, lane: _Lane[T]) -> None:
        """Read-ahead: seek where the lane should read next; paused while held back and caught up."""
        ahead = lane.read_ahead
        assert ahead is not None
        if lane.reading is not None and (target := ahead.next_position(lane.reading)) is not None:
            with contextlib.suppress(IllegalStateError):  # revoked meanwhile
                self._consumer.seek(lane.tp, target)
                if target < lane.reading:
                    self.rereads += 1
                lane.reading = target
        rereading = lane.reading is not None and ahead.next is not None and lane.reading < ahead.next
        self._set_paused(lane, lane.held_back and not rereading)

    def _hold_back(self, lane: _Lane[T]) -> None:
        """Read-ahead: the window is full; stop before the first record not read yet."""
        ahead = lane.read_ahead
        assert ahead is not None and ahead.next is not None
        lane.held_back = True
        with contextlib.suppress(IllegalStateError):
            self._consumer.seek(lane.tp, ahead.next)
            lane.reading = ahead.next
        self._set_paused(lane, True)

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        lanes = [self._lanes.pop(tp) for tp in revoked if tp in self._lanes]
        self._paused.difference_update(revoked)
        for lane in lanes:
            if lane.parked is not None:
                lane.parked.clear()
        if self._tenant_of is not None:
            self._tune_fetch_wait()  # the lanes with deferred records may have gone
        await asyncio.gather(*(lane.close(self._grace) for lane in lanes))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(self._grace, 1.0)):
                await self._commit(lanes)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        for tp in assigned:
            self._lanes[tp] = self._new_lane(tp)
        log.info("%s: assigned partitions %s", self._topic, sorted(tp.partition for tp in assigned))

    def _new_lane(self, tp: TopicPartition) -> _Lane[T]:
        if self.gate is not None and self._tenant_of is not None:
            gate, tenant_of = self.gate, self._tenant_of

            def fair_slot(item: T | _Bad) -> AbstractAsyncContextManager[Any]:
                return gate.slot("" if isinstance(item, _Bad) else tenant_of(item))

            per_tenant = max(2 * self._limit, MIN_HELD_PER_TENANT)
            ahead = ReadAhead(per_tenant, 4 * per_tenant, self._read_ahead)
            lane = _Lane(self, tp, fair_slot, ordered=False, read_ahead=ahead)
            lane.parked = ParkedRecords(self._parking)
            return lane
        limit = asyncio.Semaphore(self._limit) if self._per_lane else self._shared_limit
        return _Lane(self, tp, lambda item: limit, ordered=self._per_lane)

    async def _fetch_loop(self) -> None:
        delay = 0.1
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=500)
            except Exception as exc:  # aiokafka reconnects by itself; keep asking
                log.warning("fetching %s failed (%s); retrying in %.1fs", self._topic, describe(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            for tp, records in batch.items():
                lane = self._lanes.get(tp)
                if lane is None:
                    continue  # revoked meanwhile: whoever owns it now reads these again
                if lane.read_ahead is not None:
                    self._take_ahead(lane, records)
                    continue
                for record in records:
                    self._take(lane, record)
                if lane.backlog >= self._max_backlog:
                    self._set_paused(lane, True)
            if await self._lag.report(self._consumer, self._lanes, self._transport.instruments):
                self._report_lanes()
            await asyncio.sleep(0)  # buffered records come back without a wait: let the steps run

    def _report_lanes(self) -> None:
        """Each lane's unfinished records and records past its committed offset."""
        instruments = self._transport.instruments
        for tp, lane in list(self._lanes.items()):
            instruments.transport_lane(self._lag.group, tp.topic, tp.partition, lane.backlog, lane.uncommitted)

    def _take(self, lane: _Lane[T], record: Any) -> None:
        try:
            if record.value is None:
                raise CodecError("empty record")
            item = self._decode(record.value)
        except Exception as exc:  # a poison record: decoding is pure, it would fail again
            error = exc if isinstance(exc, CodecError) else CodecError(f"decoding raised {exc!r}")
            if error is not exc:
                log.exception("decoding %s offset %d raised", lane.tp, record.offset)
            if self._on_bad is not None:
                lane.take(record.offset, record.key, _Bad(lane.tp, record, error))
                return
            log.error("skipping bad record %s offset %d: %s", lane.tp, record.offset, error)
            self.skipped += 1
            lane.skip(record.offset)
        else:
            lane.take(record.offset, record.key, item)

    def _take_ahead(self, lane: _Lane[T], records: list[Any]) -> None:
        """Read-ahead: hold each record whose tenant has room, defer the others, pass over those
        held or finished before; then seek where the lane should read next."""
        ahead, tenant_of = lane.read_ahead, self._tenant_of
        assert ahead is not None and tenant_of is not None
        floor = lane.commit_offset  # only rises while the batch is taken: a safe bound for the window
        if floor is None and records:
            floor = records[0].offset  # the first records of the lane
        for record in records:
            seen = ahead.seen(record.offset)
            if seen is Seen.OLD or (seen is Seen.DEFERRED and ahead.deferred_without_room(record.offset)):
                continue
            if seen is Seen.NEW and ahead.beyond_window(record.offset, floor):
                self._hold_back(lane)
                return
            header = header_tenant(record)
            if header is not None and not ahead.has_room(header):
                ahead.admit(record.offset, header)  # deferred without decoding it
                self._park(lane, seen, record, header)
                lane.read_past(record.offset)
                continue
            if (item := self._decode_ahead(lane, record)) is None:
                continue
            tenant = header if header is not None else tenant_of(item)
            if ahead.admit(record.offset, tenant):
                if seen is Seen.DEFERRED and lane.parked is not None:
                    lane.parked.drop(record.offset, tenant)  # read from Kafka again after all
                lane.take(record.offset, record.key, item, tenant)
            else:
                self._park(lane, seen, record, tenant)
                lane.read_past(record.offset)
        if records:
            lane.reading = records[-1].offset + 1
            self._reposition(lane)
        self._tune_fetch_wait()

    def _decode_ahead(self, lane: _Lane[T], record: Any) -> T | None:
        """Read-ahead: the record decoded, or None for a poison record (decoding is pure, it would
        fail again), which is logged, neither held nor deferred, and committed past."""
        ahead = lane.read_ahead
        assert ahead is not None
        try:
            if record.value is None:
                raise CodecError("empty record")
            self.decoded += 1
            return self._decode(record.value)
        except Exception as exc:
            log.error("skipping bad record %s offset %d: %s", lane.tp, record.offset, exc)
            self.skipped += 1
            ahead.forget(record.offset)
            lane.read_past(record.offset)
            self._dirty.set()
            return None

    def _park(self, lane: _Lane[T], seen: Seen, record: Any, tenant: str) -> None:
        if seen is Seen.NEW and lane.parked is not None:  # a record deferred again is parked or not already
            lane.parked.park(record.offset, tenant, record)

    def _take_parked(self, lane: _Lane[T]) -> None:
        """Take the parked records of each tenant that has room again, oldest first (decoded now)."""
        ahead, parked = lane.read_ahead, lane.parked
        assert ahead is not None and parked is not None
        for tenant in parked.tenants():
            while ahead.has_room(tenant) and (oldest := parked.oldest(tenant)) is not None:
                offset, record = oldest
                if ahead.deferred_tenant(offset) != tenant or (item := self._decode_ahead(lane, record)) is None:
                    continue  # taken since or forgotten, or it does not decode
                ahead.admit(offset, tenant)
                lane.take(offset, record.key, item, tenant)

    def _tune_fetch_wait(self) -> None:
        """A short fetch wait while a lane has deferred records (its seeks wait for the fetch in
        flight, long-polling the partitions read to their end), the long one otherwise. Through
        aiokafka's fetcher attribute; without it the wait stays long (a test checks the switch)."""
        fetcher = getattr(self._consumer, "_fetcher", None)
        if fetcher is None or not hasattr(fetcher, "_fetch_max_wait_ms"):
            return
        busy = any(lane.read_ahead is not None and lane.read_ahead.deferred for lane in self._lanes.values())
        fetcher._fetch_max_wait_ms = FAIR_FETCH_WAIT_BUSY_MS if busy else FAIR_FETCH_WAIT_MS

    @property
    def fetch_wait_ms(self) -> int | None:
        """The fetch wait the consumer uses now (None before it starts, or in another aiokafka)."""
        wait = getattr(getattr(self._consumer, "_fetcher", None), "_fetch_max_wait_ms", None)
        return wait if isinstance(wait, int) else None

    async def run(self, item: T | _Bad) -> None:
        """Handle one record: the handler, or parking for one that does not decode."""
        if isinstance(item, _Bad):
            assert self._on_bad is not None
            await self._on_bad(item.tp, item.record, item.error)
        else:
            await self.handler(item)

    async def _commit_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if not await self._commit(list(self._lanes.values())):
                self._dirty.set()
                await asyncio.sleep(1.0)
            await asyncio.sleep(0.05)  # coalesce the commits of many records

    async def _commit(self, lanes: list[_Lane[T]]) -> bool:
        """Commit each lane's safe offset; False if the broker refused or could not be reached."""
        async with self._commit_lock:
            offsets = {}
            for lane in lanes:
                offset = lane.commit_offset
                if offset is not None and offset != lane.committed:
                    offsets[lane.tp] = offset
            if not offsets:
                return True
            try:
                await self._consumer.commit(offsets)
            except Exception as exc:  # rebalance, outage: the next commit (or the new owner) catches up
                log.warning("committing %s offsets %s failed: %s", self._topic, offsets, describe(exc))
                return False
            for lane in lanes:
                lane.committed = offsets.get(lane.tp, lane.committed)
            return True
