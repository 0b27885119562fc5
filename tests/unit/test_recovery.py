"""The recovery sweep: which executions count as idle, and when the sweeper looks."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from orchestrator.backends.cassandra.idle import Check, millis, next_check
from orchestrator.backends.memory import MemoryEventLog
from orchestrator.core.commands import Command, ResumeExecution
from orchestrator.core.events import EXECUTION_SUCCEEDED
from orchestrator.core.timefmt import parse_rfc3339
from orchestrator.engine.recovery import RecoverySweeper, ScannedIdle
from orchestrator.ports import ExecutionSummary, ResumeCallback, StepTask
from orchestrator.settings import Settings, SettingsError
from tests.contracts.factories import at, event, started

NOW = parse_rfc3339(at(1000))
GRACE = 60.0


def summary(updated: float, sequence: int = 3, status: str = "running") -> ExecutionSummary:
    return ExecutionSummary("e1", "wf", 1, "default", status, at(0), at(updated), sequence)


# -- the Cassandra index's decision ----------------------------------------------------------------


def test_an_idle_execution_is_resumed_once_per_position_then_looked_at_less_often() -> None:
    check = Check(millis(parse_rfc3339(at(0))), "e1")
    resume, following = next_check(check, summary(900), NOW, GRACE)
    assert resume and following == Check(millis(NOW), "e1", resumed=3)  # looked at again after GRACE
    assert following is not None
    waits = []
    for _ in range(6):
        resume, following = next_check(following, summary(900), NOW, GRACE)
        assert not resume and following is not None
        waits.append((following.since - millis(NOW)) / 1000 + GRACE)
    assert waits == [120, 240, 480, 600, 600, 600]  # doubling, at most every 10 minutes


def test_an_execution_that_moved_lately_is_looked_at_a_grace_after_its_last_event() -> None:
    check = Check(millis(parse_rfc3339(at(0))), "e1", resumed=3, idle=4)
    resume, following = next_check(check, summary(980, sequence=5), NOW, GRACE)
    assert not resume and following == Check(millis(parse_rfc3339(at(980))), "e1", resumed=3)
    resume, _ = next_check(following, summary(980, sequence=5), NOW + 100, GRACE)
    assert resume  # still at sequence 5 a grace later: resumed at the new position


def test_a_finished_or_missing_execution_drops_its_check() -> None:
    check = Check(0, "e1")
    assert next_check(check, summary(0, status="succeeded"), NOW, GRACE) == (False, None)
    assert next_check(check, None, NOW, GRACE) == (False, None)


# -- the scan of a log without an index -------------------------------------------------------------


class TwoShards:
    """Shard = the last digit of the id, modulo 2."""

    def shard_of(self, execution_id: str) -> int:
        return int(execution_id[-1]) % 2

    def owned_shards(self) -> set[int] | None:
        return {0, 1}


async def test_the_scan_resumes_idle_running_executions_of_the_shard_once_per_position() -> None:
    log = MemoryEventLog()
    for execution_id, seconds in (("idle0", 10), ("recent2", 990), ("other1", 10), ("done4", 10)):
        await log.append(execution_id, 0, [started(execution_id, time=at(seconds))])
    await log.append("done4", 1, [event("done4", 2, EXECUTION_SUCCEEDED, time=at(20))])
    scan = ScannedIdle(log, TwoShards())
    resumed: list[str] = []

    async def resume(execution_id: str) -> None:
        resumed.append(execution_id)

    assert await scan.sweep_idle(0, NOW, GRACE, resume) == 1
    assert resumed == ["idle0"]
    assert await scan.sweep_idle(0, NOW, GRACE, resume) == 0  # same position: not again
    await log.append("idle0", 1, [event("idle0", 2, time=at(30))])
    assert await scan.sweep_idle(0, NOW, GRACE, resume) == 1  # it moved, and is idle again
    assert await scan.sweep_idle(1, NOW, GRACE, resume) == 1
    assert resumed == ["idle0", "idle0", "other1"]


async def test_a_failing_resume_is_tried_again_next_sweep() -> None:
    log = MemoryEventLog()
    await log.append("idle0", 0, [started("idle0", time=at(10))])
    scan = ScannedIdle(log, TwoShards())

    async def broken(execution_id: str) -> None:
        raise ConnectionError("kafka down")

    with pytest.raises(ConnectionError):
        await scan.sweep_idle(0, NOW, GRACE, broken)
    resumed: list[str] = []

    async def resume(execution_id: str) -> None:
        resumed.append(execution_id)

    assert await scan.sweep_idle(0, NOW, GRACE, resume) == 1 and resumed == ["idle0"]


# -- the sweeper -------------------------------------------------------------------------------------


@dataclass
class FakeTransport:
    owned: set[int]
    submitted: list[Command] = field(default_factory=list)
    durable: bool = True

    def shard_of(self, execution_id: str) -> int:
        return 0

    def owned_shards(self) -> set[int] | None:
        return set(self.owned)

    async def submit(self, command: Command) -> None:
        self.submitted.append(command)

    async def dispatch(self, task: StepTask) -> None:
        raise AssertionError("not used")

    async def start(self, on_command: object, on_task: object) -> None:
        raise AssertionError("not used")

    async def stop(self) -> None:
        raise AssertionError("not used")


@dataclass
class FakeIndex:
    """Every sweep of a shard resumes ``<shard>-<n>``; shard 13 fails."""

    shards: object = None
    swept: list[int] = field(default_factory=list)

    async def sweep_idle(self, shard: int, now: float, grace: float, resume: ResumeCallback) -> int:
        self.swept.append(shard)
        if shard == 13:
            raise ConnectionError("cassandra down")
        await resume(f"{shard}-{len(self.swept)}")
        return 1


async def test_a_sweep_resumes_through_the_transport_and_tries_every_shard() -> None:
    transport, index = FakeTransport({13, 2, 1}), FakeIndex()
    sweeper = RecoverySweeper(index, transport, lambda: NOW, interval=30, grace=GRACE)
    with pytest.raises(ConnectionError):
        await sweeper.sweep()
    assert index.swept == [1, 2, 13]
    assert transport.submitted == [
        ResumeExecution(execution_id="1-1", now=NOW),
        ResumeExecution(execution_id="2-2", now=NOW),
    ]


class Stop(Exception):
    pass


async def test_the_sweeper_sweeps_a_newly_assigned_shard_at_once_and_all_every_interval() -> None:
    """A clock the fake sleep moves: one tick a second, a full sweep every 10 s (no jitter)."""
    transport, index = FakeTransport({1}), FakeIndex()
    now, swept_at = [0.0], []

    async def sleep(seconds: float) -> None:
        swept_at.append((now[0], list(index.swept)))
        now[0] += seconds
        if now[0] == 2:
            transport.owned = {1, 13, 4}  # assigned two more partitions
        if now[0] > 12:
            raise Stop

    sweeper = RecoverySweeper(
        index,
        transport,
        lambda: NOW,
        interval=10,
        grace=GRACE,
        rng=lambda: 0.5,
        timer=lambda: now[0],
        sleep=sleep,
    )
    with pytest.raises(Stop):
        await sweeper.run()
    assert swept_at[0] == (0.0, [1])  # assigned at start: swept without waiting for the interval
    assert swept_at[2] == (2.0, [1, 4, 13])  # the new ones at once; 13 failing stops nothing
    assert swept_at[9][1] == [1, 4, 13]  # nothing more until the interval is over
    assert swept_at[10] == (10.0, [1, 4, 13, 1, 4, 13])  # then every owned shard
    assert swept_at[-1][1] == [1, 4, 13, 1, 4, 13]


def test_the_sweeper_refuses_a_useless_interval() -> None:
    with pytest.raises(ValueError):
        RecoverySweeper(FakeIndex(), FakeTransport(set()), lambda: NOW, interval=0, grace=GRACE)


# -- settings ----------------------------------------------------------------------------------------


def test_recovery_and_parking_settings_come_from_the_environment() -> None:
    default = Settings.from_env({})
    assert (default.recovery_interval, default.recovery_grace, default.command_attempts) == (30.0, 300.0, 5)
    given = Settings.from_env(
        {
            "ORCHESTRATOR_RECOVERY_INTERVAL": "0.5",
            "ORCHESTRATOR_RECOVERY_GRACE": "0",
            "ORCHESTRATOR_COMMAND_ATTEMPTS": "2",
        }
    )
    assert (given.recovery_interval, given.recovery_grace, given.command_attempts) == (0.5, 0.0, 2)
    assert Settings.from_env({"ORCHESTRATOR_RECOVERY_INTERVAL": "0"}).recovery_interval == 0  # off
    for name, bad in (("RECOVERY_INTERVAL", "-1"), ("RECOVERY_GRACE", "soon"), ("COMMAND_ATTEMPTS", "0")):
        with pytest.raises(SettingsError, match=f"ORCHESTRATOR_{name}"):
            Settings.from_env({f"ORCHESTRATOR_{name}": bad})
