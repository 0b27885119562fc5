"""The engine: load state, decide, append with the expected sequence, then notify observers.

The append is the commit point. Observers (dispatching tasks, arming timers, waking waiters)
run only after it, from the appended events, never before.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.commands import Command, StartExecution
from orchestrator.events import Event
from orchestrator.machine import CommandRejected, decide_and_evolve
from orchestrator.ports import ConcurrencyError, EventLog, Registry
from orchestrator.state import ExecutionState, fold
from schemas.envelope import Envelope
from schemas.graph import WorkflowGraph

log = logging.getLogger(__name__)
Clock = Callable[[], float]
IdFactory = Callable[[], str]


@dataclass(frozen=True, slots=True)
class Committed:
    """What one command changed; ``events`` are durable."""

    command: Command
    before: ExecutionState | None
    after: ExecutionState
    events: Sequence[Envelope]


Observer = Callable[[Committed], Awaitable[None]]


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Engine:
    """Drives the pure machine over the event log; serialises commands per execution."""

    def __init__(
        self,
        log: EventLog,
        registry: Registry,
        *,
        clock: Clock,
        new_id: IdFactory = lambda: str(uuid.uuid4()),
        source: str = "/orchestrator",
        cache_size: int = 10_000,
        max_conflict_retries: int = 5,
    ) -> None:
        self.log = log
        self.registry = registry
        self.clock = clock
        self._new_id = new_id
        self._source = source
        self._cache: OrderedDict[str, ExecutionState] = OrderedDict()
        self._cache_size = cache_size
        self._locks: dict[str, list[Any]] = {}  # execution id -> [lock, users]
        self._graphs: dict[tuple[str, int], WorkflowGraph] = {}
        self._retries = max_conflict_retries
        self.observers: list[Observer] = []

    async def graph(self, workflow: str, version: int) -> WorkflowGraph:
        key = (workflow, version)
        graph = self._graphs.get(key)
        if graph is None:
            graph = WorkflowGraph.build(await self.registry.get(workflow, version))
            self._graphs[key] = graph
        return graph

    async def load(self, execution_id: str) -> ExecutionState | None:
        """Current state: from the cache, else folded from the log."""
        state = self._cache.get(execution_id)
        if state is not None:
            self._cache.move_to_end(execution_id)
            return state
        state = fold(await self.log.read(execution_id))
        if state is not None:
            self._remember(state)
        return state

    def forget(self, execution_id: str) -> None:
        self._cache.pop(execution_id, None)

    async def handle(self, command: Command) -> Committed | None:
        """Apply one command. None when it changed nothing (a stale or duplicate answer)."""
        execution_id = command.execution_id
        entry = self._locks.get(execution_id)
        if entry is None:
            entry = self._locks[execution_id] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                committed = await self._handle_locked(command)
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[execution_id]
        if committed is not None:
            for observer in self.observers:
                await observer(committed)
        return committed

    async def handle_quietly(self, command: Command) -> None:
        """``handle`` for internal commands, where a rejection is an expected outcome."""
        try:
            await self.handle(command)
        except CommandRejected as exc:
            log.debug("command not applied: %s", exc)

    async def _handle_locked(self, command: Command) -> Committed | None:
        for _ in range(self._retries):
            before = await self.load(command.execution_id)
            if before is not None:
                graph = await self.graph(before.workflow, before.version)
            elif isinstance(command, StartExecution):
                graph = await self.graph(command.workflow, command.version)
            else:
                raise CommandRejected(f"execution {command.execution_id} does not exist")
            events, after = decide_and_evolve(graph, before, command)
            if not events or after is None:
                return None
            envelopes = self._stamp(before, after, command, events)
            try:
                await self.log.append(command.execution_id, before.sequence if before else 0, envelopes)
            except ConcurrencyError:
                self.forget(command.execution_id)  # another writer won: reload and decide again
                continue
            self._remember(after)
            return Committed(command, before, after, envelopes)
        raise ConcurrencyError(command.execution_id, -1)

    def _stamp(
        self,
        before: ExecutionState | None,
        after: ExecutionState,
        command: Command,
        events: list[Event],
    ) -> list[Envelope]:
        time = rfc3339(command.now)
        first = before.sequence + 1 if before else 1
        return [
            Envelope(
                id=self._new_id(),
                type=event.type,
                subject=after.execution_id,
                sequence=first + offset,
                time=time,
                workflow=after.workflow,
                workflowversion=after.version,
                data=event.data,
                tenant=after.tenant,
                source=self._source,
                actor=command.actor,
            )
            for offset, event in enumerate(events)
        ]

    def _remember(self, state: ExecutionState) -> None:
        if state.terminal:
            self._cache.pop(state.execution_id, None)
            return
        self._cache[state.execution_id] = state
        self._cache.move_to_end(state.execution_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
