"""The process's schedules: the store of their states, the sources' factory, and management
(list, describe with the next fire times, pause and unpause with a note, trigger now, backfill).

One ``Schedules`` per process opens the ``ScheduleStates`` of the event log's database
(``ORCHESTRATOR_EVENT_LOG_URL``: memory, SQLite or Cassandra) and hands it to every
:class:`~triggers.schedule_source.ScheduleSource` the trigger manager builds through
:meth:`Schedules.source`. Management calls change the same state under the same fence, so a
pause in one process holds in every process at the next fire. Docs: docs/schedules.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.backends.urls import SCHEDULE_STATES, open_backend
from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import ScheduleStates, UnknownTrigger
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.definition import ScheduleTrigger
from schemas.schedule_times import rfc3339_ms
from triggers.schedule_fires import Schedule, carry_out
from triggers.schedule_policy import Overlap, copy_state, decide_overlap, skip
from triggers.schedule_source import FireObserver, Runner, ScheduleSource
from triggers.sources import SourceSpec

MAX_BACKFILL = 1000  # fire times one backfill request may start
MAX_UPCOMING = 100
MAX_NOTE = 1000


class ScheduleRequestError(ValueError):
    """A management request that cannot be done as asked; ``code`` names why (HTTP 400)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Backfill:
    """What a backfill found (``dry_run``) or did: fire times in the range, and per outcome."""

    fire_times: int
    first: str | None
    last: str | None
    started: int = 0
    existing: int = 0
    failed: int = 0
    dry_run: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "fire_times": self.fire_times,
            "first": self.first,
            "last": self.last,
            "started": self.started,
            "existing": self.existing,
            "failed": self.failed,
            "dry_run": self.dry_run,
        }


class Schedules(Lifecycle):
    """``async with Schedules(runtime, settings):`` then ``source`` is the ``schedule`` factory."""

    def __init__(
        self,
        runtime: Runtime,
        settings: Settings | None = None,
        *,
        states: ScheduleStates | None = None,
        observer: FireObserver | None = None,
    ) -> None:
        self.runtime = runtime
        settings = settings or runtime.settings
        self.states: ScheduleStates = states or open_backend(
            SCHEDULE_STATES, settings.event_log_url, "schedule states"
        )
        self.observer = observer

    async def start(self) -> None:
        await self.states.start()

    async def stop(self) -> None:
        await self.states.stop()

    def source(self, spec: SourceSpec) -> ScheduleSource:
        """The trigger manager's factory for ``schedule`` triggers."""
        return ScheduleSource(spec, self.states, self.observer)

    # -- reading -------------------------------------------------------------------------------

    async def find(self, workflow: str, name: str, tenant: str) -> Schedule:
        """The schedule trigger of the workflow's latest version; UnknownWorkflow, UnknownTrigger."""
        definition = await self.runtime.registry.get(workflow)
        for trigger in definition.triggers:
            if trigger.name == name and isinstance(trigger, ScheduleTrigger) and trigger.tenant == tenant:
                return Schedule(workflow, trigger)
        raise UnknownTrigger(f"workflow {workflow!r} v{definition.version} has no schedule named {name!r}")

    async def list(self, tenant: str) -> list[dict[str, Any]]:
        """Every schedule trigger of every workflow's latest version in ``tenant``, with its state."""
        overrides = await self.runtime.registry.trigger_states()
        found = [
            Schedule(definition.name, trigger)
            for definition in await self.runtime.registry.list()
            for trigger in definition.triggers
            if isinstance(trigger, ScheduleTrigger) and trigger.tenant == tenant
        ]
        return [await self._view(schedule, 1, overrides) for schedule in found]

    async def describe(self, workflow: str, name: str, tenant: str, count: int = 5) -> dict[str, Any]:
        """One schedule: its spec, state, recent skips and the next ``count`` fire times."""
        schedule = await self.find(workflow, name, tenant)
        return await self._view(schedule, min(max(count, 0), MAX_UPCOMING), await self.runtime.registry.trigger_states())

    async def _view(self, schedule: Schedule, count: int, overrides: dict[tuple[str, str], bool]) -> dict[str, Any]:
        trigger = schedule.trigger
        record = await self.states.load(schedule.key)
        state = record.body
        times = schedule.times()
        now = self.runtime.clock()
        after = max(now, float(state.get("cursor") or now))
        upcoming = times.upcoming(after, count)
        last = state.get("last")
        override = overrides.get((schedule.workflow, trigger.name))
        return {
            "workflow": schedule.workflow,
            "name": trigger.name,
            "tenant": trigger.tenant,
            "spec": trigger.model_dump(mode="json", exclude={"type", "name", "tenant", "enabled"}),
            "enabled": trigger.enabled if override is None else override,
            "paused": bool(state.get("paused")),
            "note": state.get("note", ""),
            "paused_by": state.get("paused_by"),
            "paused_at": _time(state.get("paused_at")),
            "decided_until": _time(state.get("cursor")),
            "last": None if not last else {"scheduled_time": _time(last["time"]), "execution_id": last["execution_id"]},
            "buffered": _time((state.get("buffered") or {}).get("time")),
            "pending": len(state.get("pending") or []),
            "counts": state.get("counts", {"started": 0, "skipped": 0, "failed": 0}),
            "recent_skips": [
                {**entry, "time": _time(entry["time"])} for entry in reversed(state.get("skips") or [])
            ],
            "next": [{"scheduled_time": rfc3339_ms(t), "local": times.local(t)} for t in upcoming],
        }

    # -- changing ------------------------------------------------------------------------------

    async def pause(self, workflow: str, name: str, note: str, actor: str, tenant: str) -> dict[str, Any]:
        """Pause: no fire starts until unpaused (fires meanwhile are recorded as skipped)."""
        schedule = await self.find(workflow, name, tenant)
        now = self.runtime.clock()

        def change(state: dict[str, Any], running: bool) -> dict[str, Any]:
            new = copy_state(state)
            new.update(paused=True, note=note[:MAX_NOTE], paused_by=actor, paused_at=now)
            return new

        await Runner(self.runtime, self.states, schedule).update(change, needs_running=False)
        return await self.describe(workflow, name, tenant)

    async def unpause(self, workflow: str, name: str, note: str, actor: str, tenant: str) -> dict[str, Any]:
        """Unpause: the schedule fires again from now on; the fires it missed while paused are
        recorded as skipped (one entry), not caught up."""
        schedule = await self.find(workflow, name, tenant)
        runner = Runner(self.runtime, self.states, schedule)
        now = self.runtime.clock()

        def change(state: dict[str, Any], running: bool) -> dict[str, Any] | None:
            if not state.get("paused"):
                return None
            new = copy_state(state)
            missed = sum(1 for _ in runner.times.between(float(state["cursor"]), now))
            if missed:
                skip(new, now, f"paused: {missed} fires while paused", missed)
            new.update(paused=False, note=note[:MAX_NOTE], paused_by=actor, paused_at=None, cursor=max(now, float(state["cursor"])))
            return new

        await runner.update(change, needs_running=False)
        return await self.describe(workflow, name, tenant)

    async def trigger(
        self, workflow: str, name: str, actor: str, tenant: str, overlap: Overlap | None = None
    ) -> dict[str, Any]:
        """Fire now (kind ``manual``), under the schedule's overlap policy unless ``overlap``
        says otherwise; a paused schedule fires too. The fire and whether it started."""
        schedule = await self.find(workflow, name, tenant)
        runner = Runner(self.runtime, self.states, schedule)
        time = round(self.runtime.clock(), 3)
        policy = overlap or runner.policy.overlap
        identifier = schedule.execution_id(time, "manual")

        def change(state: dict[str, Any], running: bool) -> dict[str, Any]:
            new = copy_state(state)
            decide_overlap(new, time, "manual", policy, running, schedule.execution_id)
            return new

        state = await runner.update(change, needs_running=True)
        started = bool(state.get("last")) and state["last"].get("execution_id") == identifier
        buffered = (state.get("buffered") or {}).get("time") == time
        outcome = "started" if started else "buffered" if buffered else "skipped"
        return {
            "scheduled_time": rfc3339_ms(time),
            "outcome": outcome,
            "execution_id": identifier if started or buffered else None,
            "overlap": policy,
        }

    async def backfill(
        self, workflow: str, name: str, start: float, end: float, *, dry_run: bool, tenant: str
    ) -> Backfill:
        """Start every fire time in ``[start, end]`` (in the past) that has not started (kind
        ``backfill``, overlap not applied); ``dry_run`` only counts. ScheduleRequestError for a
        range that is empty, reversed, in the future or holds more than MAX_BACKFILL fire times."""
        schedule = await self.find(workflow, name, tenant)
        now = self.runtime.clock()
        if end <= start:
            raise ScheduleRequestError("invalid_range", "the backfill range must end after it starts")
        if end > now:
            raise ScheduleRequestError("invalid_range", f"the backfill range must end in the past (now is {rfc3339_ms(now)})")
        times = schedule.times()
        found: list[float] = []
        for time in times.between(start - 0.001, end):
            found.append(time)
            if len(found) > MAX_BACKFILL:
                raise ScheduleRequestError(
                    "backfill_too_large",
                    f"the range holds more than {MAX_BACKFILL} fire times; backfill it in smaller ranges",
                )
        first = rfc3339_ms(found[0]) if found else None
        last = rfc3339_ms(found[-1]) if found else None
        if dry_run:
            existing = 0
            for time in found:
                existing += await self.runtime.log.summary(schedule.execution_id(time, "backfill")) is not None
            return Backfill(len(found), first, last, existing=existing)
        counts = {"started": 0, "duplicate": 0, "failed": 0}
        for time in found:
            action = {
                "do": "start",
                "time": time,
                "kind": "backfill",
                "catchup": False,
                "execution_id": schedule.execution_id(time, "backfill"),
            }
            done = await carry_out(self.runtime, schedule, times, action)
            counts[done.outcome] = counts.get(done.outcome, 0) + 1
        return Backfill(
            len(found), first, last, counts["started"], counts["duplicate"], counts["failed"], dry_run=False
        )


def _time(value: Any) -> str | None:
    return None if value is None else rfc3339_ms(float(value))
