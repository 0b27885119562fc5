"""The recovery sweep on Kafka + Cassandra: executions whose effects were lost finish without a restart.

An API process that dies between an append and its effects is simulated by a ``role=api``
runtime whose effects observer is removed: its starts and signals are appended, and nothing is
dispatched. A real worker process sweeps its partitions and resumes them. The Cassandra idle
index is also driven directly, with a clock the test sets.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestrator.backends.cassandra.event_log import CassandraEventLog
from orchestrator.core.events import EXECUTION_SUCCEEDED
from orchestrator.core.timefmt import parse_rfc3339
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow
from tests.contracts.factories import at, event, started
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
WAIT = 45.0


def definition_file(folder: Path) -> Path:
    flow = Workflow("swept")
    flow.task("first", "noop")
    flow.wait_for_event("approval", "go")
    flow.task("second", "noop")
    flow.succeed("done")
    path = folder / "swept.yaml"
    path.write_text(yaml.safe_dump(flow.to_dict()))
    return path


def transport_url(kafka_url: str) -> str:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return f"{kafka_url}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}&partitions=4"


@pytest.fixture
def worker_env(kafka_url: str, cassandra_keyspace: TestKeyspace, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(
        PYTHONPATH=str(REPO),
        ORCHESTRATOR_EVENT_LOG_URL=cassandra_keyspace.url,
        ORCHESTRATOR_TRANSPORT_URL=transport_url(kafka_url),
        ORCHESTRATOR_DEFINITIONS=str(definition_file(tmp_path)),
        ORCHESTRATOR_RECOVERY_INTERVAL="1",
        ORCHESTRATOR_RECOVERY_GRACE="1",
    )
    return env


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "worker"],
        cwd=REPO,
        env=worker_env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        print(log.read_text()[-5000:])  # shown when a test fails


def dead_api(env: dict[str, str], **changes: object) -> Runtime:
    """An API runtime that appends and then 'dies' before any effect: nothing is dispatched."""
    settings = Settings(
        event_log_url=env["ORCHESTRATOR_EVENT_LOG_URL"],
        transport_url=env["ORCHESTRATOR_TRANSPORT_URL"] + "&role=api",
    ).with_overrides(**changes)
    runtime = Runtime(settings)
    runtime.engine.observers.remove(runtime.effects.on_committed)
    return runtime


async def until_registered(runtime: Runtime, worker: subprocess.Popen[bytes]) -> None:
    for _ in range(300):  # the worker registers the definition once it is up
        if "swept" in {d.name for d in await runtime.registry.list()}:
            return
        assert worker.poll() is None, "the worker died"
        await asyncio.sleep(0.1)
    raise AssertionError("the worker did not register the definition")


async def until_status(runtime: Runtime, execution_id: str, wanted: str, timeout: float = WAIT) -> float:
    """Seconds until the execution has ``wanted`` status (or is waiting for ``go``)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        state = await runtime.state(execution_id)
        if state.status == wanted or (wanted == "waiting" and "approval" in state.active):
            return time.monotonic() - began
        await asyncio.sleep(0.1)
    raise AssertionError(f"{execution_id} is not {wanted} after {timeout}s: {state.status} {state.active}")


async def test_a_lost_start_and_a_lost_signal_are_resumed_by_the_sweep(
    worker_env: dict[str, str],
    worker: subprocess.Popen[bytes],
    cassandra_keyspace: TestKeyspace,
    tmp_path: Path,
) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    async with dead_api(worker_env) as api:
        await until_registered(api, worker)
        execution_id = (await api.start_execution("swept", {"n": 1})).execution_id
        assert [e.type for e in await api.history(execution_id)] == ["ExecutionStarted", "StepScheduled"]
        took = await until_status(api, execution_id, "waiting")  # the first step ran: resumed
        print(f"lost start resumed in {took:.1f}s")
        await api.signal(execution_id, "go")  # appended by the dead API: the second step is not dispatched
        took = await until_status(api, execution_id, "succeeded")
        print(f"lost signal resumed in {took:.1f}s")
        history = await api.history(execution_id)
    finished = [e.data["step"] for e in history if e.type == "StepSucceeded"]
    assert finished.count("first") == 1 and finished.count("second") == 1


async def test_without_the_sweep_a_lost_start_waits(
    worker_env: dict[str, str], cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    """A guard: the test above fails when nothing sweeps."""
    await cassandra_keyspace.empty_once(tmp_path)
    worker = Settings(
        event_log_url=worker_env["ORCHESTRATOR_EVENT_LOG_URL"],
        transport_url=worker_env["ORCHESTRATOR_TRANSPORT_URL"],
        recovery_interval=0,
    )
    async with Runtime(worker) as runtime, dead_api(worker_env) as api:
        await runtime.register(Workflow("alone").task("only", "noop").build())
        execution_id = (await api.start_execution("alone")).execution_id
        await asyncio.sleep(4)  # several intervals and graces of the test above
        assert (await runtime.summary(execution_id)).status == "running"
        assert runtime.recovery is None


# -- the Cassandra idle index, driven directly -------------------------------------------------------


class Halves:
    def shard_of(self, execution_id: str) -> int:
        return 0 if execution_id.startswith("a") else 1

    def owned_shards(self) -> set[int] | None:
        return {0, 1}


async def test_the_cassandra_index_resumes_idle_executions_of_a_shard_once_per_position(
    cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    log = CassandraEventLog.from_url(cassandra_keyspace.url)
    log.shards = Halves()
    resumed: list[str] = []

    async def resume(execution_id: str) -> None:
        resumed.append(execution_id)

    async def sweep(shard: int, seconds: float) -> list[str]:
        resumed.clear()
        await log.sweep_idle(shard, parse_rfc3339(at(seconds)), 60.0, resume)
        return sorted(resumed)

    await log.start()
    try:
        for execution_id, seconds in (("a-idle", 0), ("a-done", 0), ("a-late", 50), ("b-other", 0)):
            await log.append(execution_id, 0, [started(execution_id, time=at(seconds))])
        await log.append("a-done", 1, [event("a-done", 2, EXECUTION_SUCCEEDED, time=at(10))])
        assert await sweep(0, 30) == []  # nothing is idle for 60 s yet
        assert await sweep(0, 70) == ["a-idle"]  # a-late started 20 s ago; a-done finished
        assert await sweep(0, 100) == []  # resumed at this position: looked at again later
        assert await sweep(0, 130) == ["a-late"]
        await log.append("a-idle", 1, [event("a-idle", 2, time=at(140))])  # it moved
        assert await sweep(0, 150) == []
        assert await sweep(0, 250) == ["a-idle"]  # idle again at its new position
        assert await sweep(1, 250) == ["b-other"]  # the other shard, by its owner
        await log.append("a-late", 1, [event("a-late", 2, EXECUTION_SUCCEEDED, time=at(260))])
        assert await sweep(0, 2000) == []  # a-idle: resumed at this position; a-late: finished
    finally:
        await log.stop()
    rows = cassandra_keyspace.admin.execute(
        f"SELECT shard, execution_id FROM {cassandra_keyspace.name}.recovery_checks"
    )
    assert sorted((r.shard, r.execution_id) for r in rows) == [(0, "a-idle"), (1, "b-other")]
    (mark,) = cassandra_keyspace.admin.execute(
        f"SELECT bucket FROM {cassandra_keyspace.name}.recovery_progress WHERE shard = 0"
    )
    assert mark.bucket * 60 > parse_rfc3339(at(0))  # old buckets are done: sweeps do not read them again
