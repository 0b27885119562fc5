"""The windowed Kafka trigger: start a workflow once when ``threshold`` matching messages with the
same key arrive within ``window_seconds`` (e.g. 5 failed logins of one user within 60 s).

Factory: ``triggers.window_source:WindowTriggerSource`` (takes one ``SourceSpec`` whose trigger is a
``WindowTrigger``). Brokers and options come from ``settings.connection(trigger.connection)``, a
``kafka://`` URL read by ``KafkaOptions.from_url`` (``partitions`` and ``replication`` for the
topics it creates, ``start_timeout``, ``grace``).

How it runs: one faust-streaming ``App`` per source, id ``orchestrator.<workflow>.<trigger>`` (also
its consumer group, the name the trigger manager lists), started with ``await app.start()`` on the
caller's event loop, without faust's CLI or worker. Two agents:

1. ``route`` reads ``trigger.topics``: decodes each record (``schemas.cloudevents.from_kafka``, the
   same ``InboundMessage`` context as the Kafka trigger), applies ``filter``, evaluates ``key`` and
   forwards a hit ``{key, id, ts, message}`` to the internal topic ``<app id>-hits``, keyed by the
   group key, so every hit of one key reaches the same partition (and worker) whatever the
   producers keyed their records by. ``ts`` is the record's Kafka timestamp: windows follow the
   time the messages carry, so a replay lands in the same windows.
2. ``count`` reads the hits, counts each in a hopping-windowed faust ``Table`` (``windows``:
   ``(key, window) -> message ids``) and a plain ``Table`` (``quiet``: ``key -> quiet_until``), both
   backed by compacted changelog topics, and starts the workflow when a window fires. The
   decisions are pure: ``triggers.window_counts``.

Both agents acknowledge a record only when its outcome is durable (``stream.noack()`` plus an
explicit ``ack``): the hit was acknowledged by the brokers; the start returned (``Runtime.start_
execution`` with a dedup key from trigger, key and window start) before the table writes. faust
flushes the changelog writes before it commits offsets. A bad record (not decodable, a failing
expression, an empty key) is parked in ``<first topic>.dlq`` with ``x-orchestrator-*`` headers, as
the Kafka trigger does, and never stops the stream. When a start or a send fails for another
reason (event log or broker down) the agent retries with backoff and acknowledges nothing.

State: the changelogs hold it; ``start`` rebuilds the tables from them (memory store) before it
returns, so a restarted source, or another process taking the partitions over, goes on counting.
faust's data directory is ``<state dir>/<app id>`` (``ORCHESTRATOR_STATE_DIR``, or
``spec.extra["state_dir"]``; default ``<temp dir>/orchestrator-state``), never the working directory.

Threads: faust's aiokafka driver polls Kafka in a thread of its own (``AIOKafkaConsumerThread``,
with its own event loop; there is no option to avoid it). ``start`` starts it, ``stop`` joins it.
Docs: docs/triggers.md, "Windowed trigger".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from orchestrator.backends.kafka.client import STOP_TIMEOUT, KafkaOptions, describe, ensure_topics
from orchestrator.instrumentation import TriggerOutcome
from orchestrator.ports import BackendUnavailable, UnknownWorkflow
from orchestrator.runtime import InputInvalid
from schemas.definition import WindowTrigger
from schemas.expressions import ExpressionError, evaluate
from triggers.inbound import BadMessage, InboundMessage, _truthy, trigger_actor
from triggers.kafka_source import DLQ_HEADER_PREFIX, KafkaTriggerSource
from triggers.sources import SourceSpec, SourceStats
from triggers.window_counts import decide, dedup_key, group_key, hop_step, window_event, window_input

__all__ = ["WindowTriggerSource", "default_state_dir"]

log = logging.getLogger(__name__)
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 30.0
JOIN_TIMEOUT = 60.0  # joining the group and rebuilding the tables, after the topics are there
MAX_REASON = 4000


def default_state_dir() -> Path:
    return Path(tempfile.gettempdir()) / "orchestrator-state"


class WindowTriggerSource:
    """A ``TriggerSource`` for one ``WindowTrigger`` of one workflow (see the module docstring)."""

    def __init__(self, spec: SourceSpec) -> None:
        trigger = spec.trigger
        if not isinstance(trigger, WindowTrigger):
            raise TypeError(f"WindowTriggerSource needs a WindowTrigger, not {type(trigger).__name__}")
        self.spec = spec
        self.trigger = trigger
        self.step = hop_step(trigger.window_seconds)
        self.options = KafkaOptions.from_url(spec.settings.connection(trigger.connection))
        self.app_id = f"orchestrator.{spec.workflow}.{trigger.name}"
        self.hits_topic = f"{self.app_id}-hits"
        self.dead_letter_topic = f"{trigger.topics[0]}.dlq"
        base = spec.extra.get("state_dir") or spec.settings.state_dir or default_state_dir()
        self.data_dir = Path(base) / self.app_id
        self.name = f"window trigger {spec.workflow}/{trigger.name}"
        self.actor = trigger_actor(spec.workflow, trigger.name)
        self.stats = SourceStats()
        self.counted = 0  # hits the count agent finished (tests wait on it)
        self.app: Any = None  # the faust App while running
        self._window: Any = None
        self._windows: Any = None  # the windowed table: key -> (window -> message ids)
        self._quiet: Any = None  # key -> quiet_until
        self._stopping = asyncio.Event()
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._failing: set[str] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Create missing topics, start the faust app, return once the tables are rebuilt."""
        opts = self.options
        self._stopping.clear()
        failures: list[Exception] = []
        try:
            async with asyncio.timeout(opts.start_timeout):
                partitions = await self._ensure_topics(failures)
                await self._start_new_group_at_end(partitions)
        except (TimeoutError, KafkaError, OSError) as exc:
            last = exc if not isinstance(exc, TimeoutError) or not failures else failures[-1]
            raise BackendUnavailable(
                f"{self.name}: cannot reach {','.join(opts.bootstrap)} within "
                f"{opts.start_timeout:g}s ({describe(last)})"
            ) from None
        self.app = self._build_app()
        try:
            async with asyncio.timeout(JOIN_TIMEOUT):
                await self.app.start()
                await self.app.tables.recovery.completed.wait()
        except BaseException as exc:
            await self._stop_app()
            if isinstance(exc, TimeoutError):
                message = f"{self.name}: faust did not join the group and rebuild its tables within {JOIN_TIMEOUT:g}s"
                raise BackendUnavailable(message) from None
            raise
        log.info(
            "%s: counting %s by %s (window %gs, hop %ds, threshold %d)",
            self.name, ", ".join(self.trigger.topics), self.trigger.key,
            self.trigger.window_seconds, self.step, self.trigger.threshold,
        )

    async def stop(self) -> None:
        """Let the record in hand finish (``grace`` seconds), then stop faust: it commits what was
        acknowledged and flushes the changelogs. What did not finish is read again."""
        self._stopping.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.options.grace):
                await self._idle.wait()
        await self._stop_app()

    async def _stop_app(self) -> None:
        app, self.app = self.app, None
        if app is None:
            return
        try:
            async with asyncio.timeout(STOP_TIMEOUT + self.options.grace):
                await app.stop()
        except (TimeoutError, KafkaError, OSError) as exc:
            log.warning("%s: faust did not stop cleanly: %s", self.name, describe(exc))

    def _build_app(self) -> Any:
        import faust
        from faust.windows import HoppingWindow

        opts, trigger = self.options, self.trigger
        self.data_dir.mkdir(parents=True, exist_ok=True)
        app = faust.App(
            self.app_id,
            broker=[f"kafka://{host}" for host in opts.bootstrap],
            broker_credentials=opts.security.faust_credentials(),
            store="memory://",
            datadir=str(self.data_dir),
            web_enabled=False,
            autodiscover=False,
            loghandlers=[],
            topic_partitions=opts.partitions,
            topic_replication_factor=opts.replication,
            producer_acks=-1,
            consumer_auto_offset_reset="earliest",  # see _start_new_group_at_end
        )
        source = app.topic(*trigger.topics, key_serializer="raw", value_serializer="raw")
        hits = app.topic(
            self.hits_topic, key_serializer="raw", value_serializer="json", internal=True, partitions=opts.partitions
        )
        dead_letters = app.topic(self.dead_letter_topic, key_serializer="raw", value_serializer="raw")
        self._window = HoppingWindow(trigger.window_seconds, self.step, expires=2 * trigger.window_seconds)
        self._windows = app.Table("windows", default=list, partitions=opts.partitions).using_window(self._window)
        self._quiet = app.Table("quiet", partitions=opts.partitions)

        async def route(stream: Any) -> None:
            await self._consume(stream, lambda event: self._route(event.message, hits, dead_letters))

        async def count(stream: Any) -> None:
            await self._consume(stream, lambda event: self._count(event.value))

        app.agent(source, name="route")(route)
        app.agent(hits, name="count")(count)
        return app

    async def _consume(self, stream: Any, handle: Callable[[Any], Awaitable[bool]]) -> None:
        """Handle each event; acknowledge it only when ``handle`` says its outcome is durable."""
        manual = stream.noack()
        async for event in manual.events():
            if self._stopping.is_set():
                return  # not acknowledged: read again by whoever consumes next
            async with self._working():
                done = await handle(event)
            if not done:
                return
            await manual.ack(event)

    @contextlib.asynccontextmanager
    async def _working(self) -> AsyncIterator[None]:
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()

    # -- route: decode, filter, key, forward ----------------------------------------------------

    async def _route(self, record: Any, hits: Any, dead_letters: Any) -> bool:
        self.stats.received += 1
        try:
            message = KafkaTriggerSource.message(record)
            context = message.context()
            if self.trigger.filter and not _truthy(evaluate(self.trigger.filter, context)):
                self.stats.filtered += 1
                self._report("filtered")
                return True
            key = group_key(evaluate(self.trigger.key, context))
            if key is None:
                raise BadMessage(f"key {self.trigger.key!r} is empty for this message")
        except (BadMessage, ExpressionError) as exc:
            reason = str(exc)
            parked = await self._retrying("parking a dead letter", lambda: self._park(record, reason, dead_letters))
            if parked:
                self.stats.dead_lettered += 1
                self._report("dead_lettered")
            return parked
        hit = {"key": key, "id": counting_identity(message), "ts": record.timestamp, "message": context}
        return await self._retrying("forwarding a hit", lambda: _sent(hits.send(key=key.encode(), value=hit)))

    async def _park(self, record: Any, reason: str, dead_letters: Any) -> None:
        headers = [(n, v or b"") for n, v in record.headers or () if not n.lower().startswith(DLQ_HEADER_PREFIX)]
        headers += [
            (DLQ_HEADER_PREFIX + "error", reason[:MAX_REASON].encode()),
            (DLQ_HEADER_PREFIX + "trigger", self.trigger.name.encode()),
            (DLQ_HEADER_PREFIX + "workflow", self.spec.workflow.encode()),
            (DLQ_HEADER_PREFIX + "source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        await _sent(dead_letters.send(key=record.key, value=record.value, headers=headers))
        log.warning(
            "%s: %s/%d/%d dead-lettered to %s: %s",
            self.name, record.topic, record.partition, record.offset, self.dead_letter_topic, reason,
        )

    # -- count: window state, decision, start -----------------------------------------------------

    async def _count(self, hit: Any) -> bool:
        try:
            key, identity, ts, message = str(hit["key"]), str(hit["id"]), float(hit["ts"]), dict(hit["message"])
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: skipping a malformed hit %r (%s)", self.name, hit, exc)
            return True
        windows = self._windows[key]
        current = {window: list(windows[window]) for window in self._window.ranges(ts)}
        decision = decide(current, identity, self.trigger.threshold, self.trigger.window_seconds, self._quiet.get(key))
        if decision.fire is not None and not await self._fire(key, decision.count, decision.fire[0], message):
            return False  # stopping while the start kept failing: nothing written, read again
        for window, ids in decision.updates.items():
            windows[window] = ids
        if decision.quiet_until is not None:
            self._quiet[key] = decision.quiet_until
        elif decision.forget:
            self._quiet.pop(key, None)
        self.counted += 1
        return True

    async def _fire(self, key: str, count: int, window_start: float, message: dict[str, Any]) -> bool:
        """Start the workflow for this window; True once the outcome is durable (or final)."""
        event = window_event(key, count, window_start, self.trigger.window_seconds, message)
        try:
            value = window_input(self.trigger.input, event)
        except ExpressionError as exc:
            return self._rejected(key, window_start, str(exc))
        dedup = dedup_key(self.trigger.name, key, window_start)
        runtime, workflow = self.spec.runtime, self.spec.workflow
        results: list[Any] = []

        async def start() -> None:
            try:
                results.append(
                    await runtime.start_execution(
                        workflow, value, dedup_key=dedup, actor=self.actor, tenant=self.trigger.tenant
                    )
                )
            except (InputInvalid, UnknownWorkflow) as exc:
                results.append(exc)

        if not await self._retrying("starting the workflow", start):
            return False
        result = results[-1]
        if isinstance(result, Exception):
            return self._rejected(key, window_start, str(result))
        self._report("started" if result.created else "duplicate")
        if result.created:
            self.stats.started += 1
            log.info("%s: %s reached %d in the window from %s: started %s",
                     self.name, key, count, event["window_start"], result.execution_id)
        else:
            self.stats.duplicates += 1
        return True

    def _rejected(self, key: str, window_start: float, reason: str) -> bool:
        """A start that can never succeed: counted and logged; the window is done with."""
        self.stats.dead_lettered += 1
        self.stats.last_error = reason
        self._report("rejected")
        log.warning("%s: the window of %s from %s cannot start %s: %s",
                    self.name, key, window_start, self.spec.workflow, reason)
        return True

    def _report(self, outcome: TriggerOutcome) -> None:
        instruments = self.spec.runtime.instruments
        instruments.trigger_outcome("kafka_window", self.spec.workflow, self.trigger.name, outcome)

    # -- retries --------------------------------------------------------------------------------

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[None]]) -> bool:
        """Run ``attempt`` until it succeeds (True) or the source stops (False), with backoff."""
        delay = FIRST_BACKOFF
        while True:
            try:
                await attempt()
            except Exception as exc:
                self.stats.last_error = f"{what}: {describe(exc)}"
                self._report("retried")
                if what not in self._failing:
                    self._failing.add(what)
                    log.warning("%s: %s failed, retrying with backoff (%s)", self.name, what, describe(exc))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
                if self._stopping.is_set():
                    return False
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            if what in self._failing:
                self._failing.discard(what)
                log.info("%s: %s works again", self.name, what)
            return True

    # -- topics and offsets ---------------------------------------------------------------------

    async def _ensure_topics(self, failures: list[Exception]) -> list[TopicPartition]:
        """Create the trigger topics and the dead-letter topic unless they exist; wait for leaders.
        Returns the trigger topics' partitions. (faust creates its own: hits and changelogs.)"""
        opts = self.options
        names = [*self.trigger.topics, self.dead_letter_topic]
        described = await ensure_topics(
            opts.bootstrap, names, opts.partitions, opts.replication, failures, security=opts.security
        )
        return [
            TopicPartition(topic["topic"], partition["partition"])
            for topic in described
            if topic["topic"] in self.trigger.topics
            for partition in topic["partitions"]
        ]

    async def _start_new_group_at_end(self, partitions: list[TopicPartition]) -> None:
        """A new trigger starts at the end of its topics (like a Kafka trigger's ``latest``), yet
        faust must read its own topics from the start: so faust resets to ``earliest`` and, for
        a group that never committed on the trigger topics, we commit their end offsets first."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=list(self.options.bootstrap),
            group_id=self.app_id,
            enable_auto_commit=False,
            **self.options.security.client_args(),
        )
        await consumer.start()
        try:
            for tp in partitions:
                if await consumer.committed(tp) is not None:
                    return  # a known group resumes where it stopped
            ends = await consumer.end_offsets(partitions)
            consumer.assign(partitions)
            try:
                await consumer.commit({tp: ends[tp] for tp in partitions})
            except KafkaError as exc:  # another process joined first: it commits for the group
                log.info("%s: not committing start offsets (%s)", self.name, describe(exc))
        finally:
            await consumer.stop()


def counting_identity(message: InboundMessage) -> str:
    """What makes a message count once: its CloudEvent source and id, else its Kafka position."""
    event = message.cloudevent
    if event and event.get("id"):
        return f"ce:{event.get('source', '')}/{event['id']}"
    return message.identity


async def _sent(sending: Awaitable[Any]) -> None:
    """Await faust's send (which only queues) and then the broker's acknowledgement."""
    await (await sending)
