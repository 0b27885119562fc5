"""With a durable transport (Kafka mode), a failing effect after the commit does not turn an
accepted start, cancel or signal into an error: the caller is answered from the commit, and the
owner's recovery sweep re-derives the effects. The consumer path still raises, so a redelivered
command re-derives them too."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orchestrator.backends.inprocess import InProcessTransport
from orchestrator.core.commands import StartExecution
from orchestrator.ports import BackendUnavailable, StepTask
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow


class BrokenDispatch(InProcessTransport):
    """Durable like Kafka, and its task topic is down."""

    durable = True

    async def dispatch(self, task: StepTask) -> None:
        raise BackendUnavailable("kafka://127.0.0.1:1: tasks topic unreachable")


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    settings = Settings(event_log_url="memory://", recovery_interval=0)
    async with Runtime(settings, transport=BrokenDispatch()) as runtime:
        await runtime.register(
            Workflow("w").task("a", "noop").wait_for_event("hold", event="go").build()
        )
        yield runtime


async def test_an_accepted_start_is_answered_although_its_dispatch_failed(runtime: Runtime) -> None:
    started = await runtime.start_execution("w", {"n": 1})
    assert started.created
    history = await runtime.history(started.execution_id)
    assert [e.type for e in history] == ["ExecutionStarted", "StepScheduled"]


async def test_cancel_and_signal_are_answered_from_the_commit(runtime: Runtime) -> None:
    started = await runtime.start_execution("w")
    await runtime.signal(started.execution_id, "go", {"ok": True})
    state = await runtime.cancel(started.execution_id, "no longer needed")
    assert state.status == "cancelled"


async def test_the_consumer_path_still_raises_so_the_command_is_redelivered(runtime: Runtime) -> None:
    command = StartExecution(execution_id="x-1", now=runtime.clock(), workflow="w", version=1)
    with pytest.raises(BackendUnavailable):
        await runtime.engine.handle(command)
    assert [e.type for e in await runtime.history("x-1")] == ["ExecutionStarted", "StepScheduled"]
