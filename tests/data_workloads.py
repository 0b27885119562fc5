"""Real histories for the export / import / verify tests: workflows run through a real Runtime."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from orchestrator.core.state import ExecutionState, fold
from orchestrator.ports import EventLog, ExecutionQuery
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Branch, Workflow, retry
from schemas.envelope import Envelope


def definitions() -> list[Workflow]:
    return [
        Workflow("greet").task("hello", "noop", input={"name": "input.name"}).succeed("done"),
        # a second version of greet: every version must travel
        Workflow("greet", description="v2")
        .task("hello", "noop", input={"name": "input.name"}, retry=retry(2, initial_seconds=0.01))
        .parallel("both", Branch().task("left", "noop"), Branch().wait("pause", seconds=0.01))
        .succeed("done"),
        Workflow("kid").task("work", "noop", input={"x": "input.x"}).succeed("done"),
        Workflow("parent")
        .task("prepare", "noop")
        .subworkflow("child", "kid", input={"x": "input.n"}, next="done")
        .succeed("done", output="steps.child"),
        Workflow("broken").task("try", "noop").fail("boom", error="Boom", cause="planned"),
    ]


async def run_workloads(runtime: Runtime) -> list[str]:
    """Register every definition, run one execution of each to its end; all execution ids."""
    started: list[str] = []
    for workflow in definitions():
        stored = await runtime.register(workflow.build())
        result = await runtime.start_execution(stored.name, {"name": "ada", "n": 7}, version=stored.version)
        started.append(result.execution_id)
    for execution_id in started:
        await runtime.wait(execution_id, timeout=20)
    return sorted(await all_ids(runtime.log))  # children included


async def seed(url: str) -> list[str]:
    """Run the workloads on the event log at ``url`` (SQLite: a file that stays)."""
    async with Runtime(Settings(event_log_url=url)) as runtime:
        return await run_workloads(runtime)


def seed_sync(url: str) -> list[str]:
    return asyncio.run(seed(url))


async def all_ids(log: EventLog) -> list[str]:
    page = await log.list_executions(ExecutionQuery(limit=1000))
    return [s.execution_id for s in page.items]


async def histories(log: EventLog, ids: Sequence[str]) -> dict[str, list[Envelope]]:
    return {execution_id: await log.read(execution_id) for execution_id in ids}


def states(histories: dict[str, list[Envelope]]) -> dict[str, ExecutionState | None]:
    return {execution_id: fold(events) for execution_id, events in histories.items()}


def as_bytes(histories: dict[str, list[Envelope]]) -> dict[str, list[bytes]]:
    return {execution_id: [e.to_bytes() for e in events] for execution_id, events in histories.items()}
