"""The source of one schedule trigger: wake at each due time, decide the fires, start them.

Factory: ``Schedules.source`` (``triggers.schedules``), which hands every source the process's one
``ScheduleStates`` store. Each source is one asyncio task sleeping until its next due time (the
event loop keeps the sleepers in one heap, so 10,000 schedules cost 10,000 sleeping tasks and
nothing per second).

Exactly once per fire time, across processes: each change of a schedule's state is a
compare-and-set of its stored version (:class:`Runner.update`), so of two processes waking for
the same fire one decides it and the other finds it decided; the decided starts carry execution
ids derived from the fire time, so even an action carried out twice (a crash between the start and
the save that clears it) starts one execution.

Who fires: in Kafka mode the process owning the shard (partition) of the schedule's key, as for
timers and the recovery sweep; a process that does not own it checks again every second, so a
failover is noticed within a second plus the group's rebalance. One process (in-process transport)
owns every shard; several such processes on one SQLite file all try, and the fence decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from orchestrator.ports import ScheduleRecord, ScheduleStates
from orchestrator.runtime import Runtime
from schemas.schedule_times import FireTimes, rfc3339_ms
from triggers.schedule_fires import Done, Schedule, carry_out
from triggers.schedule_policy import Due, copy_state, failed, initial_state, plan, skip
from triggers.sources import SourceSpec, SourceStats

log = logging.getLogger(__name__)

OWNER_TICK = 1.0  # seconds between checks of a schedule this process does not own (or a buffer)
PAUSED_TICK = 5.0  # a paused schedule looks again this often (an unpause in another process)
MAX_SLEEP = 300.0  # wake at least this often (a clock that jumped, a state changed elsewhere)
MAX_DUE = 1000  # fires decided in one round; more missed ones are skipped as one entry
MAX_CONFLICTS = 50
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 30.0
STOP_GRACE = 10.0  # seconds a stop waits for the round in progress to finish what it decided
FireObserver = Callable[[float, float, Done], None]  # (due at, carried out at, outcome)


@dataclass(slots=True)
class ScheduleStats(SourceStats):
    """``SourceStats`` plus the fires this process recorded as skipped."""

    skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        # Not super(): a slotted dataclass is a new class, which the zero-argument form misses.
        return {**SourceStats.to_dict(self), "skipped": self.skipped}


class Runner:
    """Reads and changes one schedule's state under its version (the fence), and carries out
    what was decided. Used by the source and by the management calls (pause, trigger now)."""

    def __init__(
        self,
        runtime: Runtime,
        states: ScheduleStates,
        schedule: Schedule,
        stats: ScheduleStats | None = None,
        observer: FireObserver | None = None,
    ) -> None:
        self.runtime = runtime
        self.states = states
        self.schedule = schedule
        self.times: FireTimes = schedule.times()
        self.policy = schedule.policy()
        self.stats = stats or ScheduleStats()
        self.observer = observer

    async def load(self, now: float) -> ScheduleRecord:
        """The stored state; a schedule seen for the first time is stored as starting ``now``."""
        record = await self.states.load(self.schedule.key)
        while record.version == 0:
            if await self.states.save(self.schedule.key, 0, initial_state(now)):
                return ScheduleRecord(record.key, 1, initial_state(now))
            record = await self.states.load(self.schedule.key)
        return record

    async def update(
        self, change: Callable[[dict[str, Any], bool], dict[str, Any] | None], *, needs_running: bool = True
    ) -> dict[str, Any]:
        """Apply ``change(state, previous_running)`` under compare-and-set and carry out the
        actions it decided; the state after. Pending actions found first are finished first."""
        for _ in range(MAX_CONFLICTS):
            now = self.runtime.clock()
            record = await self.load(now)
            state, version = record.body, record.version
            if state.get("pending"):
                finished = await self._finish(state, version)
                if finished is None:
                    continue  # another process finished (or changed) it first
                state, version = finished
            running = await self.previous_running(state) if needs_running else False
            new = change(state, running)
            if new is None or new == state:
                return state
            if not await self.states.save(self.schedule.key, version, new):
                continue
            finished = await self._finish(new, version + 1)
            return new if finished is None else finished[0]
        raise RuntimeError(f"schedule {self.schedule.key}: the state kept changing under {MAX_CONFLICTS} tries")

    async def previous_running(self, state: dict[str, Any]) -> bool:
        last = state.get("last")
        if not last or (self.policy.overlap == "allow" and state.get("buffered") is None):
            return False
        summary = await self.runtime.log.summary(last["execution_id"])
        return summary is not None and summary.status == "running"

    async def _finish(self, state: dict[str, Any], version: int) -> tuple[dict[str, Any], int] | None:
        """Carry out the pending actions in order, then save the state without them."""
        done = {**copy_state(state), "pending": []}
        for action in state["pending"]:
            outcome = await carry_out(self.runtime, self.schedule, self.times, action)
            if outcome.outcome == "failed":
                failed(done, action, outcome.reason)
                self.stats.dead_lettered += 1
                self.stats.last_error = outcome.reason
            elif outcome.outcome == "started":
                self.stats.started += 1
            elif outcome.outcome == "duplicate":
                self.stats.duplicates += 1
            if self.observer is not None and action["do"] == "start":
                self.observer(float(action["time"]) + self.times.jitter(float(action["time"])), self.runtime.clock(), outcome)
        if not await self.states.save(self.schedule.key, version, done):
            return None
        return done, version + 1

    # -- the scheduled fires ---------------------------------------------------------------------

    def due(self, cursor: float, now: float) -> tuple[list[Due], int, float | None]:
        """Fires after ``cursor`` due by ``now`` (at most MAX_DUE, oldest first), how many older
        ones lie beyond the catch-up window (skipped without deciding each), and up to when."""
        horizon = now - max(self.policy.catchup_window, self.policy.late_after) - self.times.jitter_seconds
        beyond, until = 0, None
        if cursor < horizon:
            beyond = sum(1 for _ in islice(self.times.between(cursor, horizon), 1_000_000))
            until, cursor = horizon, horizon
        fires: list[Due] = []
        for time in self.times.between(cursor, now):
            at = time + self.times.jitter(time)
            if at > now or len(fires) >= MAX_DUE:
                break
            fires.append(Due(time, at))
        return fires, beyond, until

    async def fire_due(self) -> dict[str, Any]:
        """Decide and carry out every fire due now, round after round (a round stops at a start
        when the overlap policy depends on it); the state after."""
        changed = [False]  # whether the round stopped early, so another one is due

        def change(state: dict[str, Any], running: bool) -> dict[str, Any] | None:
            changed[0] = False
            if state.get("paused"):
                return None  # fires while paused are recorded by the unpause, in one entry
            now = self.runtime.clock()
            fires, beyond, until = self.due(float(state["cursor"]), now)
            if not fires and not beyond and not (state.get("buffered") and not running):
                return None
            new = plan(state, fires, now, self.policy, running, self.schedule.execution_id)
            if beyond and until is not None:
                skip(new, until, f"missed: {beyond} fires up to {rfc3339_ms(until)}, older than the catchup window", beyond)
                new["cursor"] = max(float(new["cursor"]), until)
            self.stats.received += len(fires) + beyond
            self.stats.skipped += new["counts"].get("skipped", 0) - state["counts"].get("skipped", 0)
            changed[0] = bool(fires) and float(new["cursor"]) < fires[-1].time  # stopped at a start
            return new

        state = await self.update(change)
        for _ in range(MAX_DUE):
            if not changed[0]:
                break
            state = await self.update(change)
        return state

    def next_wake(self, state: dict[str, Any], now: float) -> float:
        """When to wake next: the next fire's due time, sooner while a fire is buffered."""
        wake = now + MAX_SLEEP
        if state.get("paused"):
            return now + PAUSED_TICK
        following = self.times.next_after(float(state["cursor"]))
        if following is not None:
            wake = min(wake, following + self.times.jitter(following))
        if state.get("buffered") is not None:
            wake = min(wake, now + OWNER_TICK)
        return wake


class ScheduleSource:
    """A ``TriggerSource`` for one ``ScheduleTrigger`` (see the module docstring)."""

    def __init__(self, spec: SourceSpec, states: ScheduleStates, observer: FireObserver | None = None) -> None:
        self.spec = spec
        self.runtime = spec.runtime
        stats = ScheduleStats()
        self.stats: SourceStats = stats
        self.runner = Runner(spec.runtime, states, Schedule(spec.workflow, spec.trigger), stats, observer)
        self.name = f"schedule {self.runner.schedule.key}"
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._failing = False
        self._owning: bool | None = None

    def owns(self) -> bool:
        """Whether this process fires the schedule: it owns the shard of the schedule's key."""
        transport = self.runtime.transport
        owned = transport.owned_shards()
        return owned is None or transport.shard_of(self.runner.schedule.key) in owned

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop after the round in progress: what it saved as decided is carried out and cleared,
        so a clean stop leaves nothing pending. A round stuck longer than ``grace`` (the event log
        down) is cancelled; its pending actions are finished by the next process to load them."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), grace)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def tick(self) -> float:
        """One round: fire what is due if this process owns the schedule; the next wake time."""
        now = self.runtime.clock()
        owns = self.owns()
        if owns != self._owning:
            self._owning = owns
            shard = self.runtime.transport.shard_of(self.runner.schedule.key)
            log.info("%s: %s (shard %d)", self.name, "fired here" if owns else "fired elsewhere", shard)
        if not owns:
            return now + OWNER_TICK
        state = await self.runner.fire_due()
        return self.runner.next_wake(state, self.runtime.clock())

    async def _run(self) -> None:
        backoff = FIRST_BACKOFF
        while not self._stopping.is_set():
            try:
                wake = await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if not self._failing:
                    self._failing = True
                    log.warning("%s: cannot fire (%s); retrying with backoff", self.name, self.stats.last_error)
                wake = self.runtime.clock() + backoff
                backoff = min(backoff * 2, MAX_BACKOFF)
            else:
                if self._failing:
                    self._failing = False
                    log.info("%s: firing again", self.name)
                backoff = FIRST_BACKOFF
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(0.0, wake - self.runtime.clock()))
