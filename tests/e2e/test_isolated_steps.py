"""Isolated python steps: real child processes stopped at their CPU, memory and wall limits, the
pool replacing them, and what each attempt used recorded on its outcome event."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from connectors.base import ConnectorError, StepCall
from connectors.process_pool import Limits, ProcessPool
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow, retry
from schemas.definition import WorkflowDefinition

MODULE = "tests.e2e.isolated_steps"
ALLOW = (MODULE,)  # the python connector calls only allowed modules


def call(function: str, args: object = None, **config: object) -> StepCall:
    return StepCall("ex", "w", "s", 1, "key", config={"function": f"{MODULE}:{function}", **config}, args=args)


@pytest.fixture
async def pool() -> ProcessPool:
    pool = ProcessPool(size=2)
    await pool.start()
    yield pool  # type: ignore[misc]
    await pool.stop()


async def test_a_call_answers_with_what_it_used_and_prints_do_not_break_the_protocol(pool: ProcessPool) -> None:
    result = await pool.run(call("echo", {"value": [1, "a"]}), Limits(wall_seconds=30))
    assert result.output["echo"] == [1, "a"] and result.output["pid"] != os.getpid()
    assert result.cpu_seconds is not None and result.cpu_seconds >= 0
    assert result.peak_memory_bytes is not None and result.peak_memory_bytes > 1024 * 1024
    again = await pool.run(call("echo", {"value": 2}), Limits(wall_seconds=30))
    assert again.output["pid"] == result.output["pid"]  # the child is kept for the next call
    assert pool.replaced == 0


async def test_a_cpu_burner_is_stopped_at_its_cpu_budget(pool: ProcessPool) -> None:
    began = time.monotonic()
    with pytest.raises(ConnectorError) as caught:
        await pool.run(call("burn", {"seconds": 60}), Limits(cpu_seconds=1, wall_seconds=60))
    assert caught.value.type == "resource.cpu" and caught.value.retryable is False
    assert time.monotonic() - began < 30
    assert pool.replaced == 1
    assert (await pool.run(call("echo"), Limits(wall_seconds=30))).output["echo"] is None  # a fresh child


async def test_a_memory_hog_is_stopped_at_its_memory_budget(pool: ProcessPool) -> None:
    with pytest.raises(ConnectorError) as caught:
        await pool.run(call("hog", {"megabytes": 2048}), Limits(memory_bytes=128 * 1024 * 1024, wall_seconds=60))
    assert caught.value.type == "resource.memory"
    assert pool.replaced == 1
    small = await pool.run(call("hog", {"megabytes": 16}), Limits(memory_bytes=128 * 1024 * 1024, wall_seconds=60))
    assert small.output == 16


async def test_past_its_wall_time_the_whole_process_group_is_killed(pool: ProcessPool, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    began = time.monotonic()
    with pytest.raises(ConnectorError) as caught:
        await pool.run(call("sleepy", {"seconds": 60, "pid_file": str(pid_file)}), Limits(wall_seconds=2))
    assert caught.value.type == "timeout" and caught.value.retryable
    assert time.monotonic() - began < 10
    grandchild = int(pid_file.read_text())
    for _ in range(50):
        if not _alive(grandchild):
            break
        await asyncio.sleep(0.1)
    assert not _alive(grandchild), "the step's own child process survived"


async def test_a_crashing_child_is_a_retryable_error_and_is_replaced(pool: ProcessPool) -> None:
    with pytest.raises(ConnectorError) as caught:
        await pool.run(call("crash", {}), Limits(wall_seconds=30))
    assert caught.value.type == "isolation.crashed" and caught.value.retryable
    assert pool.replaced == 1


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def definition(name: str, function: str, args: dict[str, object], **config: object) -> WorkflowDefinition:
    flow = Workflow(name)
    flow.task("s", "python", config={"function": f"{MODULE}:{function}", "isolation": "process", **config}, input=args)
    return flow.build()


async def test_through_the_engine_limits_fail_the_step_with_typed_errors_and_usage_is_recorded(tmp_path: Path) -> None:
    settings = Settings(event_log_url=f"sqlite:///{tmp_path}/iso.db", python_allow=ALLOW)
    async with Runtime(settings) as runtime:
        await runtime.register(definition("ok", "echo", {"value": "`7`"}))
        await runtime.register(definition("burner", "burn", {"seconds": "`60`"}, limits={"cpu_seconds": 1}))
        ok = await runtime.start_execution("ok")
        burner = await runtime.start_execution("burner")
        assert (await runtime.wait(ok.execution_id, timeout=60)).status == "succeeded"
        failed = await runtime.wait(burner.execution_id, timeout=60)
        assert failed.status == "failed" and failed.error is not None and failed.error["type"] == "resource.cpu"
        [succeeded] = [e for e in await runtime.history(ok.execution_id) if e.type == "StepSucceeded"]
        used = succeeded.data["resources"]
        assert used["cpu_seconds"] >= 0 and used["peak_memory_bytes"] > 0 and used["wall_seconds"] > 0
        assert used["bytes_in"] == len('{"value":7}') and used["bytes_out"] > 0
        [fail] = [e for e in await runtime.history(burner.execution_id) if e.type == "StepFailed"]
        assert fail.data["resources"]["wall_seconds"] >= 1


async def test_a_timed_out_sync_step_no_longer_blocks_its_retry(tmp_path: Path) -> None:
    """In a thread, a sync function that timed out keeps running; isolated, it is killed and
    the retry starts at once."""
    settings = Settings(event_log_url=f"sqlite:///{tmp_path}/retry.db", python_allow=ALLOW)
    flow = Workflow("slow")
    flow.task(
        "s", "python", config={"function": f"{MODULE}:slow_first", "isolation": "process"},
        timeout_seconds=5, retry=retry(2, initial_seconds=0.1),
    )  # fmt: skip
    async with Runtime(settings) as runtime:
        await runtime.register(flow.build())
        began = time.monotonic()
        started = await runtime.start_execution("slow")
        done = await runtime.wait(started.execution_id, timeout=60)
        assert done.status == "succeeded" and done.output == {"attempt": 2}
        assert time.monotonic() - began < 25  # not the 60 s the first attempt would have slept


async def test_the_default_isolation_comes_from_settings(tmp_path: Path) -> None:
    settings = Settings(event_log_url=f"sqlite:///{tmp_path}/default.db", python_isolation="process", python_allow=ALLOW)
    flow = Workflow("plain")
    flow.task("s", "python", config={"function": f"{MODULE}:echo"})
    async with Runtime(settings) as runtime:
        await runtime.register(flow.build())
        started = await runtime.start_execution("plain")
        done = await runtime.wait(started.execution_id, timeout=60)
        assert done.status == "succeeded" and done.output["pid"] != os.getpid()
