"""Two real worker processes share the executions; SIGKILL one mid-flight, lose nothing.

Every execution completes on the survivor, each step completion appears exactly once in its
history, and sequences stay gap-free.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import yaml

from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow, retry
from tests.integration.conftest import TestKeyspace
from tests.integration.workers import REPO, spawn_worker, stop_workers

pytestmark = pytest.mark.integration
EXECUTIONS = 240
STEPS = 6


def workflow_file(folder: Path) -> Path:
    chain = Workflow("chain")
    for i in range(STEPS):
        chain.task(
            f"s{i}",
            "python",
            config={"function": "tests.integration.steps:pause"},
            input={"n": "input.n" if i == 0 else f"steps.s{i - 1}.n", "seconds": "`0.1`"},
            retry=retry(5, initial_seconds=0.2),
        )
    path = folder / "chain.yaml"
    path.write_text(yaml.safe_dump(chain.to_dict()))
    return path


async def test_sigkill_one_of_two_workers(
    kafka_url: str, cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    transport = f"{kafka_url}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}&partitions=8"
    definition = workflow_file(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(
        PYTHONPATH=str(REPO),
        ORCHESTRATOR_EVENT_LOG_URL=cassandra_keyspace.url,
        ORCHESTRATOR_TRANSPORT_URL=transport,
        ORCHESTRATOR_DEFINITIONS=str(definition),
        ORCHESTRATOR_PYTHON_ALLOW="tests",  # the step functions the workers may call
    )
    logs = [tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
    workers = [spawn_worker(env, log) for log in logs]
    api = Settings(event_log_url=cassandra_keyspace.url, transport_url=f"{transport}&role=api", python_allow=("tests",))
    try:
        async with Runtime(api) as runtime:
            for _ in range(300):  # the workers register the definition when they are up
                if "chain" in {d.name for d in await runtime.registry.list()}:
                    break
                for worker, log in zip(workers, logs, strict=True):
                    assert worker.poll() is None, log.read_text()[-3000:]
                await asyncio.sleep(0.1)
            started = await asyncio.gather(
                *(runtime.start_execution("chain", {"n": 0}) for _ in range(EXECUTIONS))
            )
            ids = [s.execution_id for s in started]
            await wait_for_progress(runtime, ids)
            workers[0].send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            running = [(await runtime.summary(i)).status == "running" for i in ids]
            assert sum(running) >= EXECUTIONS // 4, "the kill came too late to prove anything"
            try:
                states = await asyncio.gather(*(runtime.wait(i, timeout=120) for i in ids))
            except TimeoutError:
                for execution_id in ids:
                    if (await runtime.summary(execution_id)).status == "running":
                        history = await runtime.history(execution_id)
                        lines = [
                            f"{e.sequence} {e.type} {e.data.get('step')} {e.causationid}" for e in history
                        ]
                        raise AssertionError(f"{execution_id} stuck:\n" + "\n".join(lines)) from None
                raise
            recovery = time.monotonic() - killed_at
            assert workers[0].wait(5) == -signal.SIGKILL
            assert workers[1].poll() is None, logs[1].read_text()[-3000:]
            assert {s.status for s in states} == {"succeeded"}
            assert {s.output["n"] for s in states} == {STEPS}
            for execution_id in ids:
                history = await runtime.history(execution_id)
                assert [e.sequence for e in history] == list(range(1, len(history) + 1))
                completed = [e.data["step"] for e in history if e.type == "StepSucceeded"]
                assert sorted(completed) == sorted(f"s{i}" for i in range(STEPS)), execution_id
            print(f"all {EXECUTIONS} executions done {recovery:.1f}s after the kill")
    finally:
        stop_workers(workers)


async def wait_for_progress(runtime: Runtime, ids: list[str]) -> None:
    """Until the first executions have completed two of their steps (the rest are in flight)."""
    for _ in range(600):
        for execution_id in ids[:5]:
            history = await runtime.history(execution_id)
            if sum(e.type == "StepSucceeded" for e in history) >= 2:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("no progress before the kill")
