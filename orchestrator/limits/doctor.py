"""The doctor: what is held for executions that no longer run, found and (with ``fix``) released.

Each check lists what a resource holds by execution (armed timers, wait index entries, queued step
tasks, parked commands); the doctor asks the event log for each execution's status and reports as
a leak whatever belongs to an execution that finished or does not exist. A check whose backend
cannot list (for instance the Kafka transport's tasks, which live in a topic) is left out. A new
kind of held resource (concurrency slots) is one more :class:`Check` in :func:`checks_for`.

Fixing is idempotent: a timer is cancelled, a wait entry removed, a queued task dropped. Parked
commands are reported only, since the dead-letter store is append-only; redriving one for a
finished execution is a no-op the machine ignores.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from orchestrator.instrumentation import Instruments
from orchestrator.ports import DeadLetters, EventLog, StepTask, WaitKey

log = logging.getLogger(__name__)
StatusOf = Callable[[str], Awaitable[str | None]]  # execution id -> status, None: no such execution
SCAN_LIMIT = 1000  # parked commands read at a time


@dataclass(frozen=True, slots=True)
class Held:
    """One thing a resource holds for an execution; ``detail`` names it within its kind."""

    execution_id: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Leak:
    kind: str  # slot, timer, wait, task, parked_command
    execution_id: str
    status: str  # the execution's status, or "missing"
    detail: dict[str, Any]
    fixed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "execution_id": self.execution_id,
            "status": self.status,
            "detail": self.detail,
            "fixed": self.fixed,
        }


class Check(Protocol):
    """One kind of held resource: list it, and release what leaked (``fixable`` False: report only)."""

    @property
    def kind(self) -> str: ...

    @property
    def fixable(self) -> bool: ...

    async def held(self) -> Sequence[Held]: ...

    async def release(self, leaks: Sequence[Held]) -> None: ...


@dataclass(frozen=True, slots=True)
class Report:
    checked: dict[str, int]  # kind -> items looked at
    leaks: list[Leak] = field(default_factory=list)
    fixed: bool = False

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = dict.fromkeys(self.checked, 0)
        for leak in self.leaks:
            counts[leak.kind] = counts.get(leak.kind, 0) + 1
        return {
            "checked": self.checked,
            "leaks": [leak.to_dict() for leak in self.leaks],
            "found": counts,
            "fixed": self.fixed,
        }


async def examine(checks: Sequence[Check], status_of: StatusOf, *, fix: bool = False) -> Report:
    """Run every check; with ``fix``, release what each fixable one found."""
    statuses: dict[str, str | None] = {}
    checked: dict[str, int] = {}
    leaks: list[Leak] = []
    for check in checks:
        held = await check.held()
        checked[check.kind] = len(held)
        leaked: list[tuple[Held, str]] = []
        for item in held:
            if item.execution_id not in statuses:
                statuses[item.execution_id] = await status_of(item.execution_id)
            status = statuses[item.execution_id]
            if status != "running":
                leaked.append((item, status or "missing"))
        released = fix and check.fixable and bool(leaked)
        if released:
            await check.release([item for item, _ in leaked])
        leaks += [Leak(check.kind, i.execution_id, status, i.detail, released) for i, status in leaked]
    return Report(checked, leaks, fix)


def log_status(log: EventLog) -> StatusOf:
    """The status of an execution from the event log's index."""

    async def status_of(execution_id: str) -> str | None:
        summary = await log.summary(execution_id)
        return None if summary is None else summary.status

    return status_of


# -- the checks over the ports ------------------------------------------------------------


@runtime_checkable
class ListsTimers(Protocol):
    async def armed(self) -> list[tuple[str, str, float]]: ...

    async def cancel(self, execution_id: str, timer_id: str) -> None: ...


@runtime_checkable
class ListsWaits(Protocol):
    async def entries(self) -> list[tuple[WaitKey, str]]: ...

    async def update(self, execution_id: str, removed: set[WaitKey], added: set[WaitKey]) -> None: ...


@runtime_checkable
class ListsTasks(Protocol):
    async def queued_tasks(self) -> list[StepTask]: ...

    async def drop_tasks(self, execution_ids: set[str]) -> int: ...


@runtime_checkable
class CountsSlots(Protocol):
    def holding(self) -> list[tuple[str, str, str]]: ...

    async def release_slots(self, execution_ids: set[str]) -> None: ...


@dataclass(frozen=True, slots=True)
class SlotCheck:
    """Concurrency slots the admission counts as held or waited for (docs/resources.md)."""

    slots: CountsSlots
    kind: str = "slot"
    fixable: bool = True

    async def held(self) -> list[Held]:
        return [Held(e, {"key": key, "role": role}) for e, key, role in self.slots.holding()]

    async def release(self, leaks: Sequence[Held]) -> None:
        await self.slots.release_slots({leak.execution_id for leak in leaks})


@dataclass(frozen=True, slots=True)
class TimerCheck:
    timers: ListsTimers
    kind: str = "timer"
    fixable: bool = True

    async def held(self) -> list[Held]:
        return [Held(e, {"timer_id": t, "due": due}) for e, t, due in await self.timers.armed()]

    async def release(self, leaks: Sequence[Held]) -> None:
        for leak in leaks:
            await self.timers.cancel(leak.execution_id, leak.detail["timer_id"])


@dataclass(frozen=True, slots=True)
class WaitCheck:
    waits: ListsWaits
    kind: str = "wait"
    fixable: bool = True

    async def held(self) -> list[Held]:
        found = await self.waits.entries()
        return [Held(e, {"event": key[0], "correlation_key": key[1]}) for key, e in found]

    async def release(self, leaks: Sequence[Held]) -> None:
        for leak in leaks:
            key = (leak.detail["event"], leak.detail["correlation_key"])
            await self.waits.update(leak.execution_id, {key}, set())


@dataclass(frozen=True, slots=True)
class TaskCheck:
    tasks: ListsTasks
    kind: str = "task"
    fixable: bool = True

    async def held(self) -> list[Held]:
        found = await self.tasks.queued_tasks()
        return [Held(t.execution_id, {"step": t.step, "attempt_id": t.attempt_id}) for t in found]

    async def release(self, leaks: Sequence[Held]) -> None:
        await self.tasks.drop_tasks({leak.execution_id for leak in leaks})


@dataclass(frozen=True, slots=True)
class ParkedCheck:
    dead_letters: DeadLetters
    kind: str = "parked_command"
    fixable: bool = False

    async def held(self) -> list[Held]:
        found: list[Held] = []
        cursor: str | None = None
        while True:
            page = await self.dead_letters.list(SCAN_LIMIT, cursor)
            found += [Held(d.execution_id, {"id": d.id, "command_type": d.command_type}) for d in page.items]
            cursor = page.next_cursor
            if cursor is None:
                return found

    async def release(self, leaks: Sequence[Held]) -> None:
        return None


def checks_for(
    timers: object, waits: object, transport: object, dead_letters: DeadLetters | None, admission: object = None
) -> list[Check]:
    """The checks the given backends support."""
    found: list[Check] = []
    if isinstance(admission, CountsSlots):
        found.append(SlotCheck(admission))
    if isinstance(timers, ListsTimers):
        found.append(TimerCheck(timers))
    if isinstance(waits, ListsWaits):
        found.append(WaitCheck(waits))
    if isinstance(transport, ListsTasks):
        found.append(TaskCheck(transport))
    if dead_letters is not None:
        found.append(ParkedCheck(dead_letters))
    return found


async def patrol(
    checks: Callable[[], Sequence[Check]],
    status_of: StatusOf,
    interval: float,
    found: Callable[[Report], None],
) -> None:
    """Examine every ``interval`` seconds until cancelled, reporting each result to ``found``
    (which logs it); never fixes. A failing pass is logged and tried again next time."""
    while True:
        await asyncio.sleep(interval)
        try:
            found(await examine(checks(), status_of))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("doctor: the leak check failed (will retry): %s", exc)


def count_report(instruments: Instruments, report: Report) -> None:
    """Each kind's leaks and releases of one pass, for ``orchestrator_doctor_leaks`` and
    ``orchestrator_doctor_fixed_total``."""
    for kind in report.checked:
        found = [leak for leak in report.leaks if leak.kind == kind]
        instruments.doctor_checked(kind, len(found), sum(leak.fixed for leak in found))
