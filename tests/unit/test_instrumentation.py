"""Instrumentation: every kind of report from a real run, and a raising implementation harmless."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import pytest

from connectors.base import ConnectorError, Connectors, StepCall
from orchestrator.backends.inprocess import InProcessTransport
from orchestrator.backends.memory import MemoryEventLog, MemoryRegistry
from orchestrator.backends.memory_timers import MemoryTimers
from orchestrator.core.commands import CompleteStep, DeliverEvent, StartExecution
from orchestrator.core.machine import CommandRejected
from orchestrator.engine.engine import Engine
from orchestrator.instrumentation import (
    NO_INSTRUMENTS,
    Guarded,
    Instruments,
    NoInstruments,
    Tee,
    attach,
    guarded,
)
from orchestrator.observability.otel import OtelInstruments
from orchestrator.observability.prometheus import PrometheusInstruments
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow, retry
from tests.recording_instruments import RecordingInstruments

CALLS = sorted(n for n, v in vars(Instruments).items() if inspect.isfunction(v) and not n.startswith("_"))


class Steps:
    """One connector whose behaviour is picked per step: ok, flaky (fails once), broken, slow."""

    name = "steps"

    def __init__(self) -> None:
        self.flaky_failed = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def invoke(self, call: StepCall) -> Any:
        if call.step == "flaky" and not self.flaky_failed:
            self.flaky_failed = True
            raise ConnectorError("flaky.once", "try again")
        if call.step == "broken":
            raise ConnectorError("broken.for_good", "no", retryable=False)
        if call.step == "slow":
            await asyncio.sleep(1.0)
        return {"step": call.step}


class Raising:
    """Every call raises: a broken metrics implementation."""

    def __init__(self) -> None:
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        if name not in CALLS:
            raise AttributeError(name)

        def call(*args: Any) -> None:
            self.calls += 1
            raise RuntimeError(f"{name} is broken")

        return call


def runtime(instruments: Any, steps: Steps | None = None) -> Runtime:
    settings = Settings(event_log_url="memory://", transport_url="inprocess://?concurrency=4")
    return Runtime(settings, connectors=Connectors([steps or Steps()]), instruments=instruments)


def busy_workflow() -> Any:
    return (
        Workflow("busy")
        .task("ok", "steps")
        .task("flaky", "steps", retry=retry(max_attempts=2, initial_seconds=0.01))
        .wait("pause", seconds=0.01)
        .wait_for_event("hold", "go")
        .succeed("done")
        .build()
    )


async def run_busy(rt: Runtime) -> str:
    await rt.register(busy_workflow())
    started = await rt.start_execution("busy", {}, dedup_key="k-1")
    assert not (await rt.start_execution("busy", {}, dedup_key="k-1")).created  # a duplicate start
    for _ in range(200):
        state = await rt.state(started.execution_id)
        if "hold" in state.active:
            break
        await asyncio.sleep(0.01)
    await rt.signal(started.execution_id, "go")
    final = await rt.wait(started.execution_id, timeout=10)
    assert final.status == "succeeded"
    return started.execution_id


async def test_a_run_reports_commands_appends_steps_timers_and_queue_depth() -> None:
    recorded = RecordingInstruments()
    async with runtime(recorded) as rt:
        execution_id = await run_busy(rt)
        with pytest.raises(CommandRejected):
            await rt.cancel(execution_id)  # finished already: rejected
    commands = {(kind, outcome) for kind, outcome, _ in recorded.of("command_handled")}
    assert {
        ("StartExecution", "applied"),
        ("StartExecution", "duplicate"),
        ("CompleteStep", "applied"),
        ("FailStep", "applied"),
        ("FireTimer", "applied"),
        ("DeliverEvent", "applied"),
        ("CancelExecution", "rejected"),
    } <= commands
    assert all(seconds >= 0 for *_, seconds in recorded.of("command_handled"))
    appends = recorded.of("events_appended")
    assert {(backend, outcome) for backend, outcome, _, _ in appends} == {("MemoryEventLog", "ok")}
    events = sum(n for _, outcome, n, _ in appends if outcome == "ok")
    assert events == len(await rt.history(execution_id))
    assert ("busy", "ok", "steps", 1) in recorded.of("step_started")
    finished = {(step, attempt, outcome) for _, step, _, attempt, outcome, _ in recorded.of("step_finished")}
    assert finished == {("ok", 1, "succeeded"), ("flaky", 1, "retryable"), ("flaky", 2, "succeeded")}
    fired = recorded.of("timer_fired")
    assert len(fired) == 2 and all(backend == "MemoryTimers" and late >= 0 for backend, late in fired)
    depths = recorded.of("queue_depth")
    assert depths and {queue for queue, _ in depths} == {"inprocess.tasks"}
    assert recorded.of("queue_depth")[-1] == ("inprocess.tasks", 0)
    traced = {"execution_traced", "step_traced"}  # span data, not labels
    labels = [arg for call, args in recorded if call not in traced for arg in args if isinstance(arg, str)]
    assert execution_id not in labels  # bounded labels: never an execution id
    assert execution_id in {args[0] for args in recorded.of("execution_traced")}


async def test_failed_and_timed_out_steps_and_a_stale_answer_are_reported() -> None:
    recorded = RecordingInstruments()
    async with runtime(recorded) as rt:
        await rt.register(Workflow("bad").task("broken", "steps").build())
        await rt.register(Workflow("late").task("slow", "steps", timeout_seconds=0.05).build())
        bad = await rt.start_execution("bad")
        late = await rt.start_execution("late")
        assert (await rt.wait(bad.execution_id, timeout=5)).status == "failed"
        assert (await rt.wait(late.execution_id, timeout=5)).status == "failed"
        stale = CompleteStep(execution_id=bad.execution_id, now=rt.clock(), step="broken", attempt_id="old")
        assert await rt.engine.handle(stale) is None
        # The step's timeout timer may fail the execution before the worker's own wait times
        # out (a loaded machine): the worker still reports the timeout, a moment later.
        for _ in range(100):
            if ("late", "timeout") in {(w, o) for w, _, _, _, o, _ in recorded.of("step_finished")}:
                break
            await asyncio.sleep(0.05)
    finished = {(workflow, outcome) for workflow, _, _, _, outcome, _ in recorded.of("step_finished")}
    assert finished == {("bad", "failed"), ("late", "timeout")}
    assert ("CompleteStep", "stale") in {
        (kind, outcome) for kind, outcome, _ in recorded.of("command_handled")
    }


async def test_a_lost_race_is_reported_as_a_conflict_then_conflict_retried() -> None:
    log, registry, recorded = MemoryEventLog(), MemoryRegistry(), RecordingInstruments()
    await registry.register(Workflow("wf").task("a", "noop").task("b", "noop").build())
    mine = Engine(log, registry, clock=lambda: 1.0, instruments=recorded)
    other = Engine(log, registry, clock=lambda: 1.0)
    await mine.handle(StartExecution(execution_id="ex", now=1.0, workflow="wf", version=1))
    await other.handle(CompleteStep(execution_id="ex", now=2.0, step="a", attempt_id="a:1:1"))
    # A signal applies to any running state, so the stale cached one appends at an old sequence.
    await mine.handle(DeliverEvent(execution_id="ex", now=3.0, name="go"))
    assert [outcome for _, outcome, _ in recorded.of("command_handled")] == ["applied", "conflict_retried"]
    assert [outcome for _, outcome, _, _ in recorded.of("events_appended")] == ["ok", "conflict", "ok"]


async def test_a_raising_implementation_does_not_break_a_workflow_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raising = Raising()
    with pytest.raises(RuntimeError):  # unguarded, it does raise: the run below would fail
        raising.command_handled("StartExecution", "applied", 0.0)
    with caplog.at_level(logging.WARNING, logger="orchestrator.instrumentation"):
        async with runtime(raising) as rt:
            await run_busy(rt)
    assert raising.calls > 20
    logged = [r for r in caplog.records if r.name == "orchestrator.instrumentation"]
    assert 1 <= len(logged) <= len(CALLS)  # rate-limited: one line per call name, not per failure


def test_guarded_drops_failures_and_logs_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    safe = Guarded(Raising(), every=60.0, clock=lambda: now[0])  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="orchestrator.instrumentation"):
        for _ in range(5):
            safe.timer_fired("MemoryTimers", 0.1)
        safe.queue_depth("inprocess.tasks", 1)
        now[0] = 61.0
        safe.timer_fired("MemoryTimers", 0.1)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "timer_fired" in messages[0] and "queue_depth" in messages[1]
    assert "4 more failures" in messages[2]


def test_guarded_is_idempotent_and_none_means_no_instruments() -> None:
    recorded = RecordingInstruments()
    once = guarded(recorded)
    assert isinstance(once, Guarded) and guarded(once) is once
    assert guarded(None) is NO_INSTRUMENTS and isinstance(guarded(NoInstruments()), NoInstruments)
    once.consumer_lag("g", "t", 0, 3)
    assert recorded.of("consumer_lag") == [("g", "t", 0, 3)]


def test_attach_sets_the_attribute_of_instrumented_parts_only() -> None:
    recorded = RecordingInstruments()
    transport, timers, log = InProcessTransport(), MemoryTimers(lambda: 0.0), MemoryEventLog()
    for part in (transport, timers, log):
        attach(part, recorded)
    assert isinstance(transport.instruments, Guarded) and transport.instruments.inner is recorded
    assert isinstance(timers.instruments, Guarded)
    assert not hasattr(log, "instruments")  # appends are timed by the engine
    assert InProcessTransport().instruments is NO_INSTRUMENTS  # the class default


def test_every_implementation_has_every_call_with_the_protocol_signature() -> None:
    assert CALLS == [
        "appends_grouped", "command_handled", "consumer_lag", "doctor_checked", "events_appended",
        "execution_finished", "execution_started", "execution_traced", "queue_depth",
        "quota_refused", "quota_usage", "sla_breached", "step_finished",
        "step_queued", "step_started", "step_traced", "timer_fired", "timers_pending",
        "transport_lane", "trigger_outcome", "waits_parked",
    ]  # fmt: skip
    for implementation in (NoInstruments, Guarded, Tee, RecordingInstruments, PrometheusInstruments, OtelInstruments):
        for name in CALLS:
            wanted = list(inspect.signature(getattr(Instruments, name)).parameters)
            assert list(inspect.signature(getattr(implementation, name)).parameters) == wanted, (
                implementation,
                name,
            )
