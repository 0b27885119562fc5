"""Where the engine accepts a command it checks the caller's tenant again: a command for an
execution of another tenant is UnknownExecution and changes nothing, whatever the caller checked."""

from __future__ import annotations

import pytest

from orchestrator.backends.memory import MemoryEventLog, MemoryRegistry
from orchestrator.core.commands import CancelExecution, DeliverEvent, StartExecution
from orchestrator.engine.engine import Engine
from orchestrator.ports import UnknownExecution
from orchestrator.runtime import ExecutionNotFound
from schemas.builder import Workflow

EX = "ex-1"
NOW = 1_700_000_000.0


async def engine() -> Engine:
    registry = MemoryRegistry()
    await registry.register(Workflow("wf").wait_for_event("w", "go").build())
    engine = Engine(MemoryEventLog(), registry, clock=lambda: NOW)
    await engine.handle(StartExecution(execution_id=EX, now=NOW, workflow="wf", version=1, tenant="acme"))
    return engine


@pytest.mark.parametrize(
    "command",
    [
        CancelExecution(execution_id=EX, now=NOW + 1, actor="key:mallory", reason="not yours"),
        DeliverEvent(execution_id=EX, now=NOW + 1, actor="key:mallory", name="go", payload={"x": 1}),
    ],
)
async def test_a_command_for_another_tenants_execution_is_not_found(command: object) -> None:
    subject = await engine()
    assert isinstance(command, CancelExecution | DeliverEvent)
    with pytest.raises(UnknownExecution):
        await subject.handle(command, tenant="globex")
    assert [e.type for e in await subject.log.read(EX)] == ["ExecutionStarted", "EventAwaited"]
    committed = await subject.handle(command, tenant="acme")  # its own tenant: applied
    assert committed is not None and committed.events


async def test_without_a_tenant_the_engine_serves_system_commands() -> None:
    subject = await engine()
    committed = await subject.handle(CancelExecution(execution_id=EX, now=NOW + 1))
    assert committed is not None and committed.after.status == "cancelled"


def test_the_runtime_error_is_the_same_not_found() -> None:
    assert issubclass(ExecutionNotFound, UnknownExecution)
