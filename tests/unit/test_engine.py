"""The engine over the in-memory log: commit point, redelivery, resume, conflicts."""

from __future__ import annotations

from orchestrator.backends.memory import MemoryEventLog, MemoryRegistry
from orchestrator.core.commands import CompleteStep, DeliverEvent, ResumeExecution, StartExecution
from orchestrator.engine.engine import Committed, Engine
from schemas.builder import Workflow

EX = "ex-1"


async def engine_with(workflow: Workflow) -> tuple[Engine, list[Committed]]:
    registry = MemoryRegistry()
    await registry.register(workflow.build())
    engine = Engine(MemoryEventLog(), registry, clock=lambda: 1_700_000_000.0)
    seen: list[Committed] = []

    async def observe(committed: Committed) -> None:
        seen.append(committed)

    engine.observers.append(observe)
    return engine, seen


def start(version: int = 1) -> StartExecution:
    return StartExecution(execution_id=EX, now=1_700_000_000.0, workflow="wf", version=version)


async def test_a_redelivered_signal_is_applied_once() -> None:
    engine, _ = await engine_with(Workflow("wf").task("a", "noop").wait_for_event("w", "go"))
    await engine.handle(start())
    signal = DeliverEvent(execution_id=EX, now=1_700_000_001.0, name="go", command_id="cmd-1")
    await engine.handle(signal)
    await engine.handle(signal)
    history = await engine.log.read(EX)
    assert [e.type for e in history].count("SignalReceived") == 1
    assert history[-1].causationid == "cmd-1"


async def test_a_redelivered_answer_asks_observers_to_resume() -> None:
    engine, _ = await engine_with(Workflow("wf").task("a", "noop").task("b", "noop"))
    await engine.handle(start())
    answer = CompleteStep(
        execution_id=EX, now=1_700_000_001.0, step="a", attempt_id="a:1:1", command_id="c-a"
    )
    first = await engine.handle(answer)
    assert first is not None and [e.type for e in first.events] == ["StepSucceeded", "StepScheduled"]
    again = await engine.handle(answer)
    assert again is not None and again.events == () and again.after.active.keys() == {"b"}
    assert len(await engine.log.read(EX)) == 4


async def test_a_redelivery_is_recognised_after_a_restart() -> None:
    engine, _ = await engine_with(Workflow("wf").task("a", "noop").task("b", "noop"))
    await engine.handle(start())
    answer = CompleteStep(
        execution_id=EX, now=1_700_000_001.0, step="a", attempt_id="a:1:1", command_id="c-a"
    )
    await engine.handle(answer)
    fresh = Engine(engine.log, engine.registry, clock=engine.clock)  # empty cache: reads the log
    again = await fresh.handle(answer)
    assert again is not None and again.events == ()


async def test_resume_and_stale_answers() -> None:
    engine, seen = await engine_with(Workflow("wf").task("a", "noop"))
    await engine.handle(start())
    resumed = await engine.handle(ResumeExecution(execution_id=EX, now=1_700_000_002.0))
    assert resumed is not None and resumed.events == ()
    stale = CompleteStep(execution_id=EX, now=1_700_000_003.0, step="a", attempt_id="a:1:9")
    assert await engine.handle(stale) is None
    assert len(seen) == 2


async def test_a_writer_that_lost_the_race_decides_again() -> None:
    engine, _ = await engine_with(Workflow("wf").task("a", "noop").task("b", "noop"))
    await engine.handle(start())
    other = Engine(engine.log, engine.registry, clock=engine.clock)
    answer = CompleteStep(execution_id=EX, now=1_700_000_001.0, step="a", attempt_id="a:1:1")
    assert await other.handle(answer) is not None
    # ``engine`` still caches the state before the answer; its append conflicts, it reloads
    # and finds the answer already applied: nothing is written twice.
    assert await engine.handle(answer) is None
    types = [e.type for e in await engine.log.read(EX)]
    assert types.count("StepSucceeded") == 1


async def test_a_stale_cache_does_not_swallow_a_redelivered_command() -> None:
    """Another process applied the command and died before its effects; this one had cached
    an older state, so the redelivery looks stale at first: it must check the log."""
    engine, _ = await engine_with(Workflow("wf").task("a", "noop").task("b", "noop"))
    await engine.handle(start())  # ``engine`` caches the state at sequence 2
    other = Engine(engine.log, engine.registry, clock=engine.clock)
    answer = CompleteStep(
        execution_id=EX, now=1_700_000_001.0, step="a", attempt_id="a:1:1", command_id="c-a"
    )
    assert await other.handle(answer) is not None  # applied there; its effects are lost
    redelivered = await engine.handle(answer)
    assert redelivered is not None and redelivered.events == ()
    assert redelivered.after.active.keys() == {"b"}  # observers re-dispatch b
