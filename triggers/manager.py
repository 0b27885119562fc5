"""The trigger manager: one running source per enabled queue/topic trigger of each workflow's latest
version, kept in step with the registry.

What runs: for every workflow, the ``kafka``, ``amqp`` and ``kafka_window`` triggers of its latest
version whose effective ``enabled`` flag is true. The effective flag is the operator's override
(``Registry.trigger_states``, set with ``POST /api/v1/triggers/{workflow}/{name}/enable|disable``)
when there is one, else the definition's own flag. Webhooks are served by
:class:`triggers.webhook.WebhookEndpoint`; they are listed, and their overrides kept, here too.

When: at ``start()``, right after a definition is registered in this process
(``Runtime.definition_observers``), when an override is changed in this process, and every
``poll_interval`` seconds (definitions and overrides written by other processes).

Version takeover: when version N+1 of a workflow is registered, each trigger name present in
both versions is handed over: the N source is stopped first (it commits or acknowledges what it
finished; what it had not finished is redelivered), then the N+1 source is started with the same
consumer group or queue. Groups default to ``orchestrator.<workflow>.<trigger>``, without the
version, so the new source resumes at the committed offsets; dedup keys carry no version either, so
a message both saw starts one execution. Triggers gone from N+1 are stopped, new ones started.

A source that cannot be built or started (unknown connection, unreachable broker, a module not
installed) never stops the process: its error is logged once, shown in the listing, and the start
is retried on the next poll.

Sources are created from a ``type -> "module:Class"`` table, imported on first use, so a process
without a broker's client library only fails the triggers that need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import NoDeadLetters
from orchestrator.ports import UnknownTrigger as UnknownTrigger  # raised here; re-exported
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.definition import (
    AmqpTrigger,
    KafkaTrigger,
    ScheduleTrigger,
    WebhookTrigger,
    WindowTrigger,
    WorkflowDefinition,
)
from triggers.inbound import starter_actor
from triggers.sources import SourceFactory, SourceSpec, TriggerSource

if TYPE_CHECKING:
    from triggers.dead_letter_queues import DeadLetterQueue

log = logging.getLogger(__name__)

FACTORIES: dict[str, str] = {
    "kafka": "triggers.kafka_source:KafkaTriggerSource",
    "amqp": "triggers.amqp_source:AmqpTriggerSource",
    "kafka_window": "triggers.window_source:WindowTriggerSource",
}
Key = tuple[str, str]  # (workflow, trigger name)


def consumer_group(workflow: str, trigger: Any) -> str | None:
    """The Kafka consumer group of a topic trigger: the same for every version of the workflow."""
    if isinstance(trigger, KafkaTrigger) and trigger.group:
        return trigger.group
    if isinstance(trigger, KafkaTrigger | WindowTrigger):
        return f"orchestrator.{workflow}.{trigger.name}"
    return None


def trigger_details(workflow: str, trigger: Any) -> dict[str, Any]:
    """Where a trigger listens: hook path, or connection and topics/queue/group."""
    if isinstance(trigger, WebhookTrigger):
        preset = trigger.signature.preset if trigger.signature else None
        path = (
            f"/hooks/{trigger.name}"
            if trigger.tenant == "default"
            else f"/hooks/{trigger.tenant}/{trigger.name}"
        )
        return {"path": path, "signed": preset is not None, "preset": preset}
    if isinstance(trigger, ScheduleTrigger):
        every = {"every": trigger.every} if trigger.every is not None else {"cron": trigger.cron}
        return {**every, "timezone": trigger.timezone, "catchup": trigger.catchup, "overlap": trigger.overlap}
    details: dict[str, Any] = {"connection": trigger.connection}
    if isinstance(trigger, KafkaTrigger):
        details.update(
            topics=list(trigger.topics),
            group=consumer_group(workflow, trigger),
            start_from=trigger.start_from,
            dead_letter_topic=trigger.dead_letter_topic or f"{trigger.topics[0]}.dlq",
        )
    elif isinstance(trigger, AmqpTrigger):
        details.update(
            queue=trigger.queue,
            exchange=trigger.exchange,
            binding_key=trigger.binding_key if trigger.exchange else None,
            dead_letter_exchange=trigger.dead_letter_exchange or f"{trigger.queue}.dlx",
        )
    elif isinstance(trigger, WindowTrigger):
        details.update(
            topics=list(trigger.topics),
            group=consumer_group(workflow, trigger),
            window_seconds=trigger.window_seconds,
            threshold=trigger.threshold,
        )
    correlation = getattr(trigger, "correlation", None)
    if correlation is not None:
        details["delivers_event"] = correlation.event
    return details


def runs_sources_here(runtime: Runtime) -> bool:
    """Triggers consume wherever workers run: not in Kafka ``role=api`` processes (they only
    produce), so the consumer groups spread partitions over the worker processes."""
    options = getattr(runtime.transport, "options", None)
    return getattr(options, "role", "all") != "api"


@dataclass(slots=True)
class _Slot:
    """One queue/topic trigger this process runs, or tried to run."""

    version: int
    trigger: Any
    source: TriggerSource | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TriggerView:
    """One trigger of a workflow's latest version, as ``GET /api/v1/triggers`` shows it."""

    workflow: str
    version: int
    name: str
    type: str
    enabled: bool
    override: bool | None  # the operator's override, if any (else the definition's flag holds)
    running: bool  # in this process (webhooks: served whenever enabled)
    details: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] | None = None
    error: str | None = None
    running_version: int | None = None  # the version whose source runs here (during a takeover)
    tenant: str = "default"  # of the executions it starts: who may see and switch it

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "version": self.version,
            "name": self.name,
            "type": self.type,
            "actor": starter_actor(self.type, self.workflow, self.name),
            "enabled": self.enabled,
            "override": self.override,
            "running": self.running,
            "running_version": self.running_version,
            "details": self.details,
            "stats": self.stats,
            "error": self.error,
        }


class TriggerManager(Lifecycle):
    """Runs trigger sources over a Runtime: ``async with TriggerManager(runtime, settings):``.

    ``run_sources=False`` (API-only processes) still lists triggers, keeps overrides (for the
    webhook endpoint) and changes them, but starts no source. ``factories`` maps a trigger type to
    ``"module:Class"`` or to a callable taking a :class:`SourceSpec`.
    """

    def __init__(
        self,
        runtime: Runtime,
        settings: Settings | None = None,
        *,
        run_sources: bool = True,
        poll_interval: float | None = None,
        factories: Mapping[str, str | SourceFactory] | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 60.0,
    ) -> None:
        self.runtime = runtime
        self.settings = settings or runtime.settings
        self.run_sources = run_sources
        self.poll_interval = self.settings.trigger_poll_interval if poll_interval is None else poll_interval
        self.factories: dict[str, str | SourceFactory] = dict(FACTORIES if factories is None else factories)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._latest: dict[str, WorkflowDefinition] = {}
        self._overrides: dict[Key, bool] = {}
        self._slots: dict[Key, _Slot] = {}
        self._reported: dict[Key, str] = {}  # the error last logged per trigger: log each once
        self._state_lock = asyncio.Lock()  # reading/writing definitions and overrides (quick)
        self._key_locks: dict[Key, asyncio.Lock] = {}  # one trigger's stop/start at a time
        self._closed = False
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the triggers of the registered definitions, then follow registrations and poll."""
        self._closed = False
        if self._on_registered not in self.runtime.definition_observers:
            self.runtime.definition_observers.append(self._on_registered)
        try:
            await self.sync()
        except Exception as exc:  # e.g. the registry is briefly unavailable: the poll retries
            log.error("triggers: cannot read the registry (%s); retrying every %gs", exc, self.poll_interval)
        self._poller = asyncio.create_task(self._poll(), name="trigger-manager")

    async def stop(self) -> None:
        """Stop every source (each commits or acknowledges what it finished)."""
        self._closed = True  # a change still in progress starts nothing more
        if self._on_registered in self.runtime.definition_observers:
            self.runtime.definition_observers.remove(self._on_registered)
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        await self._converge_all()

    # -- following the registry -----------------------------------------------------------

    @property
    def overrides(self) -> Mapping[Key, bool]:
        """The overrides as last read (or set here): (workflow, trigger) -> enabled."""
        return self._overrides

    def is_enabled(self, workflow: str, trigger: Any) -> bool:
        """The effective flag: the override if any, else the definition's."""
        return self._overrides.get((workflow, trigger.name), bool(trigger.enabled))

    def _on_registered(self, definition: WorkflowDefinition) -> None:
        self._remember([definition])
        self._wake.set()

    def _remember(self, definitions: Iterable[WorkflowDefinition]) -> None:
        """Keep the newest version seen of each workflow (a registry read may predate a registration)."""
        for definition in definitions:
            known = self._latest.get(definition.name)
            if known is None or (definition.version or 0) >= (known.version or 0):
                self._latest[definition.name] = definition

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # not wait_for: in 3.11 it can swallow a cancel
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.sync()
            except Exception as exc:
                log.warning(
                    "triggers: cannot read the registry (%s); retrying in %gs", exc, self.poll_interval
                )

    async def sync(self) -> None:
        """Read the latest definitions and the overrides; start, stop and hand over sources to match.
        Sources that failed to start are retried."""
        async with self._state_lock:  # so a concurrent set_enabled is never undone by a stale read
            definitions = await self.runtime.registry.list()
            states = await self.runtime.registry.trigger_states()
            self._remember(definitions)
            self._overrides = dict(states)
        await self._converge_all()

    def _wanted(self, key: Key) -> tuple[int, Any] | None:
        """(version, trigger) of the source that should run here for this trigger, or None."""
        definition = self._latest.get(key[0])
        if self._closed or not self.run_sources or definition is None:
            return None
        for trigger in definition.triggers:
            if trigger.name == key[1] and trigger.type in self.factories:
                return (definition.version or 0, trigger) if self.is_enabled(key[0], trigger) else None
        return None

    async def _converge_all(self) -> None:
        """Bring every trigger in line; different triggers proceed concurrently."""
        keys = set(self._slots)
        for definition in self._latest.values():
            keys.update((definition.name, trigger.name) for trigger in definition.triggers)
        await asyncio.gather(*(self._converge(key) for key in sorted(keys)))

    async def _converge(self, key: Key) -> None:
        """Stop what should not run, hand over what changed version, start (or retry) the rest.
        One trigger at a time: a slow start of one trigger never holds up the others."""
        async with self._key_locks.setdefault(key, asyncio.Lock()):
            slot, want = self._slots.get(key), self._wanted(key)
            if want is None:
                if slot is not None:
                    await self._retire(key)
            elif slot is None or slot.source is None or slot.version != want[0]:
                await self._replace(key, *want)

    async def _retire(self, key: Key) -> None:
        slot = self._slots.pop(key)
        self._reported.pop(key, None)
        await self._stop_slot(key, slot)

    async def _replace(self, key: Key, version: int, trigger: Any) -> None:
        """Stop the running source of this trigger (if any), then start the one for ``version``."""
        old = self._slots.pop(key, None)
        if old is not None:
            await self._stop_slot(key, old)
            if old.source is not None and old.version != version:
                log.info("trigger %s/%s: v%d handed over to v%d", *key, old.version, version)
        slot = self._slots[key] = _Slot(version, trigger)
        try:
            source = self._factory(trigger.type)(
                SourceSpec(
                    workflow=key[0],
                    version=version,
                    trigger=trigger,
                    runtime=self.runtime,
                    settings=self.settings,
                )
            )
        except Exception as exc:
            self._failed(key, slot, f"cannot create the {trigger.type} source: {describe(exc)}")
            return
        try:
            async with asyncio.timeout(self.start_timeout):
                await source.start()
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(source.stop(), self.stop_timeout)
            raise
        except Exception as exc:
            reason = (
                f"did not start within {self.start_timeout:g}s"
                if isinstance(exc, TimeoutError)
                else describe(exc)
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(source.stop(), self.stop_timeout)
            self._failed(key, slot, f"cannot start: {reason}")
            return
        slot.source = source
        if self._reported.pop(key, None) is not None:
            log.info("trigger %s/%s (%s) v%d started after earlier failures", *key, trigger.type, version)
        else:
            log.info("trigger %s/%s (%s) v%d started", *key, trigger.type, version)

    def _failed(self, key: Key, slot: _Slot, error: str) -> None:
        slot.error = error
        if self._reported.get(key) != error:  # one clear line per distinct failure, not per poll
            self._reported[key] = error
            log.error("trigger %s/%s: %s; retrying every %gs", *key, error, self.poll_interval)

    async def _stop_slot(self, key: Key, slot: _Slot) -> None:
        if slot.source is None:
            return
        try:
            await asyncio.wait_for(slot.source.stop(), self.stop_timeout)
        except Exception as exc:
            log.error("trigger %s/%s v%d: stopping failed: %s", *key, slot.version, describe(exc))
        else:
            log.info("trigger %s/%s v%d stopped", *key, slot.version)

    def _factory(self, kind: str) -> SourceFactory:
        entry = self.factories[kind]
        if not isinstance(entry, str):
            return entry
        module, _, name = entry.partition(":")
        factory: SourceFactory = getattr(importlib.import_module(module), name)
        return factory

    # -- management -------------------------------------------------------------------------

    async def views(self) -> list[TriggerView]:
        """Every trigger of every workflow's latest version (fresh from the registry)."""
        definitions = await self.runtime.registry.list()
        states = await self.runtime.registry.trigger_states()
        return [self._view(d, t, states) for d in definitions for t in d.triggers]

    async def view(self, workflow: str, name: str) -> TriggerView:
        """One trigger of the workflow's latest version; UnknownWorkflow, UnknownTrigger."""
        definition = await self.runtime.registry.get(workflow)
        states = await self.runtime.registry.trigger_states()
        return self._view(definition, _find(definition, name), states)

    async def dead_letters(self, workflow: str, name: str) -> DeadLetterQueue:
        """Where the trigger of the workflow's latest version parks what it cannot take
        (``triggers.dead_letter_queues``); UnknownWorkflow, UnknownTrigger, NoDeadLetters."""
        trigger = _find(await self.runtime.registry.get(workflow), name)
        if not isinstance(trigger, KafkaTrigger | AmqpTrigger):
            raise NoDeadLetters(f"a {trigger.type} trigger parks no dead letters (kafka and amqp triggers do)")
        from triggers.dead_letter_queues import dead_letter_queue  # brings in aiokafka and aio-pika

        return dead_letter_queue(trigger, self.settings.connection(trigger.connection))

    async def set_enabled(self, workflow: str, name: str, enabled: bool) -> TriggerView:
        """Persist an override (every process applies it within one poll) and apply it here now."""
        definition = await self.runtime.registry.get(workflow)
        _find(definition, name)
        async with self._state_lock:
            await self.runtime.registry.set_trigger_enabled(workflow, name, enabled)
            self._remember([definition])
            self._overrides[(workflow, name)] = enabled
        await self._converge((workflow, name))
        return await self.view(workflow, name)

    def _view(self, definition: WorkflowDefinition, trigger: Any, states: Mapping[Key, bool]) -> TriggerView:
        key = (definition.name, trigger.name)
        override = states.get(key)
        enabled = bool(trigger.enabled) if override is None else override
        slot = self._slots.get(key)
        source = slot.source if slot is not None else None
        running = enabled if isinstance(trigger, WebhookTrigger) else source is not None
        return TriggerView(
            workflow=definition.name,
            version=definition.version or 0,
            name=trigger.name,
            type=trigger.type,
            enabled=enabled,
            override=override,
            running=running,
            running_version=slot.version if source is not None and slot is not None else None,
            details=trigger_details(definition.name, trigger),
            stats=source.stats.to_dict() if source is not None else None,
            error=slot.error if slot is not None and source is None else None,
            tenant=str(getattr(trigger, "tenant", "default")),
        )


def _find(definition: WorkflowDefinition, name: str) -> Any:
    for trigger in definition.triggers:
        if trigger.name == name:
            return trigger
    raise UnknownTrigger(f"workflow {definition.name!r} v{definition.version} has no trigger named {name!r}")


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
