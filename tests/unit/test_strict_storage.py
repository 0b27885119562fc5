"""Everything stored and emitted is strict JSON: the envelope encoder, the engine's last guard,
the worker's check of step outputs, and the runtime's check of inputs and payloads."""

from __future__ import annotations

import math
from typing import Any

import pytest

from orchestrator.backends.memory import MemoryEventLog, MemoryRegistry
from orchestrator.core.commands import Command, CompleteStep, FailStep, StartExecution
from orchestrator.core.machine import CommandRejected
from orchestrator.engine.engine import Engine, UnencodableEvents
from orchestrator.engine.worker import Worker
from orchestrator.ports import StepCall, StepTask
from orchestrator.runtime import InputInvalid, Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow
from schemas.envelope import Envelope, EnvelopeError
from schemas.strict_json import StrictJSONError

T0 = 1_700_000_000.0
FIELDS: dict[str, Any] = {
    "id": "e-1", "type": "StepSucceeded", "subject": "ex-1", "sequence": 1,
    "time": "2023-11-14T22:13:20Z", "workflow": "wf", "workflowversion": 1,
}  # fmt: skip


@pytest.mark.parametrize("data", [{"x": math.inf}, [math.nan], {"s": "\udc80"}, {"o": object()}])
def test_the_envelope_encoder_refuses_what_strict_json_cannot_hold(data: Any) -> None:
    with pytest.raises(EnvelopeError, match="StepSucceeded #1 of ex-1: the event data is not strict JSON"):
        Envelope.sealed("", **FIELDS, data=data)
    with pytest.raises(EnvelopeError, match="not strict JSON"):
        Envelope(**FIELDS, data=data).to_bytes()
    assert b'"data":{"x":1.5}' in Envelope.sealed("", **FIELDS, data={"x": 1.5}).to_bytes()


async def test_the_engine_stores_nothing_it_cannot_encode() -> None:
    registry = MemoryRegistry()
    await registry.register(Workflow("wf").task("a", "noop").build())
    engine = Engine(MemoryEventLog(), registry, clock=lambda: T0)
    start = StartExecution(execution_id="ex-1", now=T0, workflow="wf", version=1, input={"n": math.nan})
    with pytest.raises(UnencodableEvents, match=r"StartExecution not applied: .*not strict JSON") as caught:
        await engine.handle(start)
    assert isinstance(caught.value, CommandRejected)  # the API's 409, the transports' "drop it"
    assert await engine.log.read("ex-1") == [] and await engine.log.summary("ex-1") is None
    await engine.handle(StartExecution(execution_id="ex-1", now=T0, workflow="wf", version=1, input={"n": 1}))
    assert [e.type for e in await engine.log.read("ex-1")] == ["ExecutionStarted", "StepScheduled"]


class _Returning:
    name = "returning"

    def __init__(self, output: Any) -> None:
        self.output = output

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def invoke(self, call: StepCall) -> Any:
        return self.output


class _Submitted:
    def __init__(self) -> None:
        self.commands: list[Command] = []

    async def submit(self, command: Command) -> None:
        self.commands.append(command)


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (math.inf, "output: inf is not a JSON number"),
        ({"ratio": math.nan}, "output at ratio: nan is not a JSON number"),
        ({1, 2}, "(set) is not a JSON value"),
        ({"big": 10**5000}, "longer than 4300 digits"),
    ],
)
async def test_a_step_returning_what_json_cannot_hold_fails_without_retry(output: Any, reason: str) -> None:
    connector = _Returning(output)
    transport = _Submitted()
    worker = Worker(_Lookup(connector), transport, lambda: T0)  # type: ignore[arg-type]
    await worker.run(_task())
    [command] = transport.commands
    assert isinstance(command, FailStep)
    assert command.error.type == "invalid_output" and command.error.retryable is False
    assert reason in command.error.message and "returning step 's'" in command.error.message


async def test_a_step_returning_strict_json_completes() -> None:
    transport = _Submitted()
    worker = Worker(_Lookup(_Returning({"ok": [1, 2.5, None]})), transport, lambda: T0)  # type: ignore[arg-type]
    await worker.run(_task())
    assert transport.commands == [
        CompleteStep(execution_id="ex-1", now=T0, step="s", attempt_id="s:1:1", output={"ok": [1, 2.5, None]})
    ]


class _Lookup:
    def __init__(self, connector: _Returning) -> None:
        self.connector = connector

    def get(self, name: str) -> _Returning:
        return self.connector


def _task() -> StepTask:
    return StepTask(
        execution_id="ex-1", workflow="wf", step="s", attempt=1, attempt_id="s:1:1",
        connector="returning", config={}, args={}, idempotency_key="ex-1:s:1",
    )  # fmt: skip


async def test_the_runtime_refuses_inputs_and_payloads_that_are_not_strict_json() -> None:
    async with Runtime(Settings(event_log_url="memory://"), clock=lambda: T0) as runtime:
        await runtime.register(Workflow("wf").wait_for_event("w", "go").build())
        with pytest.raises(InputInvalid) as caught:
            await runtime.start_execution("wf", {"n": math.inf})
        assert [(p.location, p.message) for p in caught.value.problems] == [
            ("input", "not strict JSON: at n: inf is not a JSON number")
        ]
        started = await runtime.start_execution("wf", {"n": 1})
        with pytest.raises(StrictJSONError, match="payload: nan is not a JSON number"):
            await runtime.signal(started.execution_id, "go", math.nan)
        with pytest.raises(StrictJSONError, match="payload at x: a string with an unpaired surrogate"):
            await runtime.publish_event("go", None, {"x": "\ud800"})
        assert (await runtime.state(started.execution_id)).status == "running"
