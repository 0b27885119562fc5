"""Stubbed connectors for template tests: answers by step name, else the arguments echoed.

A list of answers is consumed one per call of the step (attempts and loop visits alike), the
last one repeating."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.ports import ConnectorError, StepCall
from schemas.template import StepAnswer

MAX_CALLS_PER_STEP = 100  # a loop in a template under test ends instead of running forever
CONNECTOR_NAMES = ("http", "python", "noop", "kafka.publish", "amqp.publish")


class StubConnector:
    """A connector named like a real one that never leaves the process. ``calls`` records
    (step, attempt, args) for every invocation."""

    def __init__(
        self, name: str, stubs: Mapping[str, StepAnswer | list[StepAnswer]], calls: list[tuple[str, int, Any]]
    ) -> None:
        self.name = name
        self._stubs = stubs
        self.calls = calls

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def invoke(self, call: StepCall) -> Any:
        self.calls.append((call.step, call.attempt, call.args))
        count = sum(1 for step, _, _ in self.calls if step == call.step)
        if count > MAX_CALLS_PER_STEP:
            raise ConnectorError("stub.loop", f"{call.step} called more than {MAX_CALLS_PER_STEP} times", retryable=False)
        stub = self._stubs.get(call.step)
        if stub is None:
            return call.args
        answer = stub[min(count, len(stub)) - 1] if isinstance(stub, list) else stub
        if answer.error is not None:
            raise ConnectorError(answer.error, answer.message, retryable=answer.retryable)
        return answer.output
