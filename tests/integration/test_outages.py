"""Outages: stop Kafka or Cassandra for a few seconds mid-run; nothing is lost, the run finishes.

Also: an unreachable server at start gives one clear message naming the URL, not a traceback.
These tests stop and restart the shared servers through scripts/services, so they restore them
whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors.defaults import default_connectors
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow, retry
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services"
EXECUTIONS = 40
STEPS = 5


def services(*args: str) -> None:
    result = subprocess.run([str(SERVICES), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.fixture
async def runtime(kafka_url: str, cassandra_keyspace: TestKeyspace, tmp_path: Path) -> AsyncIterator[Runtime]:
    await cassandra_keyspace.empty_once(tmp_path)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    settings = Settings(
        event_log_url=cassandra_keyspace.url,
        transport_url=f"{kafka_url}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}&partitions=4",
        python_allow=("tests",),
    )
    chain = Workflow("chain")
    for index in range(STEPS):
        chain.task(
            f"s{index}",
            "python",
            config={"function": "tests.integration.steps:pause"},
            input={"n": "input.n" if index == 0 else f"steps.s{index - 1}.n", "seconds": "`0.1`"},
            retry=retry(20, initial_seconds=0.5, max_seconds=5),
        )
    async with Runtime(settings, connectors=default_connectors(settings=settings)) as runtime:
        await runtime.register(chain.build())
        yield runtime


async def run_through_outage(runtime: Runtime, service: str, down_seconds: float) -> None:
    started = await asyncio.gather(*(runtime.start_execution("chain", {"n": 0}) for _ in range(EXECUTIONS)))
    ids = [s.execution_id for s in started]
    await asyncio.sleep(0.5)  # steps in flight
    try:
        await asyncio.to_thread(services, "stop", service)
        await asyncio.sleep(down_seconds)
    finally:
        await asyncio.to_thread(services, "start", service)
    states = await asyncio.gather(*(runtime.wait(i, timeout=240) for i in ids))
    assert {s.status for s in states} == {"succeeded"}
    assert {s.output["n"] for s in states} == {STEPS}
    for execution_id in ids:
        history = await runtime.history(execution_id)
        assert [e.sequence for e in history] == list(range(1, len(history) + 1))
        completed = [e.data["step"] for e in history if e.type == "StepSucceeded"]
        assert sorted(completed) == [f"s{i}" for i in range(STEPS)]


async def test_kafka_outage_mid_run(runtime: Runtime) -> None:
    await run_through_outage(runtime, "kafka", down_seconds=4)


async def test_cassandra_outage_mid_run(runtime: Runtime) -> None:
    await run_through_outage(runtime, "cassandra", down_seconds=4)


@pytest.mark.parametrize(
    ("variable", "url", "named"),
    [
        ("ORCHESTRATOR_EVENT_LOG_URL", "cassandra://127.0.0.1:1/orchestrator", "cassandra://127.0.0.1:1"),
        ("ORCHESTRATOR_TRANSPORT_URL", "kafka://127.0.0.1:1", "kafka://127.0.0.1:1"),
    ],
)
def test_an_unreachable_server_at_start_is_one_clear_message(
    variable: str, url: str, named: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(PYTHONPATH=str(REPO), ORCHESTRATOR_EVENT_LOG_URL=f"sqlite:///{tmp_path}/x.db")
    env[variable] = url
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "worker"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0], result.stderr
