"""The admission: grants concurrency slots by sending commands, never by writing state itself.

An execution under limits records ``ExecutionQueued`` and waits. The admission follows commits
(an engine observer), keeps a ``SlotTable`` of who holds and waits for each key, and sends
``AdmitExecution`` (or ``RefuseAdmission``, or a cancel) as ``on_limit`` says. The machine
records the grant (``ExecutionAdmitted``) with the log's conditional append, so a grant happens
once whatever is sent twice, and slots are given back by recorded events (``SlotsReleased``, the
end of the execution). The table is derived: ``rebuild`` folds it again from the log's running
executions after a restart, and a grant decided but never recorded is simply decided again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from orchestrator.core.commands import AdmitExecution, CancelExecution, Command, RefuseAdmission
from orchestrator.core.state import ExecutionState
from orchestrator.engine.engine import Committed
from orchestrator.engine.slot_table import Action, SlotTable
from orchestrator.history import pager
from orchestrator.ports import EventLog, ExecutionQuery

log = logging.getLogger(__name__)
ADMISSION_ACTOR = "admission"  # the actor of the grants, refusals and cancels it sends
Submit = Callable[[Command], Awaitable[None]]
Load = Callable[[str], Awaitable[ExecutionState | None]]


class Admission(Protocol):
    """The port: what the runtime and the API ask of whoever admits executions."""

    async def on_committed(self, committed: Committed) -> None: ...

    async def rebuild(self, *, act: bool = True) -> int: ...

    def position(self, execution_id: str) -> int | None: ...

    async def limits(self, tenant: str) -> list[dict[str, Any]]: ...


class Current(Protocol):
    @property
    def current(self) -> bool: ...


class LocalAdmission:
    """Admission in this process, over the commits this process makes (embedded mode, and in
    Kafka mode the commits of the executions this worker owns; see docs/resources.md)."""

    def __init__(
        self, submit: Submit, load: Load, log_: EventLog, clock: Callable[[], float], durable: bool = False
    ) -> None:
        self.submit = submit
        self.load = load
        self.log = log_
        self.clock = clock
        self.table = SlotTable()
        self.settles_on_submit = not durable  # in-process: a submitted command is applied when it returns
        self.unsent = False  # an action could not be sent: decide again at the next chance
        self.feed: Current | None = None  # Kafka mode: the feed projection that runs it (admission_feed)
        self.epoch: int | None = None  # Kafka mode: the admitter epoch its grants carry (admission_epoch)

    async def on_committed(self, committed: Committed) -> None:
        if not committed.after.slots:
            return
        state = await self.load(committed.after.execution_id)  # a retried observer: the state now
        changed = state is not None and self.table.sync(state, self.clock())
        if changed or self.unsent:  # nothing changed: the table decided all it could already
            await self.act()

    async def rebuild(self, *, act: bool = True) -> int:
        """Fold the table again from every running execution in the log (then grant, unless
        ``act`` is false); returns how many hold or wait for slots."""
        folded = await self._folded(ExecutionQuery(status="running"))
        folded.carry(self.table, self.clock())
        self.table = folded
        if act:
            await self.act()
        return len(self.table.waiting) + len({e for info in self.table.keys.values() for e in info.holders})

    async def _folded(self, query: ExecutionQuery) -> SlotTable:
        """A table of the executions ``query`` lists, taken in the order they queued."""
        states = []
        async for summary in pager.executions(self.log, query):
            state = await self.load(summary.execution_id)
            if state is not None and state.slots and not state.terminal:
                states.append(state)
        table = SlotTable()
        for state in sorted(states, key=lambda s: (s.queued_at or 0.0, s.execution_id)):
            table.sync(state, self.clock())
        return table

    async def act(self) -> None:
        """Send what the table decides; an action whose command fails is undone and raised
        (the engine's retry of this observer decides again)."""
        self.unsent = False
        for action in self.table.decide(self.clock()):
            try:
                await self.submit(self.command(action))
            except Exception:
                self.table.undo(action)
                self.unsent = True
                raise
            if self.settles_on_submit and action.kind == "admit":
                await self._check_granted(action.execution_id)

    async def _check_granted(self, execution_id: str) -> None:
        """An admit applied in-process that left the execution waiting was not taken (say, it
        was parked as a poison command): free the slot it was counted in."""
        state = await self.load(execution_id)
        if state is None or state.terminal:
            self.table.forget(execution_id)
        elif execution_id in self.table.pending:
            log.warning("execution %s: the grant of its slots was not applied", execution_id)
            self.table.undo(Action("admit", execution_id))

    def command(self, action: Action) -> Command:
        base: dict[str, Any] = {"execution_id": action.execution_id, "now": self.clock(), "actor": ADMISSION_ACTOR}
        if action.kind == "admit":
            return AdmitExecution(**base, ticket=self.table.ticket(action.execution_id), epoch=self.epoch)
        if action.kind == "refuse":
            return RefuseAdmission(**base, reason=action.reason)
        return CancelExecution(**base, reason=action.reason)

    def position(self, execution_id: str) -> int | None:
        return self.table.position(execution_id)

    def holding(self) -> list[tuple[str, str, str]]:
        """(execution id, key, ``held`` or ``queued``) of every slot counted here, for the doctor."""
        table = self.table
        found = [(e, key, "held") for key, info in table.keys.items() for e in info.holders]
        return found + [(e, key, "queued") for e, waiter in table.waiting.items() for key in waiter.keys]

    async def release_slots(self, execution_ids: set[str]) -> None:
        """Stop counting these executions (the doctor found them finished), then grant again."""
        for execution_id in execution_ids:
            self.table.forget(execution_id)
        await self.act()

    async def limits(self, tenant: str) -> list[dict[str, Any]]:
        """The keys the tenant's executions hold or wait for (and the global ones). A process
        that does not admit (Kafka mode, not the owner of shard 0) folds them from the log."""
        table = self.table
        if self.feed is not None and not self.feed.current:
            table = await self._folded(ExecutionQuery(status="running"))
        return table.view(self.clock(), tenant)
