"""A real ``orchestrator worker`` in Kafka mode serves its metrics on ORCHESTRATOR_METRICS_PORT."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
EXECUTIONS = 5
LISTENING = re.compile(r"metrics on (http://\S+)/metrics")


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return str(response.read().decode())


def listening_url(log: Path, worker: subprocess.Popen[bytes]) -> str | None:
    found = LISTENING.search(log.read_text(errors="replace"))
    assert worker.poll() is None, log.read_text()[-3000:]
    return found.group(1) if found else None


def spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "orchestrator", "worker"]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)


async def test_the_worker_listener_serves_metrics_in_kafka_mode(
    kafka_url: str, cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    transport = f"{kafka_url}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}&partitions=2"
    definition = tmp_path / "pinged.yaml"
    definition.write_text(yaml.safe_dump(Workflow("pinged").task("ping", "noop").to_dict()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(
        PYTHONPATH=str(REPO),
        ORCHESTRATOR_EVENT_LOG_URL=cassandra_keyspace.url,
        ORCHESTRATOR_TRANSPORT_URL=transport,
        ORCHESTRATOR_DEFINITIONS=str(definition),
        ORCHESTRATOR_METRICS_PORT="0",
    )
    log = tmp_path / "worker.log"
    worker = spawn_worker(env, log)
    try:
        url = None
        for _ in range(300):
            if (url := listening_url(log, worker)) is not None:
                break
            await asyncio.sleep(0.1)
        assert url is not None, log.read_text()[-3000:]
        api = Settings(event_log_url=cassandra_keyspace.url, transport_url=f"{transport}&role=api")
        async with Runtime(api) as runtime:
            for _ in range(300):  # the worker registers the definition once it is up
                if "pinged" in {d.name for d in await runtime.registry.list()}:
                    break
                await asyncio.sleep(0.1)
            started = [await runtime.start_execution("pinged", {}) for _ in range(EXECUTIONS)]
            for one in started:
                assert (await runtime.wait(one.execution_id, timeout=60)).status == "succeeded"
        found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for _ in range(100):  # lag and lanes are reported about once a second
            text = await asyncio.to_thread(scrape, url)
            found = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            names = {name for name, _ in found}
            if {"orchestrator_kafka_transport_uncommitted_records", "orchestrator_consumer_lag_records"} <= names:
                break
            await asyncio.sleep(0.2)
        completed = (("status", "succeeded"), ("workflow", "pinged"))
        assert found[("orchestrator_executions_completed_total", completed)] == EXECUTIONS
        step = (("connector", "noop"), ("outcome", "succeeded"))
        assert found[("orchestrator_step_duration_seconds_count", step)] == EXECUTIONS
        assert found[("orchestrator_step_schedule_to_start_seconds_count", (("connector", "noop"),))] == EXECUTIONS
        groups = {dict(labels)["group"] for name, labels in found if name == "orchestrator_consumer_lag_records"}
        assert groups and all(group.startswith(prefix) for group in groups)
        lanes = [labels for name, labels in found if name == "orchestrator_kafka_transport_in_flight_records"]
        assert lanes and all(dict(labels)["topic"].startswith(prefix) for labels in lanes)
        appends = (("backend", "CassandraEventLog"), ("outcome", "ok"))
        assert found[("orchestrator_event_log_append_duration_seconds_count", appends)] >= EXECUTIONS
        checked = await asyncio.to_thread(promtool_check, text)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
