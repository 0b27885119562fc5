"""The orchestrator in one process: backends from settings, engine, workers, timers, recovery.

This is also the library API that the REST API, the CLI and triggers call. Every execution
belongs to a tenant: the read and write methods take ``tenant`` (default ``default``) and treat an
execution of another tenant as unknown (``ExecutionNotFound``). ``actor`` names who issues a
command (``library`` when a caller does not say; see docs/events.md for every entry point's).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.base import Connectors
from connectors.defaults import default_connectors
from orchestrator.access_ports import AccessStore
from orchestrator.analytics.projection import NAME as ANALYTICS
from orchestrator.analytics.projection import AnalyticsProjection
from orchestrator.analytics.reader import AnalyticsReader
from orchestrator.analytics.store import AnalyticsSource
from orchestrator.audit.secret_reads import SecretReadAudit
from orchestrator.audit.trail import AuditTrail
from orchestrator.backends.memory_dead_letters import MemoryDeadLetters
from orchestrator.backends.urls import (
    ACCESS_STORES,
    AUDIT_LOGS,
    EVENT_LOGS,
    NODE_DIRECTORIES,
    REGISTRIES,
    SCHEDULE_STATES,
    TIMERS,
    TRANSPORTS,
    WAIT_INDEXES,
    nodes_url,
    open_backend,
    projection_url,
)
from orchestrator.cluster.config import effective_config
from orchestrator.cluster.heartbeat import Heartbeat
from orchestrator.cluster.node import NodeIdentity, ReportsLoad
from orchestrator.collector import CollectorThreshold
from orchestrator.core.commands import CancelExecution, DeliverEvent, ResumeExecution, StartExecution
from orchestrator.core.machine import ExecutionExists
from orchestrator.core.state import ExecutionState
from orchestrator.crypto import setup as encryption
from orchestrator.engine import snapshots
from orchestrator.engine.admission_feed import admission_for
from orchestrator.engine.effects import Effects
from orchestrator.engine.engine import Engine
from orchestrator.engine.parking import CommandParking, RetryPolicy
from orchestrator.engine.recovery import RecoverySweeper, ScannedIdle
from orchestrator.engine.registration import check_registration
from orchestrator.engine.retrying import Redo
from orchestrator.engine.throttle import configured_throttles
from orchestrator.engine.worker import Worker
from orchestrator.history import pager
from orchestrator.history import redrive as redrives
from orchestrator.history.diff import MAX_DIFF_EVENTS, ExecutionDiff, diff_executions
from orchestrator.history.jobs import Job, Jobs
from orchestrator.history.retention import RetentionSweeper
from orchestrator.history.timeline import Timeline, moment_of
from orchestrator.history.timeline import build as build_timeline
from orchestrator.instrumentation import Instruments, attach, guarded
from orchestrator.lifecycle import Lifecycle, Supervised
from orchestrator.limits import debounce as debounces
from orchestrator.limits.capacity import check_capacity, count_running
from orchestrator.limits.quotas import QuotaFileError, Quotas, load_quotas
from orchestrator.ports import (
    AuditLog,
    BackendUnavailable,
    DeadLetters,
    EventLog,
    ExecutionPage,
    ExecutionQuery,
    ExecutionSummary,
    FairScheduling,
    FeedSource,
    IdleIndex,
    Link,
    NodeDirectory,
    NodeRecord,
    ParksCommands,
    Registry,
    ScheduleStates,
    SecretStore,
    Timers,
    Transport,
    UnknownExecution,
    WaitIndex,
)
from orchestrator.projections.runner import ProjectionRunner
from orchestrator.secrets.stores import lookup_chain
from orchestrator.settings import Settings, SettingsError
from orchestrator.stores import open_secret_store
from schemas import strict_json
from schemas.definition import WorkflowDefinition
from schemas.envelope import Envelope
from schemas.input_check import input_problems, input_validator
from schemas.tenant import DEFAULT_TENANT, check_tenant
from schemas.validation import Problem

if TYPE_CHECKING:
    from orchestrator.projections.transitions import TransitionExporter

log = logging.getLogger(__name__)
LATEST_TTL = 1.0  # seconds a workflow's latest version is trusted without asking the registry
DEDUP_NAMESPACE = uuid.UUID("0b5c7f36-2d0e-4a8e-9b43-6a1f3f2e8c21")
LIBRARY_ACTOR = "library"  # the actor of a command whose caller names none


class InputInvalid(ValueError):
    """The workflow input does not match the definition's input schema."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("input does not match the input schema: " + "; ".join(map(str, problems)))


class ExecutionNotFound(UnknownExecution):
    """No execution with that id in the caller's tenant."""


@dataclass(frozen=True, slots=True)
class StartResult:
    execution_id: str
    created: bool  # False: the dedup key matched an existing execution; nothing was started
    debounced: bool = False  # recorded on a quiet execution with the same debounce key (its id)


def execution_id_for(tenant: str, workflow: str, dedup_key: str) -> str:
    """Executions started with the same dedup key share one id, so the log rejects the second."""
    return str(uuid.uuid5(DEDUP_NAMESPACE, f"{tenant}/{workflow}/{dedup_key}"))


class Runtime(Lifecycle):
    """Start with ``async with Runtime(settings) as runtime:``; everything closes on exit."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        connectors: Connectors | None = None,
        clock: Callable[[], float] = time.time,
        event_log: EventLog | None = None,
        registry: Registry | None = None,
        transport: Transport | None = None,
        timers: Timers | None = None,
        waits: WaitIndex | None = None,
        recover: bool = True,
        instruments: Instruments | None = None,
        role: str = "library",
        audit_log: AuditLog | None = None,
        secrets: SecretStore | None = None,
        access: AccessStore | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        s = self.settings
        self.clock = clock
        self.log: EventLog = event_log or open_backend(EVENT_LOGS, s.event_log_url, "event log")
        # The audit chain beside the event log (in memory beside a log passed in).
        audit_url = "memory://" if event_log is not None else s.event_log_url
        self.audit = AuditTrail(audit_log or open_backend(AUDIT_LOGS, audit_url, "audit log"), clock)
        self.keyring = encryption.keyring_of(s)  # None: encryption at rest is off
        self.encryption = encryption.status_of(self.keyring)
        self.codec = encryption.attach(self.log, self.keyring)
        self.registry: Registry = registry or open_backend(REGISTRIES, s.effective_registry_url, "registry")
        self.transport: Transport = transport or open_backend(
            TRANSPORTS, s.transport_url, "transport", s.worker_concurrency
        )
        # A runtime-checkable protocol check costs ~10 us: decided once, not at every start.
        self._load: ReportsLoad | None = self.transport if isinstance(self.transport, ReportsLoad) else None
        if s.tenant_weights and isinstance(self.transport, FairScheduling):
            self.transport.set_tenant_weights(s.tenant_weights)
        projections = projection_url(s.event_log_url)
        self.timers: Timers = timers or open_backend(TIMERS, s.timers_url or projections, "timers", clock)
        self.waits: WaitIndex = waits or open_backend(WAIT_INDEXES, s.waits_url or projections, "wait index")
        # API keys and custom roles, beside the event log it opened by URL (by hand: in memory).
        access_url = s.event_log_url if event_log is None else "memory://"
        self.access: AccessStore = access or open_backend(ACCESS_STORES, access_url, "access store")
        self.connectors = connectors or default_connectors(s.python_threads, s)
        self.instruments = guarded(instruments)  # see orchestrator.instrumentation; triggers read it here
        self.records = encryption.attach_records(self.transport, self.codec)  # Kafka records
        for part in (self.log, self.registry, self.transport, self.timers, self.waits):
            attach(part, self.instruments)
        self.engine = Engine(
            self.log,
            self.registry,
            clock=clock,
            snapshot_every=s.snapshot_every,
            instruments=self.instruments,
        )
        self.effects = Effects(
            self.engine,
            self.registry,
            self.transport,
            self.timers,
            self.waits,
            clock,
            others_commit=self.transport.durable,
        )
        self.engine.observers.append(self.effects.on_committed)
        source: object = self.log
        if not isinstance(source, FeedSource):
            raise TypeError(f"{type(source).__name__} serves no event feed (feed(), checkpoints())")
        self.feed = source.feed()  # projections follow it; in Kafka mode in the owner of shard 0
        self.projections = ProjectionRunner(self.feed, source.checkpoints(), active=self._owns_first_shard)
        self.engine.observers.append(self.projections.on_committed)  # wakes them after each commit
        self.node = NodeIdentity.of_this_process(role, clock(), s.heartbeat_interval, s.node_id)
        # Kafka mode: the admitter epochs that fence a handover (orchestrator.engine.admission_epoch).
        self.epochs: ScheduleStates | None = None
        if self.transport.durable:
            self.epochs = open_backend(SCHEDULE_STATES, s.event_log_url if event_log is None else "memory://", "epochs")
        self.admission = admission_for(self.engine, self.transport, self.projections, clock, self.epochs, self.node.node_id)
        self.analytics: AnalyticsReader | None = None  # docs/analytics.md; None: the log keeps none
        if s.analytics and isinstance(source, AnalyticsSource):  # ORCHESTRATOR_ANALYTICS=false: none
            self.analytics = AnalyticsReader(source.analytics(), clock)
        # One process: what fails after a commit is retried here (Kafka redelivers the command).
        self.redo: Redo | None = None if self.transport.durable else Redo(rescan=self.recover)
        self.engine.redo = self.effects.redo = self.redo
        # Poison commands are parked here (orchestrator.engine.parking); the API lists them.
        self.dead_letters: DeadLetters = (
            self.transport.dead_letters
            if isinstance(self.transport, ParksCommands)
            else MemoryDeadLetters(self.transport.submit, clock)
        )
        policy = RetryPolicy(attempts=s.command_attempts)
        self.commands = CommandParking(self.engine.handle_quietly, self.dead_letters, policy, index=self.log)
        self.recovery = self._recovery_sweeper()
        self.transitions: TransitionExporter | None = None  # ORCHESTRATOR_TRANSITIONS_URL
        if s.transitions_url:
            from orchestrator.projections.transitions import TransitionExporter  # aiokafka only when used

            sealing = None if s.transitions_plaintext else self.codec  # plaintext: a trusted consumer
            self.transitions = TransitionExporter.from_url(s.transitions_url, self.log, sealing)
            self.projections.add(self.transitions)
            if not self.transport.durable and not self.feed.delay:  # one process: wait for the ack
                self.engine.observers.append(self.transitions.on_committed)
        throttles = configured_throttles(s.connector_rate_limits, time.monotonic)
        # Stored secrets live beside the event log (in memory beside an injected one), sealed.
        self.secrets: SecretStore = secrets or open_secret_store(s, "memory://" if event_log is not None else None, self.log)
        lookup = lookup_chain(s, self.secrets)  # stored, directory, environment, file
        self.worker = Worker(self.connectors, self.transport, clock, instruments=self.instruments, throttles=throttles, secrets=lookup)
        self.worker.secrets.reads = SecretReadAudit(self.audit)  # each resolution audited
        self.retention = RetentionSweeper(self.log, self.registry, clock=clock, archive_dir=s.archive_dir)
        try:
            quota_limits = load_quotas(s.quotas_file)
        except QuotaFileError as exc:
            raise SettingsError(str(exc)) from None
        self.quotas = Quotas(quota_limits, clock, self.count_running, self.instruments, self.log)  # ORCHESTRATOR_QUOTAS_FILE
        self.quotas.attach(self.engine)  # events per execution, stored bytes from the commits
        self.jobs = Jobs(clock)  # background work such as bulk redrives (orchestrator.history.jobs)
        # The cluster view: this process's heartbeat in the node directory (orchestrator.cluster).
        # Beside the event log it opened by URL; an event log passed in by hand: in memory.
        beside = nodes_url(s.event_log_url) if event_log is None else "memory://"
        self.nodes: NodeDirectory = open_backend(NODE_DIRECTORIES, s.nodes_url or beside, "node directory")
        self.engine.node = self.node.node_id  # recorded on every event it commits
        self._config = effective_config(s)
        self.heartbeat = Heartbeat(self.nodes, self.describe_node, s.heartbeat_interval)
        self._recover = recover
        self._validators: dict[tuple[str, int], Any] = {}
        self._latest: dict[str, tuple[float, WorkflowDefinition]] = {}  # name -> (read at, latest)
        self.definition_observers: list[Callable[[WorkflowDefinition], None]] = []
        self._stack: AsyncExitStack | None = None

    async def start(self) -> None:
        stack = AsyncExitStack()
        collector = CollectorThreshold(self.settings.gc_threshold)
        collector.apply()
        stack.callback(collector.restore)
        try:
            for part in (self.log, self.audit, self.registry, self.waits, self.secrets, self.access, self.connectors):
                await part.start()
                stack.push_async_callback(part.stop)
            if self.epochs is not None:
                await self.epochs.start()
                stack.push_async_callback(self.epochs.stop)
            if self.records is not None:  # its data keys live in the log
                await self.records.prepare()
            if self.transitions is not None:  # ready before commands flow; stopped after them
                await self.transitions.start()
                stack.push_async_callback(self.transitions.stop)
            if self.analytics is not None and ANALYTICS not in self.projections.names:
                projection = AnalyticsProjection(self.analytics.store, self.registry.get, self.instruments)
                self.projections.add(projection)  # after the caller's own
            await self.projections.start()
            stack.push_async_callback(self.projections.stop)
            if self.redo is not None:
                await self.redo.start()
                stack.push_async_callback(self.redo.stop)
            await self.transport.start(self.commands, self.worker.run)
            stack.push_async_callback(self.transport.stop)
            await self.timers.start(self.effects.on_timer, self.transport)
            stack.push_async_callback(self.timers.stop)
            await self.jobs.start()  # stopped (running jobs cancelled) before the timers and transport
            stack.push_async_callback(self.jobs.stop)
            await self.nodes.start()
            stack.push_async_callback(self.nodes.stop)
            if self.settings.heartbeat_interval > 0:
                await self.heartbeat.start()  # its farewell is published before the transport stops
                stack.push_async_callback(self.heartbeat.stop)
            if self._recover and self.redo is not None:
                try:
                    await self.recover()
                except Exception as exc:  # the log is failing: scan again once it answers
                    self.redo.add(("recover",), self.recover, "the recovery scan at start", exc)
            if self.settings.retention_interval > 0:
                sweeping = asyncio.create_task(
                    self.retention.run(self.settings.retention_interval, self._owns_first_shard),
                    name="retention-sweeper",
                )
                stack.push_async_callback(_cancel, sweeping)
            if self.recovery is not None:
                recovering = asyncio.create_task(self.recovery.run(), name="recovery-sweeper")
                stack.push_async_callback(_cancel, recovering)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    async def count_running(self, tenant: str, at_most: int) -> int:
        return await count_running(self.log, tenant, at_most)

    def check_capacity(self) -> None:
        """Overloaded past ``max_in_flight`` step tasks here (``orchestrator.limits.capacity``)."""
        held = self._load.in_flight() if self._load is not None else None
        check_capacity(self.transport, held, self.settings.max_in_flight)

    def describe_node(self) -> NodeRecord:
        """This process's node record now (what the heartbeat publishes)."""
        return self.node.record(self.transport, self.clock(), self._config)

    @property
    def running(self) -> bool:
        """True between a successful ``start()`` and ``stop()``."""
        return self._stack is not None

    def problem(self) -> str | None:
        """Why this process cannot serve now, or None: not started, its in-process workers,
        timer loop or post-commit retries stopped, or its last appends failed."""
        if self._stack is None:
            return "the runtime is not started"
        for part in (self.engine, self.transport, self.timers, self.redo):
            if isinstance(part, Supervised) and (problem := part.problem()) is not None:
                return problem
        return None

    async def stop(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    async def _resume_one(self, execution_id: str) -> None:
        state = await self.engine.load(execution_id)
        if state is not None and not state.terminal:
            await self.effects.resume(state)

    def _recovery_sweeper(self) -> RecoverySweeper | None:
        """The sweep resuming idle executions (orchestrator.engine.recovery): with a durable
        transport only (one process recovers at start instead), unless its interval is 0."""
        s = self.settings
        if not self.transport.durable or s.recovery_interval <= 0:
            return None
        index: IdleIndex
        if isinstance(self.log, IdleIndex):
            self.log.shards = self.transport  # the log files each execution under its shard
            index = self.log
        else:
            index = ScannedIdle(self.log, self.transport)
        return RecoverySweeper(
            index, self.transport, self.clock, interval=s.recovery_interval, grace=s.recovery_grace
        )

    def _owns_first_shard(self) -> bool:
        """One process sweeps retention: the one owning shard 0 (every process in-process)."""
        owned = self.transport.owned_shards()
        return owned is None or 0 in owned

    async def recover(self) -> int:
        """Resume every running execution from its log; returns how many (a failing resume is retried)."""
        count = 0
        async for summary in pager.executions(self.log, ExecutionQuery(status="running")):
            try:
                state = await self.engine.load(summary.execution_id)
                if state is not None and not state.terminal:
                    await self.effects.resume(state)
                    count += 1
            except Exception as exc:
                if self.redo is None:
                    raise
                job = functools.partial(self._resume_one, summary.execution_id)
                self.redo.add(("recover", summary.execution_id), job, f"recovery of {summary.execution_id}", exc)
        if count:
            log.info("resumed %d running executions", count)
        await self.admission.rebuild()  # who holds and waits for concurrency slots, from the log
        return count

    # -- definitions ------------------------------------------------------------------

    async def register(self, definition: WorkflowDefinition) -> WorkflowDefinition:
        """Store a definition (immutable per version) and tell observers such as the webhook index.

        Refused first (``orchestrator.engine.registration``): DefinitionError for a connector this
        process lacks, a trigger of another tenant or an unregistered child workflow or version;
        HookTaken for a webhook name another workflow of the tenant serves; NameTaken."""
        checks = self.connectors.names(), self.connectors.step_problems
        definition = await check_registration(definition, self.registry, *checks)
        stored = await self.registry.register(definition)
        self._latest.pop(stored.name, None)
        for observer in self.definition_observers:
            observer(stored)
        return stored

    # -- executions -------------------------------------------------------------------

    async def start_execution(
        self,
        workflow: str,
        input: Any = None,
        *,
        version: int | None = None,
        dedup_key: str | None = None,
        actor: str | None = None,
        tenant: str = DEFAULT_TENANT,
        metadata: dict[str, Any] | None = None,
        reuse: dict[str, Any] | None = None,
        debounce: bool = True,
    ) -> StartResult:
        """Start an execution; returns once its start is durable. UnknownWorkflow, InputInvalid,
        TenantInvalid.

        ``reuse`` (redrives): step name -> recorded output, taken instead of running the step.
        ``debounce=False`` (redrives): the definition's ``debounce`` does not apply."""
        check_tenant(tenant)
        self.check_capacity()
        definition = await self.definition(workflow, version)
        assert definition.version is not None
        self.check_input(definition, input)
        if self.quotas:
            await self.quotas.check_start(tenant, input)
        by = actor or LIBRARY_ACTOR
        quiet = debounces.debounce_of(definition, input, self.clock()) if debounce else None  # (key, end)
        if quiet is not None:  # a quiet execution of the key takes this start's place
            join = debounces.handler(self.engine, tenant)
            joined = await debounces.join(self.waits, join, definition, input, tenant=tenant, actor=by, now=self.clock())
            if joined is not None:
                return StartResult(joined, created=False, debounced=True)
        if dedup_key is None:
            execution_id = str(uuid.uuid4())
        else:
            execution_id = execution_id_for(tenant, workflow, dedup_key)
        command = StartExecution(
            execution_id=execution_id,
            now=self.clock(),
            actor=by,
            workflow=workflow,
            version=definition.version,
            input=input,
            tenant=tenant,
            dedup_key=dedup_key,
            metadata=metadata or {},
            reuse=reuse or {},
            not_before=quiet[1] if quiet else self.quotas.start_rates.slot(definition, input, tenant, self.clock()),
            debounce_key=quiet[0] if quiet else None,
        )
        try:
            await self.engine.handle(command, effects_may_fail=True)
        except ExecutionExists:
            await self._resume_if_never_dispatched(execution_id)
            return StartResult(execution_id, created=False)
        return StartResult(execution_id, created=True)

    async def definition(self, workflow: str, version: int | None = None) -> WorkflowDefinition:
        """A version from the registry; the latest is re-read at most every ``LATEST_TTL`` seconds
        (at once after a registration in this process), so a start costs no registry read."""
        if version is not None:
            return await self.engine.definition(workflow, version)
        cached = self._latest.get(workflow)
        now = time.monotonic()
        if cached is not None and now - cached[0] < LATEST_TTL:
            return cached[1]
        definition = await self.registry.get(workflow)
        self._latest[workflow] = (now, definition)
        return definition

    async def _resume_if_never_dispatched(self, execution_id: str) -> None:
        """A duplicate start may be the retry of one whose process died between the append and
        the dispatch. When the execution has not moved since its start, ask its owner to
        re-derive the effects (at worst its first tasks run twice, which steps allow)."""
        if not self.transport.durable:
            return  # one process: a crash is followed by the recovery scan at start
        summary = await self.log.summary(execution_id)
        if summary is not None and summary.status == "running" and summary.updated_at == summary.started_at:
            await self.transport.submit(ResumeExecution(execution_id=execution_id, now=self.clock()))

    def check_input(self, definition: WorkflowDefinition, value: Any) -> None:
        """InputInvalid unless ``value`` is strict JSON and matches the input schema."""
        try:
            strict_json.check(value, "")
        except strict_json.StrictJSONError as exc:
            raise InputInvalid([Problem("input", f"not strict JSON: {exc}")]) from None
        if not definition.input_schema:
            return
        key = (definition.name, definition.version or 0)
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = input_validator(definition.input_schema)
        problems = input_problems(validator, value)
        if problems:
            raise InputInvalid(problems)

    async def state(
        self, execution_id: str, at_sequence: int | None = None, *, tenant: str = DEFAULT_TENANT
    ) -> ExecutionState:
        """The state folded from the log (after event ``at_sequence`` if given): never a stale cache,
        since other processes may own the execution. Starts from the nearest snapshot."""
        loaded = await snapshots.load(self.log, execution_id, at_sequence)
        if loaded is None or loaded.state.tenant != tenant:
            raise ExecutionNotFound(f"no execution {execution_id}")
        return loaded.state

    async def summary(self, execution_id: str, *, tenant: str = DEFAULT_TENANT) -> ExecutionSummary:
        """The index row of an execution of ``tenant``; ExecutionNotFound for any other."""
        summary = await self.log.summary(execution_id)
        if summary is None or summary.tenant != tenant:
            raise ExecutionNotFound(f"no execution {execution_id}")
        return summary

    async def history(
        self,
        execution_id: str,
        after_sequence: int = 0,
        limit: int | None = None,
        types: set[str] | None = None,
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> list[Envelope]:
        """Events after ``after_sequence``; with ``types``, only those (``limit`` counts matches)."""
        await self.summary(execution_id, tenant=tenant)
        if not types:
            return await self.log.read(execution_id, after_sequence, limit)
        found: list[Envelope] = []
        async for chunk in pager.pages(self.log, execution_id, after_sequence):
            found += [e for e in chunk if e.type in types]
            if limit is not None and len(found) >= limit:
                break
        return found if limit is None else found[:limit]

    async def timeline(
        self, execution_id: str, after: int = 0, limit: int | None = None, *, tenant: str = DEFAULT_TENANT
    ) -> Timeline:
        """The readable timeline (``orchestrator.history.timeline``) of the ``limit`` events after
        ``after`` (default: all), offsets counted from the first event; ``next_after`` is set when
        more follow. The status is the execution's, whichever page this is."""
        summary = await self.summary(execution_id, tenant=tenant)
        events = await self.log.read(execution_id, after, None if limit is None else limit + 1)
        more = limit is not None and len(events) > limit
        events = events[:limit] if more else events
        first = events[:1] if after == 0 else await self.log.read(execution_id, 0, 1)
        built = build_timeline(events, origin=moment_of(first[0]) if first else None)
        if built.status == "running":  # no terminal event on this page: the index knows
            built.status = summary.status
        built.next_after = events[-1].sequence if more else None
        return built

    async def list_executions(self, query: ExecutionQuery, *, tenant: str = DEFAULT_TENANT) -> ExecutionPage:
        """One page of ``tenant``'s executions (``query.tenant`` is replaced by it)."""
        return await self.log.list_executions(dataclasses.replace(query, tenant=tenant))

    async def diff_executions(self, a: str, b: str, *, tenant: str = DEFAULT_TENANT) -> ExecutionDiff:
        """Compare two executions' histories (the first ``MAX_DIFF_EVENTS`` events of each) and
        current states (``orchestrator.history.diff``); the answer says what it leaves out."""
        totals = [(await self.summary(execution_id, tenant=tenant)).last_sequence for execution_id in (a, b)]
        compared = [await pager.read_all(self.log, one, upto=MAX_DIFF_EVENTS) for one in (a, b)]
        states = (await self.state(a, tenant=tenant), await self.state(b, tenant=tenant))
        lengths = (max(totals[0], len(compared[0])), max(totals[1], len(compared[1])))
        return diff_executions(a, compared[0], b, compared[1], totals=lengths, states=states)

    async def wait(
        self, execution_id: str, timeout: float | None = None, *, tenant: str = DEFAULT_TENANT
    ) -> ExecutionState:
        """The terminal state; waits through a backend outage until ``timeout``."""
        with contextlib.suppress(BackendUnavailable):
            await self.summary(execution_id, tenant=tenant)  # ExecutionNotFound for an unknown id
        final = await self.effects.wait_finished(execution_id, timeout)
        if final.tenant != tenant:  # not checked above during an outage
            raise ExecutionNotFound(f"no execution {execution_id}")
        return final

    async def cancel(
        self,
        execution_id: str,
        reason: str = "",
        actor: str | None = None,
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> ExecutionState:
        await self.summary(execution_id, tenant=tenant)
        await self.engine.handle(
            CancelExecution(
                execution_id=execution_id, now=self.clock(), actor=actor or LIBRARY_ACTOR, reason=reason
            ),
            effects_may_fail=True,
            tenant=tenant,
        )
        return await self.state(execution_id, tenant=tenant)

    async def signal(
        self,
        execution_id: str,
        name: str,
        payload: Any = None,
        actor: str | None = None,
        *,
        tenant: str = DEFAULT_TENANT,
        event_id: str | None = None,
        reason: str | None = None,
    ) -> ExecutionState:
        """Deliver an event to one execution; buffered if it is not waiting for it yet. With
        ``event_id`` (an idempotency key) it is delivered once, however often it is sent;
        ``reason`` (why an operator sends it) is recorded on the event.
        SignalBufferFull past ``MAX_BUFFERED_SIGNALS`` signals waiting. StrictJSONError for a
        payload that is not strict JSON."""
        strict_json.check(payload, "payload")
        await self.summary(execution_id, tenant=tenant)
        await self.engine.handle(
            DeliverEvent(
                execution_id=execution_id,
                now=self.clock(),
                actor=actor or LIBRARY_ACTOR,
                name=name,
                payload=payload,
                event_id=event_id,
                reason=reason,
            ),
            effects_may_fail=True,
            tenant=tenant,
        )
        return await self.state(execution_id, tenant=tenant)

    async def publish_event(
        self,
        name: str,
        correlation_key: str | None,
        payload: Any = None,
        actor: str | None = None,
        event_id: str | None = None,
        *,
        tenant: str = DEFAULT_TENANT,
        reason: str | None = None,
    ) -> list[str]:
        """Deliver an event to every execution of ``tenant`` waiting on (name, correlation key);
        their ids. Waiters of other tenants never see it.

        With ``event_id`` (a message's dedup key) an execution takes that event at most once,
        however often it is published. StrictJSONError for a payload that is not strict JSON."""
        strict_json.check(payload, "payload")
        delivered = []
        for execution_id in await self.waits.waiting((name, correlation_key)):
            waiter = await self.engine.load(execution_id)  # cached; a tenant never changes
            if waiter is None or waiter.tenant != tenant:
                continue
            committed = await self.engine.handle(
                DeliverEvent(
                    execution_id=execution_id,
                    now=self.clock(),
                    actor=actor or LIBRARY_ACTOR,
                    name=name,
                    payload=payload,
                    correlation_key=correlation_key,
                    event_id=event_id,
                    reason=reason,
                ),
                effects_may_fail=True,
                tenant=tenant,
            )
            if committed is not None:
                delivered.append(execution_id)
        return delivered

    # -- redrive (orchestrator/history/redrive.py) -----------------------------------------------

    async def redrive(
        self,
        execution_id: str,
        *,
        from_step: str | None = None,
        from_failure: bool = False,
        input: Any = redrives.KEEP,
        version: int | None = None,
        dedup_key: str | None = None,
        actor: str | None = None,
        tenant: str = DEFAULT_TENANT,
        reason: str | None = None,
    ) -> redrives.RedriveResult:
        """Re-run a finished execution as a new one, linked both ways; the original is untouched.

        From its input (no step), from ``from_step``, or from the step that failed it
        (``from_failure``): the steps that succeeded before that step was first entered are
        reused, not run. ``input`` replaces the original's input; ``version`` picks another
        definition version; a ``dedup_key`` makes a retried request start nothing new. The new
        execution keeps the original's tenant; ``actor`` is the redriving caller, ``reason`` (why)
        is recorded in its ExecutionStarted metadata.
        ExecutionNotFound, ExecutionRunning (409), RedriveInvalid, UnknownWorkflow, InputInvalid.
        """
        return await redrives.redrive(
            self,
            execution_id,
            from_step=from_step,
            from_failure=from_failure,
            input=input,
            version=version,
            dedup_key=dedup_key,
            actor=actor,
            tenant=tenant,
            metadata={"reason": reason} if reason else None,
        )

    async def redrive_many(
        self,
        query: ExecutionQuery,
        *,
        failing_step: str | None = None,
        from_failure: bool = False,
        from_step: str | None = None,
        dry_run: bool = True,
        rate_per_second: float = 10.0,
        limit: int = 100,
        batch_key: str | None = None,
        actor: str | None = None,
        tenant: str = DEFAULT_TENANT,
        scan_limit: int | None = None,
        reason: str | None = None,
    ) -> redrives.BulkRedriveResult:
        """Redrive every finished execution of ``tenant`` the query (and ``failing_step``: the
        step named by its ExecutionFailed) matches, paced to ``rate_per_second``; only lists them
        when ``dry_run``. The same request again (same ``batch_key``, derived from the filters
        when None) starts nothing new. ``scan_limit`` bounds how many executions are looked at.
        This waits for every redrive: ``redrive_job`` runs the same in the background."""
        return await redrives.redrive_many(
            self,
            dataclasses.replace(query, tenant=tenant),
            failing_step=failing_step,
            from_failure=from_failure,
            from_step=from_step,
            dry_run=dry_run,
            rate_per_second=rate_per_second,
            limit=limit,
            batch_key=batch_key,
            actor=actor,
            scan_limit=scan_limit,
            reason=reason,
        )

    def redrive_job(self, batch: redrives.Batch, *, tenant: str = DEFAULT_TENANT) -> tuple[Job, bool]:
        """Run a bulk redrive of ``tenant``'s executions as a background job (``self.jobs``):
        (job, True) at once; (the running job, False) while one with the same batch key runs.
        RedriveInvalid, JobsBusy."""
        batch = dataclasses.replace(batch, query=dataclasses.replace(batch.query, tenant=tenant))
        work = redrives.BulkRedriveJob(self, batch)
        return self.jobs.submit("redrive", tenant, batch.key, work)

    async def links(self, execution_id: str, *, tenant: str = DEFAULT_TENANT) -> list[Link]:
        """Links recorded under an execution (e.g. ``redrive_of``, ``redriven_as``), oldest first."""
        await self.summary(execution_id, tenant=tenant)
        return list(await self.log.links(execution_id) or [])


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
