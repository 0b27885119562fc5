"""The engine test suite: whole workflows through a real Runtime, run against every backend.

Test modules parametrise the ``runtime_factory`` fixture over backends; the tests here only use
the Runtime's library API, so they mean the same thing on SQLite and on Kafka + Cassandra.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from connectors.base import ConnectorError, Connectors, StepCall
from orchestrator.runtime import Runtime
from schemas.builder import Branch, Workflow, retry
from schemas.definition import WorkflowDefinition

RuntimeFactory = Callable[[Connectors], AbstractAsyncContextManager[Runtime]]


class Scripted:
    """A connector whose calls fail ``fail_times`` times (from config) and are counted."""

    name = "scripted"

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def invoke(self, call: StepCall) -> Any:
        key = f"{call.execution_id}:{call.step}"
        self.calls[key] = self.calls.get(key, 0) + 1
        if call.config.get("fail_times", 0) >= call.attempt:
            raise ConnectorError("planned", "planned failure", retryable=True)
        if call.config.get("sleep"):
            await asyncio.sleep(call.config["sleep"])
        return {"step": call.step, "args": call.args, "attempt": call.attempt}


def kid_workflow() -> WorkflowDefinition:
    return Workflow("kid").task("k", "scripted", input={"x": "input.x"}).build()


def order_workflow() -> WorkflowDefinition:
    """Task, choice, parallel (a retried task; a task then a wait), an event, a child."""
    fast = retry(3, initial_seconds=0.01)
    return (
        Workflow("order", input_schema={"type": "object", "required": ["id"]})
        .task("check", "scripted", input={"id": "input.id"})
        .choice("route", [("input.id > `5`", "both")], default="done")
        .parallel(
            "both",
            Branch().task("pay", "scripted", config={"fail_times": 2}, retry=fast),
            Branch().task("stock", "scripted").wait("nap", seconds=0.05),
            next="approve",
        )
        .wait_for_event("approve", "approved", correlation_key="input.id", timeout_seconds=30, next="child")
        .subworkflow("child", "kid", input={"x": "input.id"}, next="done")
        .succeed("done", output="steps.child.args")
        .build()
    )


def chain_workflow(length: int = 5) -> WorkflowDefinition:
    workflow = Workflow("chain")
    for index in range(length):
        workflow.task(f"s{index}", "scripted")
    return workflow.build()


def waiter_workflow() -> WorkflowDefinition:
    return Workflow("waiter").wait_for_event("w", "go").succeed("done", output="steps.w").build()


class EngineSuite:
    """Subclasses provide the ``make_runtime`` fixture: a factory of started runtimes."""

    @pytest.fixture
    async def runtime(self, make_runtime: RuntimeFactory) -> AsyncIterator[tuple[Runtime, Scripted]]:
        scripted = Scripted()
        async with make_runtime(Connectors([scripted])) as runtime:
            yield runtime, scripted

    async def test_order_flow_with_parallel_retry_choice_event_and_child(
        self, runtime: tuple[Runtime, Scripted]
    ) -> None:
        rt, scripted = runtime
        await rt.register(kid_workflow())
        await rt.register(order_workflow())
        started = await rt.start_execution("order", {"id": 7})
        for _ in range(300):
            if await rt.publish_event("approved", "7", {"ok": True}):
                break
            await asyncio.sleep(0.02)
        state = await rt.wait(started.execution_id, timeout=30)
        assert state.status == "succeeded"
        assert state.output == {"x": 7}
        assert scripted.calls[f"{started.execution_id}:pay"] == 3
        history = await rt.history(started.execution_id)
        assert [e.sequence for e in history] == list(range(1, len(history) + 1))
        succeeded = [e.data["step"] for e in history if e.type == "StepSucceeded"]
        assert len(succeeded) == len(set(succeeded))

    async def test_dedup_key_starts_once(self, runtime: tuple[Runtime, Scripted]) -> None:
        rt, _ = runtime
        await rt.register(Workflow("one").task("a", "scripted").build())
        first = await rt.start_execution("one", {}, dedup_key="delivery-1")
        second = await rt.start_execution("one", {}, dedup_key="delivery-1")
        assert (first.created, second.created) == (True, False)
        assert first.execution_id == second.execution_id
        assert (await rt.wait(first.execution_id, timeout=30)).status == "succeeded"

    async def test_failure_goes_to_catch_then_fails(self, runtime: tuple[Runtime, Scripted]) -> None:
        rt, _ = runtime
        await rt.register(
            Workflow("catching")
            .task(
                "risky",
                "scripted",
                config={"fail_times": 5},
                retry=retry(2, initial_seconds=0.01),
                on_error="handle",
            )
            .succeed("ok")
            .fail("handle", error="Handled", cause="steps.risky.error.type")
            .build()
        )
        started = await rt.start_execution("catching")
        state = await rt.wait(started.execution_id, timeout=30)
        assert state.status == "failed"
        assert state.error == {"type": "Handled", "message": "planned"}

    async def test_cancel_and_signal(self, runtime: tuple[Runtime, Scripted]) -> None:
        rt, _ = runtime
        await rt.register(waiter_workflow())
        first = await rt.start_execution("waiter")
        second = await rt.start_execution("waiter")
        await rt.signal(first.execution_id, "go", {"n": 1})
        assert (await rt.wait(first.execution_id, timeout=30)).output == {"n": 1}
        cancelled = await rt.cancel(second.execution_id, "no longer needed")
        assert cancelled.status == "cancelled"

    async def test_many_concurrent_executions(self, runtime: tuple[Runtime, Scripted]) -> None:
        rt, _ = runtime
        await rt.register(chain_workflow())
        ids = [(await rt.start_execution("chain", {"n": n})).execution_id for n in range(50)]
        states = await asyncio.gather(*(rt.wait(i, timeout=60) for i in ids))
        assert {s.status for s in states} == {"succeeded"}
