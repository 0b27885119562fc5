"""Two real worker processes on Kafka + Cassandra share a schedule; SIGKILL its owner: the
survivor takes the shard over and every fire time starts exactly one execution, none skipped."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.urls import SCHEDULE_STATES, open_backend
from orchestrator.ports import ExecutionQuery
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.definition import ScheduleTrigger
from tests.integration.conftest import TestKeyspace
from triggers.schedule_fires import Schedule

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
TRIGGER = {"name": "each-second", "cron": "* * * * * *", "catchup": "all", "catchup_window": "5m", "overlap": "allow"}
DEFINITION = """\
name: ticker
triggers:
  - {type: schedule, name: each-second, cron: "* * * * * *", catchup: all, catchup_window: 5m, overlap: allow}
steps:
  - {name: done, type: succeed}
"""
FIRED_HERE = re.compile(r"schedule default/ticker/each-second: fired here")


def spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "-v", "worker"],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


async def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.2)


async def test_sigkill_the_owner_of_a_schedule(kafka_url: str, cassandra_keyspace: TestKeyspace, tmp_path: Path) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    prefix = f"s{uuid.uuid4().hex[:10]}"
    transport = f"{kafka_url}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}&partitions=4"
    (tmp_path / "ticker.yaml").write_text(DEFINITION)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(
        PYTHONPATH=str(REPO),
        ORCHESTRATOR_EVENT_LOG_URL=cassandra_keyspace.url,
        ORCHESTRATOR_TRANSPORT_URL=transport,
        ORCHESTRATOR_DEFINITIONS=str(tmp_path / "ticker.yaml"),
        ORCHESTRATOR_TRIGGER_POLL_INTERVAL="1",
    )
    logs = [tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
    workers = [spawn_worker(env, log) for log in logs]

    def owner() -> int | None:
        """The worker whose last word on the schedule is that it fires it."""
        for index, log in enumerate(logs):
            lines = [line for line in log.read_text(errors="replace").splitlines() if "ticker/each-second: fired" in line]
            if lines and FIRED_HERE.search(lines[-1]) and workers[index].poll() is None:
                return index
        return None

    api = Settings(event_log_url=cassandra_keyspace.url, transport_url=f"{transport}&role=api")
    schedule = Schedule("ticker", ScheduleTrigger(**TRIGGER))
    try:
        async with Runtime(api) as runtime:

            async def fired() -> list[str]:
                page = await runtime.list_executions(ExecutionQuery(workflow="ticker", limit=1000))
                return [s.execution_id for s in page.items]

            await wait_until(lambda: owner() is not None, 90, "one worker owns the schedule")
            await asyncio.sleep(6)  # both in the group, the schedule firing
            killed = owner()
            assert killed is not None
            before = len(await fired())
            assert before >= 3, "nothing fired before the kill"
            workers[killed].send_signal(signal.SIGKILL)
            survivor = 1 - killed
            await wait_until(lambda: owner() == survivor, 60, "the survivor takes the schedule over")
            await asyncio.sleep(5)
            workers[survivor].send_signal(signal.SIGTERM)  # a clean stop: it finishes what it decided
            assert workers[survivor].wait(30) == 0, logs[survivor].read_text()[-3000:]
            record = await _states(cassandra_keyspace.url, schedule.key)
            assert record["pending"] == []
            ids = await fired()
            times = sorted([await _scheduled(runtime, i) for i in ids])
            assert len(times) > before + 5
            expected = [times[0] + k for k in range(int(times[-1] - times[0]) + 1)]
            assert times == expected, "a fire time started twice or never"
            assert sorted(ids) == sorted(schedule.execution_id(t, "scheduled") for t in times)
            assert times[-1] <= record["cursor"]
            assert record["counts"]["skipped"] == 0
            print(f"{len(times)} fire times, one execution each; worker {killed} killed after {before}")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)


async def _scheduled(runtime: Runtime, execution_id: str) -> float:
    [started] = await runtime.log.read(execution_id, limit=1)
    text = started.data["metadata"]["schedule"]["scheduled_time"]
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _states(url: str, key: str) -> dict[str, Any]:
    states = open_backend(SCHEDULE_STATES, url, "schedule states")
    await states.start()
    try:
        return dict((await states.load(key)).body)
    finally:
        await states.stop()
