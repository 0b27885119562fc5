"""Debounced starts (definition ``debounce: {key, period}``): which execution a start joins.

The first start for a key is recorded at once and its first step waits on a ``debounce`` timer
until the end of the quiet period. A later start with the same key, while that execution is still
quiet, is recorded on it instead (``StartDebounced``: the later input replaces the first, and the
timer moves to the later start's time plus the period); the caller is answered with that
execution's id. Which execution is quiet for a key is read from the wait index (a projection of
the states, on every backend). The machine decides: a start that arrives just after the timer
fired changes nothing there, and a new execution is started instead.

Two starts for a key that has no quiet execution, at the same moment in two processes, may both
start one (no lock across processes); each still runs once, with its own input.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from orchestrator.core.commands import Command, DebounceStart
from orchestrator.core.debounce import debounce_wait_key
from orchestrator.core.machine import CommandRejected
from orchestrator.limits.start_rate import key_value
from orchestrator.ports import UnknownExecution, WaitIndex
from schemas.definition import WorkflowDefinition
from schemas.schedule_times import parse_duration

Handle = Callable[[DebounceStart], Awaitable[bool]]  # True: the command changed the execution


def debounce_of(definition: WorkflowDefinition, value: Any, now: float) -> tuple[str, float] | None:
    """The start's debounce key value and the end of its quiet period; None without ``debounce``."""
    if definition.debounce is None:
        return None
    return key_value(definition.debounce.key, value), now + parse_duration(
        definition.debounce.period, "period"
    )


async def join(
    waits: WaitIndex,
    handle: Handle,
    definition: WorkflowDefinition,
    value: Any,
    *,
    tenant: str,
    actor: str,
    now: float,
) -> str | None:
    """The id of the quiet execution this start was recorded on; None: start a new one."""
    debounce = debounce_of(definition, value, now)
    if debounce is None:
        return None
    key, due = debounce
    for execution_id in await waits.waiting(debounce_wait_key(tenant, definition.name, key)):
        command = DebounceStart(execution_id=execution_id, now=now, actor=actor, input=value, due=due)
        if await handle(command):
            return execution_id
    return None


class Engine(Protocol):
    """What a join needs of the engine: apply a command for an execution of a tenant."""

    async def handle(
        self, command: Command, *, effects_may_fail: bool = False, tenant: str | None = None
    ) -> Any: ...


def handler(engine: Engine, tenant: str) -> Handle:
    """``handle`` for ``join``: True when the command was recorded; an execution gone or of another
    tenant is False (a new execution starts instead)."""

    async def handle(command: DebounceStart) -> bool:
        try:
            return await engine.handle(command, effects_may_fail=True, tenant=tenant) is not None
        except (CommandRejected, UnknownExecution):
            return False

    return handle
