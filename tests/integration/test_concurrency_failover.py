"""Concurrency limits across a SIGKILL on Kafka + Cassandra: two real worker processes, the one
admitting (the owner of commands partition 0) is killed while executions hold and wait for the
slots. The survivor takes the admission over (a newer epoch) and every execution completes; the
recorded slot events never show more than the limit held at once, and no execution is admitted
twice."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import pytest
import yaml

from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow
from tests.integration.conftest import TestKeyspace
from tests.integration.slots import admissions, most_held
from tests.integration.workers import REPO, spawn_worker, stop_workers

pytestmark = pytest.mark.integration
LIMIT = 3
EXECUTIONS = 12


def workflow_file(folder: Path) -> Path:
    capped = Workflow("capped", concurrency=[{"limit": LIMIT}])
    for i in range(2):
        capped.task(
            f"s{i}",
            "python",
            config={"function": "tests.integration.steps:pause"},
            input={"n": "input.n" if i == 0 else f"steps.s{i - 1}.n", "seconds": "`0.3`"},
        )
    path = folder / "capped.yaml"
    path.write_text(yaml.safe_dump(capped.to_dict()))
    return path


async def test_killing_the_admitting_worker_neither_leaks_nor_doubles_a_slot(
    kafka_url: str, cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    transport = f"{kafka_url}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}&partitions=4"
    log_url = f"{cassandra_keyspace.url}?feed_delay=0.3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(
        PYTHONPATH=str(REPO),
        ORCHESTRATOR_EVENT_LOG_URL=log_url,
        ORCHESTRATOR_TRANSPORT_URL=transport,
        ORCHESTRATOR_DEFINITIONS=str(workflow_file(tmp_path)),
        ORCHESTRATOR_PYTHON_ALLOW="tests",
        ORCHESTRATOR_HEARTBEAT_INTERVAL="0.5",
    )
    logs = [tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
    workers = [spawn_worker(env, log) for log in logs]
    api = Settings(event_log_url=log_url, transport_url=f"{transport}&role=api", python_allow=("tests",))
    try:
        async with Runtime(api) as runtime:

            async def admitter() -> int | None:
                """The index of the worker owning commands partition 0, once both own some."""
                for worker, log in zip(workers, logs, strict=True):
                    assert worker.poll() is None, log.read_text()[-3000:]
                nodes = [n for n in await runtime.nodes.nodes() if not n.stopped and n.shards]
                pids = {n.pid: n.shards for n in nodes}
                owners = [i for i, w in enumerate(workers) if 0 in (pids.get(w.pid) or ())]
                return owners[0] if len(pids.keys() & {w.pid for w in workers}) == 2 and owners else None

            owner = None
            for _ in range(600):
                if "capped" in {d.name for d in await runtime.registry.list()}:
                    owner = await admitter()
                    if owner is not None:
                        break
                await asyncio.sleep(0.1)
            assert owner is not None, "the workers did not share the partitions"
            started = [await runtime.start_execution("capped", {"n": n}) for n in range(EXECUTIONS)]
            ids = [s.execution_id for s in started]

            async def admitted() -> int:
                return sum([admissions(await runtime.history(i)) > 0 for i in ids])

            for _ in range(600):
                if await admitted() >= LIMIT + 1:  # slots were given back and granted again
                    break
                await asyncio.sleep(0.1)
            workers[owner].send_signal(signal.SIGKILL)
            assert await admitted() <= EXECUTIONS - LIMIT, "the kill came too late to prove anything"
            states = await asyncio.gather(*(runtime.wait(i, timeout=180) for i in ids))
            assert workers[owner].wait(5) == -signal.SIGKILL
            survivor = workers[1 - owner]
            assert survivor.poll() is None, logs[1 - owner].read_text()[-3000:]
            assert {s.status for s in states} == {"succeeded"}
            histories = [await runtime.history(i) for i in ids]
    finally:
        stop_workers(workers)

    assert [admissions(history) for history in histories] == [1] * EXECUTIONS
    assert most_held(histories) <= LIMIT
