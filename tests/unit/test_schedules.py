"""Schedules over a real runtime with a controllable clock: firing once per fire time (also from
two runtimes on one SQLite file), catch-up and overlap against real executions, pause and
unpause, trigger now, backfill, pending actions after a crash, and ownership in Kafka mode."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from orchestrator.backends.memory_schedules import MemorySchedules
from orchestrator.backends.sqlite.schedules import SQLiteSchedules
from orchestrator.ports import ExecutionQuery, UnknownTrigger
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.definition import ScheduleTrigger, WorkflowDefinition
from schemas.schedule_times import rfc3339_ms
from triggers.schedule_fires import Schedule
from triggers.schedule_policy import Due, plan
from triggers.schedule_source import ScheduleSource, ScheduleStats
from triggers.schedules import ScheduleRequestError, Schedules
from triggers.sources import SourceSpec

T0 = 1_800_000_000.0  # a multiple of 60: fire times of "every 60s" are T0 + k * 60


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def definition(hold: bool = False, **trigger: Any) -> WorkflowDefinition:
    """A workflow with one schedule; ``hold``: its runs wait for an event ``go`` (stay running)."""
    step: dict[str, Any] = (
        {"name": "hold", "type": "wait_for_event", "event": "go"} if hold else {"name": "done", "type": "succeed"}
    )
    spec = {"type": "schedule", "name": "tick", "every": 60, **trigger}
    return WorkflowDefinition.model_validate({"name": "wf", "triggers": [spec], "steps": [step]})


class World:
    """A runtime, its schedules and the source of the workflow's schedule, on one clock."""

    def __init__(self, runtime: Runtime, schedules: Schedules, stored: WorkflowDefinition, clock: Clock) -> None:
        self.runtime = runtime
        self.schedules = schedules
        self.clock = clock
        trigger = stored.triggers[0]
        assert isinstance(trigger, ScheduleTrigger)
        spec = SourceSpec("wf", stored.version or 0, trigger, runtime, runtime.settings)
        self.source = schedules.source(spec)
        self.schedule = Schedule("wf", trigger)

    async def at(self, now: float) -> None:
        self.clock.now = now
        await self.source.tick()

    async def executions(self) -> list[str]:
        page = await self.runtime.list_executions(ExecutionQuery(limit=1000))
        return sorted(s.execution_id for s in page.items)

    async def started(self, execution_id: str) -> dict[str, Any]:
        first = (await self.runtime.log.read(execution_id, limit=1))[0]
        return dict(first.data)

    async def status(self, execution_id: str) -> str:
        summary = await self.runtime.log.summary(execution_id)
        assert summary is not None
        return summary.status

    async def state(self) -> dict[str, Any]:
        return (await self.schedules.states.load(self.schedule.key)).body


def settings(url: str = "memory://") -> Settings:
    return Settings(event_log_url=url, retention_interval=0, recovery_interval=0)


@contextlib.asynccontextmanager
async def world(definition_: WorkflowDefinition, clock: Clock, url: str = "memory://") -> AsyncIterator[World]:
    async with Runtime(settings(url), clock=clock) as runtime:
        stored = await runtime.register(definition_)
        states = MemorySchedules() if url == "memory://" else None
        async with Schedules(runtime, states=states) as schedules:
            yield World(runtime, schedules, stored, clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


# -- firing ----------------------------------------------------------------------------------------


async def test_each_due_fire_starts_once_with_its_time_recorded(clock: Clock) -> None:
    async with world(definition(input="{at: scheduled_time, kind: kind}"), clock) as w:
        await w.at(T0)  # first sight: starts from now, fires nothing of the past
        assert await w.executions() == []
        await w.at(T0 + 60.2)
        await w.at(T0 + 60.4)  # nothing new is due
        [execution] = await w.executions()
        assert execution == w.schedule.execution_id(T0 + 60, "scheduled")
        data = await w.started(execution)
        assert data["input"] == {"at": rfc3339_ms(T0 + 60), "kind": "scheduled"}
        assert data["metadata"]["schedule"] == {
            "trigger": "tick", "scheduled_time": rfc3339_ms(T0 + 60), "kind": "scheduled", "catchup": False,
        }  # fmt: skip
        assert w.source.stats.started == 1
        assert await w.source.tick() == pytest.approx(T0 + 120)  # the next wake: the next fire


async def test_a_schedule_that_ends_stops_firing(clock: Clock) -> None:
    end = rfc3339_ms(T0 + 120)
    async with world(definition(end_at=end), clock) as w:
        await w.at(T0)
        for minute in range(1, 6):
            await w.at(T0 + minute * 60)
        assert len(await w.executions()) == 2


async def test_two_runtimes_on_one_sqlite_file_fire_each_time_exactly_once(tmp_path: Path, clock: Clock) -> None:
    url = f"sqlite:///{tmp_path}/orchestrator.db"
    async with Runtime(settings(url), clock=clock) as one, Runtime(settings(url), clock=clock) as two:
        stored = await one.register(definition())
        await two.register(definition())
        async with Schedules(one) as first_schedules, Schedules(two) as second_schedules:
            assert isinstance(first_schedules.states, SQLiteSchedules)
            a = World(one, first_schedules, stored, clock)
            b = World(two, second_schedules, stored, clock)
            await a.at(T0)
            for minute in range(1, 21):
                clock.now = T0 + minute * 60 + 0.5
                await asyncio.gather(a.source.tick(), b.source.tick(), a.source.tick(), b.source.tick())
            expected = sorted(a.schedule.execution_id(T0 + m * 60, "scheduled") for m in range(1, 21))
            assert await a.executions() == expected
            assert a.source.stats.started + b.source.stats.started == 20
            assert (await a.state())["counts"] == {"started": 20, "skipped": 0, "failed": 0}


async def test_an_action_left_pending_by_a_crash_is_carried_out_by_the_next_process(clock: Clock) -> None:
    async with world(definition(), clock) as w:
        await w.at(T0)
        record = await w.schedules.states.load(w.schedule.key)
        decided = plan(record.body, [Due(T0 + 60, T0 + 60)], T0 + 60, w.schedule.policy(), False, w.schedule.execution_id)
        assert await w.schedules.states.save(w.schedule.key, record.version, decided)  # then "crashed"
        assert await w.executions() == []
        await w.at(T0 + 61)
        assert await w.executions() == [w.schedule.execution_id(T0 + 60, "scheduled")]
        assert (await w.state())["pending"] == []


async def _stop_during_a_start(w: World, grace: float) -> None:
    """Start the source's task, stop it while a decided start is under way, then let it go on."""
    await w.at(T0)
    w.clock.now = T0 + 61
    entered, gate = asyncio.Event(), asyncio.Event()
    original = w.runtime.start_execution

    async def slow_start(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await gate.wait()
        return await original(*args, **kwargs)

    w.runtime.start_execution = slow_start  # type: ignore[method-assign]
    await w.source.start()
    await asyncio.wait_for(entered.wait(), 5)
    stopping = asyncio.create_task(w.source.stop(grace))
    await asyncio.sleep(0.05)
    gate.set()
    await stopping
    w.runtime.start_execution = original  # type: ignore[method-assign]


async def test_a_clean_stop_finishes_the_round_in_progress(clock: Clock) -> None:
    async with world(definition(), clock) as w:
        await _stop_during_a_start(w, grace=5)
        assert await w.executions() == [w.schedule.execution_id(T0 + 60, "scheduled")]
        assert (await w.state())["pending"] == []


async def test_a_stop_past_its_grace_leaves_the_decided_start_pending(clock: Clock) -> None:
    async with world(definition(), clock) as w:
        await _stop_during_a_start(w, grace=0.01)
        assert await w.executions() == []
        [pending] = (await w.state())["pending"]
        assert pending["execution_id"] == w.schedule.execution_id(T0 + 60, "scheduled")


async def test_in_kafka_mode_only_the_owner_of_the_shard_fires(clock: Clock) -> None:
    async with world(definition(), clock) as w:
        await w.at(T0)
        owned: set[int] = set()
        transport = SimpleNamespace(owned_shards=lambda: owned, shard_of=lambda key: 7)
        other = SimpleNamespace(transport=transport, clock=clock, log=w.runtime.log)
        trigger = w.schedule.trigger
        spec = SourceSpec("wf", 1, trigger, cast(Runtime, other), w.runtime.settings)
        source = ScheduleSource(spec, w.schedules.states)
        clock.now = T0 + 61
        assert not source.owns()
        assert await source.tick() == pytest.approx(T0 + 62)  # looks again in a second
        assert await w.executions() == []
        owned.add(7)
        assert source.owns()


# -- catch-up ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("catchup", "late", "kinds"),
    [
        ("all", 1.0, ["catchup"] * 9 + ["scheduled"]),
        ("latest", 1.0, ["scheduled"]),
        ("latest", 30.0, ["catchup"]),
        ("none", 1.0, ["scheduled"]),
        ("none", 30.0, []),
    ],
)
async def test_catchup_after_ten_minutes_down(clock: Clock, catchup: str, late: float, kinds: list[str]) -> None:
    async with world(definition(catchup=catchup), clock) as w:
        await w.at(T0)
        await w.at(T0 + 600 + late)  # the process was down for ten fire times
        found = [await w.started(e) for e in await w.executions()]
        found.sort(key=lambda d: d["metadata"]["schedule"]["scheduled_time"])
        assert [d["metadata"]["schedule"]["kind"] for d in found] == kinds
        assert all(d["metadata"]["schedule"]["catchup"] == (d["metadata"]["schedule"]["kind"] == "catchup") for d in found)
        state = await w.state()
        assert state["counts"]["started"] + state["counts"]["skipped"] == 10  # nothing silent


async def test_fires_beyond_the_catchup_window_are_counted_as_skipped(clock: Clock) -> None:
    async with world(definition(catchup="all", catchup_window="5m"), clock) as w:
        await w.at(T0)
        await w.at(T0 + 3600 + 1)
        state = await w.state()
        assert state["counts"]["started"] == 5  # four late fires within the window, one on time
        assert state["counts"]["skipped"] == 60 - 5
        assert any("older than the catchup window" in s["reason"] for s in state["skips"])


# -- overlap -------------------------------------------------------------------------------------


async def test_overlap_skip_skips_while_the_previous_run_runs(clock: Clock) -> None:
    async with world(definition(hold=True, overlap="skip"), clock) as w:
        await w.at(T0)
        await w.at(T0 + 60)
        await w.at(T0 + 120)
        [running] = await w.executions()
        assert (await w.state())["skips"][-1]["reason"].startswith("overlap skip")
        await w.runtime.signal(running, "go")
        await w.at(T0 + 180)
        assert len(await w.executions()) == 2


async def test_overlap_buffer_one_starts_the_buffered_fire_when_the_previous_finishes(clock: Clock) -> None:
    async with world(definition(hold=True, overlap="buffer_one"), clock) as w:
        await w.at(T0)
        await w.at(T0 + 60)
        await w.at(T0 + 120)  # buffered
        await w.at(T0 + 121)
        [running] = await w.executions()
        assert (await w.state())["buffered"]["time"] == T0 + 120
        await w.runtime.signal(running, "go")
        await w.at(T0 + 125)
        buffered = w.schedule.execution_id(T0 + 120, "buffered")
        assert sorted(await w.executions()) == sorted([running, buffered])
        assert (await w.started(buffered))["metadata"]["schedule"]["kind"] == "buffered"


@pytest.mark.parametrize("overlap", ["cancel_previous", "terminate_previous"])
async def test_cancel_and_terminate_previous_end_the_running_run(clock: Clock, overlap: str) -> None:
    async with world(definition(hold=True, overlap=overlap), clock) as w:
        await w.at(T0)
        await w.at(T0 + 60)
        await w.at(T0 + 120)
        previous = w.schedule.execution_id(T0 + 60, "scheduled")
        current = w.schedule.execution_id(T0 + 120, "scheduled")
        assert await w.status(previous) == "cancelled"
        assert await w.status(current) == "running"


async def test_overlap_allow_runs_them_side_by_side(clock: Clock) -> None:
    async with world(definition(hold=True, overlap="allow"), clock) as w:
        await w.at(T0)
        for minute in (1, 2, 3):
            await w.at(T0 + minute * 60)
        statuses = [await w.status(e) for e in await w.executions()]
        assert statuses == ["running"] * 3


# -- management ------------------------------------------------------------------------------------


async def test_pause_and_unpause_with_a_note(clock: Clock) -> None:
    async with world(definition(), clock) as w:
        await w.at(T0)
        view = await w.schedules.pause("wf", "tick", "maintenance window", "alice", "default")
        assert (view["paused"], view["note"], view["paused_by"]) == (True, "maintenance window", "alice")
        for minute in (1, 2, 3):
            await w.at(T0 + minute * 60)
        assert await w.executions() == []
        clock.now = T0 + 200
        view = await w.schedules.unpause("wf", "tick", "done", "bob", "default")
        assert view["paused"] is False and view["note"] == "done"
        assert view["recent_skips"][0]["reason"] == "paused: 3 fires while paused"
        assert view["counts"]["skipped"] == 3
        await w.at(T0 + 240)
        assert await w.executions() == [w.schedule.execution_id(T0 + 240, "scheduled")]  # not caught up


async def test_describe_lists_the_next_fire_times(clock: Clock) -> None:
    async with world(definition(), clock) as w:
        await w.at(T0 + 1)
        view = await w.schedules.describe("wf", "tick", "default", count=3)
        assert [n["scheduled_time"] for n in view["next"]] == [rfc3339_ms(T0 + 60 * k) for k in (1, 2, 3)]
        assert view["spec"]["every"] == 60 and view["spec"]["overlap"] == "skip"
        [listed] = await w.schedules.list("default")
        assert listed["name"] == "tick" and len(listed["next"]) == 1
        assert await w.schedules.list("other") == []
        with pytest.raises(UnknownTrigger):
            await w.schedules.describe("wf", "nope", "default")
        with pytest.raises(UnknownTrigger):
            await w.schedules.describe("wf", "tick", "other")


async def test_trigger_now_starts_a_manual_fire_under_the_overlap_policy(clock: Clock) -> None:
    async with world(definition(hold=True, overlap="skip"), clock) as w:
        await w.at(T0 + 5)
        fired = await w.schedules.trigger("wf", "tick", "alice", "default")
        assert fired["outcome"] == "started"
        assert (await w.started(fired["execution_id"]))["metadata"]["schedule"]["kind"] == "manual"
        clock.now += 1
        assert (await w.schedules.trigger("wf", "tick", "alice", "default"))["outcome"] == "skipped"
        clock.now += 1
        again = await w.schedules.trigger("wf", "tick", "alice", "default", overlap="allow")
        assert again["outcome"] == "started"
        assert len(await w.executions()) == 2


async def test_backfill_counts_first_then_starts_only_what_did_not_start(clock: Clock) -> None:
    async with world(definition(), clock) as w:
        await w.at(T0)
        await w.at(T0 + 60)  # one fire started by the schedule itself
        clock.now = T0 + 400
        start, end = T0 - 240, T0 + 60
        dry = await w.schedules.backfill("wf", "tick", start, end, dry_run=True, tenant="default")
        assert dry.to_dict() == {
            "fire_times": 6, "first": rfc3339_ms(T0 - 240), "last": rfc3339_ms(T0 + 60),
            "started": 0, "existing": 1, "failed": 0, "dry_run": True,
        }  # fmt: skip
        assert len(await w.executions()) == 1
        done = await w.schedules.backfill("wf", "tick", start, end, dry_run=False, tenant="default")
        assert (done.started, done.existing, done.fire_times) == (5, 1, 6)
        assert len(await w.executions()) == 6
        again = await w.schedules.backfill("wf", "tick", start, end, dry_run=False, tenant="default")
        assert (again.started, again.existing) == (0, 6)
        kinds = {(await w.started(e))["metadata"]["schedule"]["kind"] for e in await w.executions()}
        assert kinds == {"scheduled", "backfill"}


async def test_backfill_refuses_future_reversed_and_too_large_ranges(clock: Clock) -> None:
    async with world(definition(every=1), clock) as w:
        now = T0
        cases = [(now - 10, now + 10, "invalid_range"), (now - 10, now - 20, "invalid_range"), (now - 5000, now, "backfill_too_large")]
        for start, end, code in cases:
            with pytest.raises(ScheduleRequestError) as raised:
                await w.schedules.backfill("wf", "tick", start, end, dry_run=True, tenant="default")
            assert raised.value.code == code


def test_schedule_stats_serialise_with_the_common_fields() -> None:
    """What GET /api/v1/triggers shows of a running schedule (it once raised a TypeError)."""
    stats = ScheduleStats(skipped=2)
    stats.started = 1
    body = stats.to_dict()
    assert body["skipped"] == 2 and body["started"] == 1 and "received" in body
