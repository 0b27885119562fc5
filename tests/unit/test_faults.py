"""Transient faults in one process: each is survived, and nothing is stranded.

A real runtime over ``memory://`` whose event log fails exactly where each test scripts it
(``tests/faulty_log.py``); the random, many-execution run is ``tests/e2e/test_faults_embedded.py``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from connectors.base import Connectors
from orchestrator.backends.inprocess import InProcessTransport
from orchestrator.backends.memory import MemoryEventLog, MemoryRegistry
from orchestrator.backends.memory_timers import MemoryTimers
from orchestrator.core.commands import Command, StartExecution
from orchestrator.engine.engine import Committed, Engine
from orchestrator.engine.retrying import Backoff, Redo
from orchestrator.ports import StepTask
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow
from schemas.envelope import Envelope
from tests.engine_suite import Scripted
from tests.fake_sources import eventually
from tests.faulty_log import FaultyLog, InjectedFault

FAST = Backoff(first=0.01, cap=0.05)


def first_event(type_: str, **data: Any) -> Any:
    """An append filter: the append's first event has this type (and these data values)."""

    def matches(execution_id: str, events: Sequence[Envelope]) -> bool:
        head = events[0]
        return head.type == type_ and all(head.data.get(k) == v for k, v in data.items())

    return matches


@pytest.fixture
async def faulty() -> AsyncIterator[tuple[Runtime, FaultyLog, Scripted]]:
    log = FaultyLog(MemoryEventLog())
    scripted = Scripted()
    runtime = Runtime(
        Settings(event_log_url="memory://"),
        connectors=Connectors([scripted]),
        event_log=log,
        timers=MemoryTimers(time.time, retry_seconds=0.05),
    )
    runtime.worker.backoff = FAST
    assert runtime.redo is not None
    runtime.redo.backoff = FAST
    async with runtime:
        await runtime.register(Workflow("chain").task("a", "scripted").task("b", "scripted").build())
        yield runtime, log, scripted


async def succeeded_once(runtime: Runtime, execution_id: str) -> list[str]:
    """The execution succeeded; its steps, each succeeded exactly once, with no sequence gap."""
    state = await runtime.wait(execution_id, timeout=5)
    assert state.status == "succeeded"
    history = await runtime.history(execution_id)
    assert [e.sequence for e in history] == list(range(1, len(history) + 1))
    steps = Counter(e.data["step"] for e in history if e.type == "StepSucceeded")
    assert set(steps.values()) == {1}
    return sorted(steps)


# -- 1. workers: an answer is never dropped --------------------------------------------------


async def test_an_answer_whose_append_fails_is_retried_until_it_is_recorded(
    faulty: tuple[Runtime, FaultyLog, Scripted],
) -> None:
    runtime, log, scripted = faulty
    log.fail_appends("before", times=4, matches=first_event("StepSucceeded", step="a"))
    started = await runtime.start_execution("chain")
    assert await succeeded_once(runtime, started.execution_id) == ["a", "b"]
    assert log.injected["append_before"] == 4
    assert scripted.calls[f"{started.execution_id}:a"] == 1  # the answer was retried, not the step
    assert runtime.engine.failed_appends == 0  # reset by the append that succeeded


async def test_an_answer_that_landed_but_was_reported_failed_strands_nothing(
    faulty: tuple[Runtime, FaultyLog, Scripted],
) -> None:
    runtime, log, scripted = faulty
    log.fail_appends("after", matches=first_event("StepSucceeded", step="a"))
    started = await runtime.start_execution("chain")
    # b was scheduled by the commit nobody heard of: the check of the log dispatches it, once
    assert await succeeded_once(runtime, started.execution_id) == ["a", "b"]
    assert log.injected["append_after"] == 1
    assert scripted.calls == {f"{started.execution_id}:a": 1, f"{started.execution_id}:b": 1}


async def test_a_start_that_landed_but_was_reported_failed_runs_once_retried(
    faulty: tuple[Runtime, FaultyLog, Scripted],
) -> None:
    runtime, log, _ = faulty
    log.fail_appends("after", matches=first_event("ExecutionStarted"))
    with pytest.raises(InjectedFault):
        await runtime.start_execution("chain", dedup_key="k")
    again = await runtime.start_execution("chain", dedup_key="k")  # the client's retry
    assert not again.created
    assert await succeeded_once(runtime, again.execution_id) == ["a", "b"]


async def test_the_in_process_worker_loop_survives_whatever_a_task_raises() -> None:
    handled: list[str] = []

    async def on_task(task: StepTask) -> None:
        if task.step == "boom":
            raise RuntimeError("a bug")
        if task.step == "cancelled":
            raise asyncio.CancelledError()  # not a cancel of the worker coroutine
        handled.append(task.step)

    async def on_command(command: Command) -> None:
        return None

    transport = InProcessTransport(concurrency=1)
    assert transport.problem() == "the in-process workers are stopped"
    await transport.start(on_command, on_task)
    for step in ("boom", "cancelled", "fine"):
        await transport.dispatch(StepTask("e", "w", step, 1, f"{step}:1:1", "c", {}, None, "k"))
    await eventually(lambda: handled == ["fine"])
    assert transport.workers_alive == 1 and transport.problem() is None
    await transport.stop()
    assert transport.workers_alive == 0 and transport.problem() == "the in-process workers are stopped"


# -- effects: what fails after a commit is retried, never reported ----------------------------


async def test_a_failing_observer_does_not_fail_the_command_and_is_retried(
    faulty: tuple[Runtime, FaultyLog, Scripted],
) -> None:
    runtime, _, _ = faulty
    seen: list[int] = []
    failures = 2

    async def flaky(committed: Committed) -> None:
        nonlocal failures
        if committed.events and committed.events[0].type == "ExecutionStarted" and failures:
            failures -= 1
            raise ConnectionError("export target away")
        seen.append(committed.after.sequence)

    runtime.engine.observers.append(flaky)
    started = await runtime.start_execution("chain")  # does not raise
    assert started.created
    await succeeded_once(runtime, started.execution_id)
    await eventually(lambda: 2 in seen)  # the start's commit (sequence 2) reached it after all
    assert failures == 0 and seen.count(2) == 1


async def test_without_redo_a_failing_observer_raises_for_the_redelivery_to_repair() -> None:
    """Kafka mode: the command's offset is not committed, so the command comes again."""
    registry = MemoryRegistry()
    await registry.register(Workflow("wf").task("a", "noop").build())
    engine = Engine(MemoryEventLog(), registry, clock=lambda: 1.0)

    async def broken(committed: Committed) -> None:
        raise ConnectionError("away")

    engine.observers.append(broken)
    with pytest.raises(ConnectionError):
        await engine.handle(StartExecution(execution_id="x", now=1.0, workflow="wf", version=1))


async def test_a_child_whose_start_fails_is_started_by_a_retry(
    faulty: tuple[Runtime, FaultyLog, Scripted],
) -> None:
    runtime, log, _ = faulty
    await runtime.register(Workflow("parent").subworkflow("kid", "chain").build())

    def a_child_start(execution_id: str, events: Sequence[Envelope]) -> bool:
        return events[0].type == "ExecutionStarted" and events[0].data.get("parent") is not None

    log.fail_appends("before", times=2, matches=a_child_start)
    started = await runtime.start_execution("parent")
    assert await succeeded_once(runtime, started.execution_id) == ["kid"]
    assert log.injected["append_before"] == 2


# -- timers and recovery ------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_timer_whose_fire_fails_fires_again(
    faulty: tuple[Runtime, FaultyLog, Scripted], when: str
) -> None:
    runtime, log, _ = faulty
    await runtime.register(Workflow("napper").wait("nap", seconds=0.05).task("a", "scripted").build())
    log.fail_appends(when, times=2 if when == "before" else 1, matches=first_event("TimerFired"))  # type: ignore[arg-type]
    started = await runtime.start_execution("napper")
    assert await succeeded_once(runtime, started.execution_id) == ["a", "nap"]
    timers = runtime.timers
    assert isinstance(timers, MemoryTimers)
    await eventually(lambda: len(timers) == 0)  # nothing left armed


async def test_recovery_survives_a_failing_log_at_start() -> None:
    log = FaultyLog(MemoryEventLog())
    registry = MemoryRegistry()
    gate = asyncio.Event()

    class Held(Scripted):
        async def invoke(self, call: Any) -> Any:
            await gate.wait()
            return await super().invoke(call)

    def runtime() -> Runtime:
        made = Runtime(
            Settings(event_log_url="memory://"), connectors=Connectors([Held()]), event_log=log, registry=registry
        )
        assert made.redo is not None
        made.redo.backoff = FAST
        return made

    async with runtime() as first:
        await first.register(Workflow("chain").task("a", "scripted").build())
        ids = [(await first.start_execution("chain")).execution_id for _ in range(3)]
    gate.set()
    log.fail_reads(1)  # the recovery scan's listing fails: start goes on, the scan is retried
    async with runtime() as second:
        for execution_id in ids:
            assert (await second.wait(execution_id, timeout=5)).status == "succeeded"


# -- readiness facts --------------------------------------------------------------------------


async def test_failing_appends_make_the_runtime_unready_until_one_succeeds(
    faulty: tuple[Runtime, FaultyLog, Scripted],
) -> None:
    runtime, log, _ = faulty
    assert runtime.problem() is None
    log.fail_appends("before", times=3)
    for _ in range(3):
        with pytest.raises(InjectedFault):
            await runtime.start_execution("chain")
    assert runtime.engine.failed_appends == 3
    assert runtime.problem() == "the last 3 appends to the event log failed"
    await runtime.start_execution("chain")
    assert runtime.problem() is None


# -- Redo and Backoff -------------------------------------------------------------------------


async def test_redo_retries_a_job_until_it_succeeds() -> None:
    redo = Redo(backoff=FAST)
    calls = 0

    async def job() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise OSError("not yet")

    async with redo:
        redo.add("k", job, "a job", OSError("first"))
        redo.add("k", job, "the same job", OSError("again"))  # a pending key keeps its job
        assert redo.pending == 1
        await eventually(lambda: redo.pending == 0)
        assert redo.problem() is None
    assert calls == 3 and redo.retried == 1


async def test_redo_past_its_capacity_queues_the_rescan_once() -> None:
    rescans = 0

    async def rescan() -> None:
        nonlocal rescans
        rescans += 1

    async def job() -> None:
        return None

    redo = Redo(backoff=FAST, capacity=2, rescan=rescan)
    async with redo:
        for n in range(5):
            redo.add(n, job, f"job {n}", OSError("away"))
        assert redo.pending == 3 and redo.dropped == 3  # two jobs and the one rescan
        await eventually(lambda: redo.pending == 0)
    assert rescans == 1


def test_backoff_is_bounded_and_jittered() -> None:
    backoff, rng = Backoff(first=0.1, cap=2.0, jitter=0.5), random.Random(1)
    delays = [backoff.delay(attempt, rng) for attempt in range(1, 40)]
    assert all(0.05 <= d <= 2.0 for d in delays)
    assert max(delays) > 1.0 and len(set(delays)) == len(delays)
    assert backoff.delay(10_000, rng) <= 2.0
