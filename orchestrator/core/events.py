"""Domain events: what the machine decided. The engine stamps them into envelopes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

EXECUTION_STARTED: Final = "ExecutionStarted"
STEP_SCHEDULED: Final = "StepScheduled"
STEP_SUCCEEDED: Final = "StepSucceeded"
STEP_FAILED: Final = "StepFailed"
TIMER_SCHEDULED: Final = "TimerScheduled"
TIMER_FIRED: Final = "TimerFired"
CHOICE_MADE: Final = "ChoiceMade"
PARALLEL_STARTED: Final = "ParallelStarted"
BRANCH_COMPLETED: Final = "BranchCompleted"
EVENT_AWAITED: Final = "EventAwaited"
EVENT_RECEIVED: Final = "EventReceived"
SIGNAL_RECEIVED: Final = "SignalReceived"
CHILD_STARTED: Final = "ChildStarted"
EXECUTION_QUEUED: Final = "ExecutionQueued"  # waits for concurrency slots (docs/resources.md)
EXECUTION_ADMITTED: Final = "ExecutionAdmitted"  # was granted the slots it waited for
SLOTS_RELEASED: Final = "SlotsReleased"  # gave slots back while it only waits
START_DEBOUNCED: Final = "StartDebounced"  # a later start with the same debounce key took its place
EXECUTION_SUCCEEDED: Final = "ExecutionSucceeded"
EXECUTION_FAILED: Final = "ExecutionFailed"
EXECUTION_CANCELLED: Final = "ExecutionCancelled"

TERMINAL_TYPES: Final = frozenset({EXECUTION_SUCCEEDED, EXECUTION_FAILED, EXECUTION_CANCELLED})
ALL_TYPES: Final = frozenset(
    {
        EXECUTION_STARTED,
        STEP_SCHEDULED,
        STEP_SUCCEEDED,
        STEP_FAILED,
        TIMER_SCHEDULED,
        TIMER_FIRED,
        CHOICE_MADE,
        PARALLEL_STARTED,
        BRANCH_COMPLETED,
        EVENT_AWAITED,
        EVENT_RECEIVED,
        SIGNAL_RECEIVED,
        CHILD_STARTED,
        EXECUTION_QUEUED,
        EXECUTION_ADMITTED,
        SLOTS_RELEASED,
        START_DEBOUNCED,
        *TERMINAL_TYPES,
    }
)
STATUS_BY_TERMINAL_TYPE: Final = {
    EXECUTION_SUCCEEDED: "succeeded",
    EXECUTION_FAILED: "failed",
    EXECUTION_CANCELLED: "cancelled",
}


class EventLike(Protocol):
    """Anything with a type and a data payload: a domain Event or a stored Envelope (which also
    has an ``actor``, read by ``evolve`` for the start)."""

    @property
    def type(self) -> str: ...

    @property
    def data(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict[str, Any]
