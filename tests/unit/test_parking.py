"""Poison commands: the retry/park policy, the parking handler and the in-memory dead letters."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from orchestrator.backends.memory_dead_letters import MemoryDeadLetters
from orchestrator.core.commands import Command, FireTimer, StartExecution
from orchestrator.engine.parking import CommandParking, RetryPolicy
from orchestrator.ports import (
    BackendUnavailable,
    ConcurrencyError,
    ExecutionSummary,
    UnknownDeadLetter,
    UnknownWorkflow,
)

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def fire(execution_id: str = "e1", timer: str = "t") -> FireTimer:
    return FireTimer(execution_id=execution_id, now=T0, timer_id=timer, command_id=f"{execution_id}/{timer}")


class Flaky:
    """A handler failing with ``errors`` in turn, then succeeding; records what it was given."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[Command] = []

    async def __call__(self, command: Command) -> None:
        self.calls.append(command)
        if self.errors:
            raise self.errors.pop(0)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def parking(
    handler: Flaky, attempts: int = 3
) -> tuple[CommandParking, MemoryDeadLetters, Sleeps, list[Command]]:
    resubmitted: list[Command] = []

    async def submit(command: Command) -> None:
        resubmitted.append(command)

    letters = MemoryDeadLetters(submit, clock=lambda: T0)
    sleeps = Sleeps()
    return (
        CommandParking(handler, letters, RetryPolicy(attempts=attempts), sleep=sleeps),
        letters,
        sleeps,
        resubmitted,
    )


# -- the policy ------------------------------------------------------------------------------------


def test_a_transient_failure_goes_back_to_the_transport_at_every_attempt() -> None:
    policy = RetryPolicy(attempts=3)
    driver = type("InvalidRequest", (Exception,), {"__module__": "cassandra.protocol"})
    for error in (
        BackendUnavailable("cassandra://x: down"),
        ConcurrencyError("e", 3),
        ConnectionResetError("reset"),
        TimeoutError(),
        sqlite3.OperationalError("database is locked"),
        driver("unconfigured table events"),  # a broken backend, not a poison command
    ):
        assert [policy.verdict(error, n) for n in (1, 3, 10)] == ["raise"] * 3, error


def test_any_other_failure_is_retried_then_parked() -> None:
    policy = RetryPolicy(attempts=3)
    for error in (UnknownWorkflow("no v9"), KeyError("bug"), ValueError("bad")):
        assert [policy.verdict(error, n) for n in (1, 2, 3)] == ["retry", "retry", "park"]
    assert RetryPolicy(attempts=1).verdict(KeyError("bug"), 1) == "park"


def test_backoff_doubles_up_to_its_ceiling() -> None:
    policy = RetryPolicy(attempts=10, first_delay=0.5, max_delay=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError, match="at least once"):
        RetryPolicy(attempts=0)


# -- the handler -----------------------------------------------------------------------------------


async def test_a_command_that_succeeds_on_a_retry_is_not_parked() -> None:
    handler = Flaky(KeyError("once"), KeyError("twice"))
    guard, letters, sleeps, _ = parking(handler, attempts=3)
    await guard(fire())
    assert len(handler.calls) == 3
    assert sleeps.delays == [0.2, 0.4]
    assert (await letters.list()).items == []


async def test_a_poison_command_is_parked_with_its_reason_after_the_last_attempt() -> None:
    handler = Flaky(*[UnknownWorkflow("workflow 'w' has no version 9")] * 5)
    guard, letters, sleeps, _ = parking(handler, attempts=3)
    await guard(fire("e7", "t1"))  # returns: the transport moves on
    assert len(handler.calls) == 3 and len(sleeps.delays) == 2
    [letter] = (await letters.list()).items
    assert letter.to_dict() == {
        "id": "0",
        "execution_id": "e7",
        "command_type": "FireTimer",
        "command_id": "e7/t1",
        "error_type": "UnknownWorkflow",
        "error_message": "workflow 'w' has no version 9",
        "attempts": 3,
        "parked_at": "2023-11-14T22:13:20.000000Z",
        "origin": "",
        "tenant": "default",  # no index to ask: the default tenant
    }


class Index:
    """The executions index, as far as parking asks it: e7 is acme's; asking about e9 fails."""

    async def summary(self, execution_id: str) -> ExecutionSummary | None:
        if execution_id == "e9":
            raise RuntimeError("index down")
        if execution_id != "e7":
            return None
        return ExecutionSummary("e7", "w", 1, "acme", "running", "t", "t", 3)


async def test_a_parked_command_keeps_its_executions_tenant() -> None:
    letters = MemoryDeadLetters(submit=lambda command: asyncio.sleep(0), clock=lambda: T0)
    guard = CommandParking(
        Flaky(*[ValueError("poison")] * 9), letters, RetryPolicy(attempts=1), index=Index()
    )
    await guard(fire("e7", "t1"))
    await guard(fire("e8", "t1"))  # not indexed
    await guard(fire("e9", "t1"))  # the lookup fails: still parked
    await guard(StartExecution(execution_id="e10", now=T0, workflow="w", version=1, tenant="globex"))
    tenants = [(d.execution_id, d.tenant) for d in (await letters.list()).items]
    assert tenants == [("e7", "acme"), ("e8", "default"), ("e9", "default"), ("e10", "globex")]
    assert [d.execution_id for d in (await letters.list(tenant="acme")).items] == ["e7"]
    with pytest.raises(UnknownDeadLetter):
        await letters.redrive("0", tenant="globex")  # acme's letter is not found from globex
    assert (await letters.redrive("0", tenant="acme")).execution_id == "e7"


async def test_an_outage_is_raised_at_once_and_nothing_is_parked() -> None:
    handler = Flaky(BackendUnavailable("cassandra://x: no host"))
    guard, letters, sleeps, _ = parking(handler)
    with pytest.raises(BackendUnavailable):
        await guard(fire())
    assert len(handler.calls) == 1 and sleeps.delays == []
    assert (await letters.list()).items == []


# -- the in-memory store ---------------------------------------------------------------------------


async def test_memory_dead_letters_page_oldest_first_and_redrive() -> None:
    guard, letters, _, resubmitted = parking(Flaky(*[KeyError("bug")] * 5), attempts=1)
    for index in range(5):
        await guard(fire(f"e{index}"))
    first = await letters.list(limit=2)
    assert [x.execution_id for x in first.items] == ["e0", "e1"] and first.next_cursor == "2"
    rest = await letters.list(limit=10, cursor=first.next_cursor)
    assert [x.execution_id for x in rest.items] == ["e2", "e3", "e4"] and rest.next_cursor is None
    redriven = await letters.redrive("3")
    assert redriven.execution_id == "e3" and resubmitted == [fire("e3")]
    assert len((await letters.list()).items) == 5  # redriven letters stay listed
    for unknown in ("9", "x", ""):
        with pytest.raises(UnknownDeadLetter):
            await letters.redrive(unknown)
    with pytest.raises(ValueError, match="not a dead-letter position"):
        await letters.list(cursor="abc")


async def test_memory_dead_letters_keep_only_the_newest() -> None:
    letters = MemoryDeadLetters(Flaky(), clock=lambda: T0, limit=3)
    for index in range(5):
        await letters.park(fire(f"e{index}"), KeyError("bug"), 1)
    assert [(x.id, x.execution_id) for x in (await letters.list()).items] == [
        ("2", "e2"),
        ("3", "e3"),
        ("4", "e4"),
    ]
