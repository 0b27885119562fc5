"""The engine: load state, decide, append with the expected sequence, then notify observers.

The append is the commit point. Observers (dispatching tasks, arming timers, waking waiters)
run only after it, from the appended events, never before.

With ``redo`` set (embedded mode), nothing after the commit reaches the caller: a failing
observer is retried in the background, and an append whose outcome is unknown (it raised, but
may have landed) forgets the cached state and queues a check of the log: if the events landed,
the observers get the commit after all. Without it (Kafka), both raise, and the redelivered
command re-derives the effects; except for a caller that says ``effects_may_fail`` (the API and
the triggers, through the runtime): once the append returned it gets its success answer, a
failing observer is logged, and the recovery sweep of the execution's owner re-derives the lost
effects (``orchestrator.engine.recovery``).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from orchestrator.core.commands import Command, ResumeExecution, StartExecution
from orchestrator.core.events import Event
from orchestrator.core.machine import CommandRejected, ExecutionExists, decide_and_evolve
from orchestrator.core.state import ExecutionState
from orchestrator.core.timefmt import rfc3339
from orchestrator.engine import snapshots
from orchestrator.engine.budget import EventBudget, over_budget
from orchestrator.engine.keyed_locks import KeyedLocks
from orchestrator.engine.retrying import Redo
from orchestrator.instrumentation import AppendOutcome, CommandOutcome, Instruments, guarded
from orchestrator.logcontext import bound
from orchestrator.ports import ConcurrencyError, EventLog, Registry, Snapshot, UnknownExecution
from schemas.definition import WorkflowDefinition
from schemas.envelope import Envelope, EnvelopeError
from schemas.graph import WorkflowGraph

log = logging.getLogger(__name__)
Clock = Callable[[], float]
IdFactory = Callable[[], str]
UNREADY_AFTER_FAILED_APPENDS = 3  # consecutive failed appends that make ``problem`` report
FAILING_FOR_SECONDS = 30.0  # ... as long as the last of them is at most this old


@dataclass(frozen=True, slots=True)
class Committed:
    """What one command changed; ``events`` are durable.

    With no events, the command was a redelivery of the last applied one (or a resume request):
    observers re-derive the effects from ``after``, since the first delivery may have died
    between the append and its effects.
    """

    command: Command
    before: ExecutionState | None
    after: ExecutionState
    events: Sequence[Envelope]


@dataclass(slots=True)
class _Cached:
    state: ExecutionState
    last_command_id: str | None
    chainhash: str  # the last event's, which the next event chains from
    started_at: float | None = None  # when the execution started, if known (instrumentation)


Observer = Callable[[Committed], Awaitable[None]]
Fence = Callable[[Command], Awaitable[str | None]]  # why a command may not be applied, or None


class UnencodableEvents(CommandRejected):
    """The command's events hold a value that is not strict JSON (NaN, infinity, ...): nothing
    was stored. The machine turns such step outputs into failures; this is the last guard."""


class Engine:
    """Drives the pure machine over the event log; serialises commands per execution."""

    def __init__(
        self,
        log: EventLog,
        registry: Registry,
        *,
        clock: Clock,
        new_id: IdFactory | None = None,
        source: str = "/orchestrator",
        cache_size: int = 10_000,
        max_conflict_retries: int = 5,
        snapshot_every: int = 1000,
        instruments: Instruments | None = None,
    ) -> None:
        self.log = log
        self.registry = registry
        self.clock = clock
        self._new_id = new_id
        self._source = source
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_size = cache_size
        self._locks = KeyedLocks()  # commands of one execution one at a time
        self._graphs: dict[tuple[str, int], WorkflowGraph] = {}
        self._retries = max_conflict_retries
        self.snapshot_every = snapshot_every
        self.observers: list[Observer] = []
        self.instruments = guarded(instruments)
        self._backend = type(log).__name__  # the append's label
        self.redo: Redo | None = None  # set by the runtime in embedded mode (see the module docstring)
        self.node: str | None = None  # recorded on every event as its ``node`` (set by the runtime)
        self.event_budget: EventBudget | None = None  # events per execution (set by the runtime)
        self.fence: Fence | None = None  # refuses stale admission grants (Kafka mode, set by the runtime)
        self._failed_appends = 0
        self._last_failed_append = -math.inf  # time.monotonic()

    async def graph(self, workflow: str, version: int) -> WorkflowGraph:
        key = (workflow, version)
        graph = self._graphs.get(key)
        if graph is None:
            graph = WorkflowGraph.build(await self.registry.get(workflow, version))
            self._graphs[key] = graph
        return graph

    async def definition(self, workflow: str, version: int) -> WorkflowDefinition:
        """One version's definition (immutable, so cached with its graph)."""
        return (await self.graph(workflow, version)).definition

    async def load(self, execution_id: str) -> ExecutionState | None:
        """Current state: from the cache, else folded from the log."""
        cached = await self._load(execution_id)
        return cached.state if cached is not None else None

    async def _load(self, execution_id: str) -> _Cached | None:
        cached = self._cache.get(execution_id)
        if cached is not None:
            self._cache.move_to_end(execution_id)
            return cached
        loaded = await snapshots.load(self.log, execution_id)
        if loaded is None:
            return None
        started_at = loaded.started_at
        if started_at is None and not loaded.state.terminal:  # from a snapshot: one more point read
            first = await self.log.read(execution_id, 0, 1)
            started_at = snapshots.time_of(first[0].time) if first else None
        cached = _Cached(loaded.state, loaded.last_command_id, loaded.chainhash, started_at)
        self._remember(cached)
        return cached

    def forget(self, execution_id: str) -> None:
        self._cache.pop(execution_id, None)

    def cached_terminal(self, execution_id: str) -> ExecutionState | None:
        """The cached state when it is terminal (nothing follows a terminal event), else None."""
        cached = self._cache.get(execution_id)
        return cached.state if cached is not None and cached.state.terminal else None

    async def handle(
        self, command: Command, *, effects_may_fail: bool = False, tenant: str | None = None
    ) -> Committed | None:
        """Apply one command. None when it changed nothing (a stale or duplicate answer).

        ``effects_may_fail``: the caller is answered from the commit alone; an observer failing
        after it is logged instead of raised (see the module docstring). ``tenant``: the tenant
        the caller works in (an API request's); a command for an execution of another tenant
        is UnknownExecution, checked here where the command is accepted, whatever the caller
        checked before."""
        began = time.perf_counter()
        outcome: CommandOutcome = "error"
        with bound(execution_id=command.execution_id):  # log lines name the execution
            try:
                async with self._locks.hold(command.execution_id):
                    committed, outcome = await self._handle_locked(command, tenant)
                if committed is not None:
                    await self._notify(committed, tolerate=effects_may_fail)
            except ExecutionExists:
                outcome = "duplicate"
                raise
            except CommandRejected:
                outcome = "rejected"
                raise
            except ConcurrencyError:
                outcome = "conflict"
                raise
            finally:
                self.instruments.command_handled(type(command).__name__, outcome, time.perf_counter() - began)
        return committed

    async def _notify(self, committed: Committed, *, tolerate: bool = False) -> None:
        """Run the observers in order; see the module docstring for a failing one."""
        for observer in self.observers:
            if self.redo is None and not tolerate:
                await observer(committed)
                continue
            if self.redo is None:
                try:
                    await observer(committed)
                except Exception as exc:
                    log.warning(
                        "execution %s: an effect of the commit at %d failed (%s: %s); the recovery "
                        "sweep resumes it",
                        committed.after.execution_id,
                        committed.after.sequence,
                        type(exc).__name__,
                        exc,
                    )
                continue
            try:
                await observer(committed)
            except Exception as exc:
                after = committed.after
                name = getattr(observer, "__qualname__", type(observer).__name__)
                what = f"observer {name} of {after.execution_id} at {after.sequence}"
                key = ("observer", id(observer), after.execution_id, after.sequence, bool(committed.events))
                self.redo.add(key, functools.partial(observer, committed), what, exc)

    def _outcome_unknown(self, attempted: Committed, error: Exception) -> None:
        """An append raised: its events may have landed, with nobody told. Check later."""
        execution_id = attempted.after.execution_id
        self.forget(execution_id)
        if self.redo is not None:
            what = f"the check of {execution_id}'s append at {attempted.after.sequence} (outcome unknown)"
            # retries decide anew (another time, other bytes): each attempt is checked on its own
            key = ("unknown", execution_id, attempted.after.sequence, attempted.events[-1].chainhash)
            self.redo.add(key, functools.partial(self._settle, attempted), what, error)

    async def _settle(self, attempted: Committed) -> None:
        """Notify the observers of ``attempted`` if its events are in the log after all."""
        execution_id, first = attempted.after.execution_id, attempted.events[0].sequence
        async with self._locks.hold(execution_id):
            found = await self.log.read(execution_id, first - 1, len(attempted.events))
        if [e.to_bytes() for e in found] == [e.to_bytes() for e in attempted.events]:
            log.info("execution %s: an append reported as failed had landed", execution_id)
            await self._notify(attempted)

    @property
    def failed_appends(self) -> int:
        """Appends that failed in a row (conflicts excluded); 0 after one succeeds."""
        return self._failed_appends

    def problem(self) -> str | None:
        """Why the engine cannot commit (the last appends failed, lately), or None."""
        lately = time.monotonic() - self._last_failed_append < FAILING_FOR_SECONDS
        if self._failed_appends >= UNREADY_AFTER_FAILED_APPENDS and lately:
            return f"the last {self._failed_appends} appends to the event log failed"
        return None

    async def handle_quietly(self, command: Command) -> None:
        """``handle`` for internal commands, where a rejection is an expected outcome."""
        try:
            await self.handle(command)
        except CommandRejected as exc:
            log.debug("command not applied: %s", exc)

    async def _handle_locked(self, command: Command, tenant: str | None = None) -> tuple[Committed | None, CommandOutcome]:
        conflicts = 0
        if self.fence is not None and (refusal := await self.fence(command)) is not None:
            raise CommandRejected(refusal)  # checked under the execution's lock, just before deciding
        if isinstance(command, ResumeExecution):
            self.forget(command.execution_id)  # another process may have appended: resume the log's state
        for attempt in range(self._retries):
            from_cache = command.execution_id in self._cache  # may be behind another process
            if isinstance(command, StartExecution) and attempt == 0 and not from_cache:
                cached = None  # a start appends at sequence 0 blind: the log rejects a duplicate
            else:
                cached = await self._load(command.execution_id)
            before = cached.state if cached is not None else None
            if tenant is not None and before is not None and before.tenant != tenant:
                raise UnknownExecution(f"no execution {command.execution_id}")
            if cached is not None and (
                isinstance(command, ResumeExecution)
                or (command.command_id is not None and command.command_id == cached.last_command_id)
            ):  # a resume request, or a redelivery of the last applied command
                replay = Committed(command, cached.state, cached.state, ())
                return replay, "applied" if isinstance(command, ResumeExecution) else "duplicate"
            if before is not None:
                graph = await self.graph(before.workflow, before.version)
            elif isinstance(command, StartExecution):
                graph = await self.graph(command.workflow, command.version)
            else:
                raise CommandRejected(f"execution {command.execution_id} does not exist")
            events, after = decide_and_evolve(graph, before, command)
            if self.event_budget is not None and after is not None and events:
                events, after = over_budget(self.event_budget, command, before, events, after)
            if before is None and after is not None:  # as folding the stamped start would give
                after = replace(after, started_by=command.actor)
            if not events or after is None:
                if from_cache:  # stale to a cached state may be fresh news to the log's: look
                    self.forget(command.execution_id)
                    continue
                return None, "stale"
            try:
                envelopes = self._stamp(before, after, command, events, cached.chainhash if cached else "")
            except EnvelopeError as exc:  # never store what other JSON parsers would reject
                raise UnencodableEvents(f"{type(command).__name__} not applied: {exc}") from None
            before_sequence = before.sequence if before else 0
            try:
                await self._append(command.execution_id, before_sequence, envelopes)
            except ConcurrencyError:
                self.forget(command.execution_id)  # another writer won: reload and decide again
                conflicts += 1
                continue
            except Exception as exc:
                self._outcome_unknown(Committed(command, before, after, envelopes), exc)
                raise
            chain = envelopes[-1].chainhash or ""
            started_at = cached.started_at if cached is not None else command.now
            self._remember(_Cached(after, command.command_id, chain, started_at))
            self._report_lifecycle(before, after, command.now, started_at)
            if snapshots.due(before_sequence, after.sequence, self.snapshot_every):
                await self._snapshot(after, command.command_id, chain)
            outcome: CommandOutcome = "conflict_retried" if conflicts else "applied"
            return Committed(command, before, after, envelopes), outcome
        raise ConcurrencyError(command.execution_id, -1)

    def _report_lifecycle(
        self, before: ExecutionState | None, after: ExecutionState, now: float, started_at: float | None
    ) -> None:
        """Tell the instruments about a commit that started or ended an execution."""
        if before is None:
            self.instruments.execution_started(after.workflow)
        if after.terminal and (before is None or not before.terminal):
            seconds = None if started_at is None else max(now - started_at, 0.0)
            self.instruments.execution_finished(after.workflow, after.status, seconds)
            self.instruments.execution_traced(
                after.execution_id, after.workflow, after.tenant, after.traceparent, after.status, started_at, now
            )

    async def _append(self, execution_id: str, expected: int, envelopes: list[Envelope]) -> None:
        """``log.append``, timed and reported with its outcome."""
        began = time.perf_counter()
        outcome: AppendOutcome = "error"
        try:
            await self.log.append(execution_id, expected, envelopes)
            outcome = "ok"
            self._failed_appends = 0
        except ConcurrencyError:
            outcome = "conflict"
            raise
        except Exception:
            self._failed_appends += 1
            self._last_failed_append = time.monotonic()
            raise
        finally:
            seconds = time.perf_counter() - began
            self.instruments.events_appended(self._backend, outcome, len(envelopes), seconds)

    def _stamp(
        self,
        before: ExecutionState | None,
        after: ExecutionState,
        command: Command,
        events: list[Event],
        chain: str,
    ) -> list[Envelope]:
        """Envelopes for the decided events, each chained to the one before (see ``chain_hash``)
        and encoded once (``Envelope.sealed``)."""
        time = rfc3339(command.now)
        first = before.sequence + 1 if before else 1
        new_id = self._new_id
        stamped = []
        for offset, event in enumerate(events):
            sequence = first + offset
            envelope = Envelope.sealed(
                chain,
                id=new_id() if new_id else f"{after.execution_id}/{sequence}",
                type=event.type,
                subject=after.execution_id,
                sequence=sequence,
                time=time,
                workflow=after.workflow,
                workflowversion=after.version,
                data=event.data,
                tenant=after.tenant,
                source=self._source,
                actor=command.actor,
                causationid=command.command_id,
                node=self.node,
            )
            chain = envelope.chainhash or ""
            stamped.append(envelope)
        return stamped

    async def _snapshot(self, state: ExecutionState, command_id: str | None, chain: str) -> None:
        """Save a snapshot; a failure only costs a longer fold later, so it is logged, not raised."""
        try:
            body = snapshots.encode(state, command_id, chain)
            await self.log.save_snapshot(Snapshot(state.execution_id, state.sequence, body, state.tenant))
        except Exception as exc:
            log.warning("execution %s: snapshot at %d not saved: %s", state.execution_id, state.sequence, exc)

    def _remember(self, cached: _Cached) -> None:
        execution_id = cached.state.execution_id
        self._cache[execution_id] = cached
        self._cache.move_to_end(execution_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
