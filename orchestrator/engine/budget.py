"""Events per execution: the engine's check of a decision against the tenant's history limit.

A history holds at most ``limit`` events, the last of which may be the failure this module
decides. A decision that would pass ``limit - 1``:

- from outside (a start, a signal or event): refused with the budget's exception, nothing written;
- a cancel: let through, since it ends the execution;
- the execution's own progress (a step's answer, a timer, a child's result): replaced by one
  ``ExecutionFailed`` with error type ``quota.events``, so the execution ends with a clear reason.
"""

from __future__ import annotations

from typing import Protocol

from orchestrator.core.commands import CancelExecution, Command, DeliverEvent, ErrorInfo, StartExecution
from orchestrator.core.events import Event
from orchestrator.core.machine import fail_execution
from orchestrator.core.state import ExecutionState

ERROR_TYPE = "quota.events"


class EventBudget(Protocol):
    """Where the limit comes from (``orchestrator.limits.quotas.Quotas`` is one)."""

    def event_limit(self, tenant: str) -> int | None: ...

    def refuse_events(self, tenant: str, limit: int, usage: int) -> Exception: ...


def over_budget(
    budget: EventBudget,
    command: Command,
    before: ExecutionState | None,
    events: list[Event],
    after: ExecutionState,
) -> tuple[list[Event], ExecutionState]:
    """``events``/``after`` when within the limit; otherwise the refusal or the failure above."""
    limit = budget.event_limit(after.tenant)
    if limit is None or after.sequence < limit or isinstance(command, CancelExecution):
        return events, after
    if before is None or isinstance(command, (StartExecution, DeliverEvent)):
        raise budget.refuse_events(after.tenant, limit, after.sequence)
    message = f"the execution reached its events_per_execution quota ({limit} events)"
    return fail_execution(before, ErrorInfo(ERROR_TYPE, message, retryable=False))
