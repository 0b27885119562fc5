"""Prometheus metrics after known workloads: exact counts, histograms present, the text parsed by
the official parser and accepted by ``promtool check metrics``."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Histogram as ClientHistogram
from prometheus_client.parser import text_string_to_metric_families

from connectors.base import Connectors
from orchestrator.core.machine import CommandRejected
from orchestrator.observability.prometheus import OTHER, PrometheusInstruments
from orchestrator.observability.sampler import RunningSampler
from orchestrator.observability.series import Gauge, Histogram
from orchestrator.ports import ExecutionQuery
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow
from tests.unit.test_instrumentation import Steps, busy_workflow

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(metrics: PrometheusInstruments) -> Samples:
    """Every sample of the registry, parsed by prometheus_client's parser: (name, labels) -> value."""
    text = generate_latest(metrics.registry).decode()
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)


async def run_workload(rt: Runtime, metrics: PrometheusInstruments) -> tuple[str, int]:
    """One busy execution (a retry, two timers, a wait, a signal), two failing ones and a rejected
    cancel; returns the busy execution's id and how many executions ran while it waited."""
    await rt.register(busy_workflow())
    await rt.register(Workflow("bad").task("broken", "steps").build())
    busy = await rt.start_execution("busy", {}, dedup_key="k-1")
    assert not (await rt.start_execution("busy", {}, dedup_key="k-1")).created
    for _ in range(500):
        if "hold" in (await rt.state(busy.execution_id)).active:
            break
        await asyncio.sleep(0.01)
    running_while_waiting = await RunningSampler(rt.log, metrics).sample()
    parked = samples(metrics)
    assert value(parked, "orchestrator_waits_parked", backend="MemoryWaitIndex") == 1
    for key in ("b-1", "b-2"):
        bad = await rt.start_execution("bad", {}, dedup_key=key)
        assert (await rt.wait(bad.execution_id, timeout=10)).status == "failed"
    await rt.signal(busy.execution_id, "go")
    assert (await rt.wait(busy.execution_id, timeout=10)).status == "succeeded"
    with pytest.raises(CommandRejected):
        await rt.cancel(busy.execution_id)  # finished already
    return busy.execution_id, running_while_waiting


async def test_a_known_workload_gives_exact_counts(tmp_path: Path) -> None:
    metrics = PrometheusInstruments()
    settings = Settings(event_log_url=f"sqlite:///{tmp_path / 'o.db'}", transport_url="inprocess://?concurrency=4")
    async with Runtime(settings, connectors=Connectors([Steps()]), instruments=metrics) as rt:
        execution_id, running = await run_workload(rt, metrics)
        assert await RunningSampler(rt.log, metrics).sample() == 0
        history = await rt.history(execution_id)
        bad_events = 0
        for summary in (await rt.list_executions(ExecutionQuery(workflow="bad"))).items:
            bad_events += len(await rt.history(summary.execution_id))
    assert running == 1
    found = samples(metrics)
    assert value(found, "orchestrator_executions_started_total", workflow="busy") == 1  # not the duplicate
    assert value(found, "orchestrator_executions_started_total", workflow="bad") == 2
    assert value(found, "orchestrator_executions_completed_total", workflow="busy", status="succeeded") == 1
    assert value(found, "orchestrator_executions_completed_total", workflow="bad", status="failed") == 2
    assert value(found, "orchestrator_execution_duration_seconds_count", workflow="bad", status="failed") == 2
    busy_seconds = value(found, "orchestrator_execution_duration_seconds_sum", workflow="busy", status="succeeded")
    assert busy_seconds > 0.01  # it waited for its timer at least
    assert value(found, "orchestrator_executions_running") == 0
    step = "orchestrator_step_duration_seconds_count"
    assert value(found, step, connector="steps", outcome="succeeded") == 2  # ok, flaky's second attempt
    assert value(found, step, connector="steps", outcome="retryable") == 1
    assert value(found, step, connector="steps", outcome="failed") == 2  # broken, twice
    assert value(found, "orchestrator_step_retries_total", connector="steps") == 1
    assert value(found, "orchestrator_step_schedule_to_start_seconds_count", connector="steps") == 5
    assert value(found, "orchestrator_steps_running", connector="steps") == 0
    assert value(found, "orchestrator_tasks_queued", queue="inprocess.tasks") == 0
    assert value(found, "orchestrator_timer_lateness_seconds_count", backend="MemoryTimers") == 2
    assert value(found, "orchestrator_timers_pending", backend="MemoryTimers") == 0
    assert value(found, "orchestrator_waits_parked", backend="MemoryWaitIndex") == 0
    commands = "orchestrator_command_duration_seconds_count"
    assert value(found, commands, kind="StartExecution", outcome="applied") == 3
    assert value(found, commands, kind="StartExecution", outcome="duplicate") == 1
    assert value(found, commands, kind="CancelExecution", outcome="rejected") == 1
    assert value(found, "orchestrator_events_appended_total", backend="SQLiteEventLog") == len(history) + bad_events
    appends = value(found, "orchestrator_event_log_append_duration_seconds_count", backend="SQLiteEventLog", outcome="ok")
    grouped = value(found, "orchestrator_event_log_group_commit_appends_sum", backend="SQLiteEventLog")
    assert grouped == appends and value(
        found, "orchestrator_event_log_group_commit_appends_count", backend="SQLiteEventLog"
    ) <= appends
    bucket = ("orchestrator_step_duration_seconds_bucket", (("connector", "steps"), ("le", "+Inf"), ("outcome", "failed")))
    assert found[bucket] == 2
    assert any(name == "process_cpu_seconds_total" for name, _ in found)
    labels = {v for _, pairs in found for _, v in pairs}
    assert execution_id not in labels  # never an execution id


async def test_promtool_accepts_the_exposition_after_a_workload(tmp_path: Path) -> None:
    metrics = PrometheusInstruments()
    async with Runtime(
        Settings(event_log_url="memory://"), connectors=Connectors([Steps()]), instruments=metrics
    ) as rt:
        await run_workload(rt, metrics)
    metrics.consumer_lag("orchestrator-commands", "orchestrator.commands", 3, 7)
    metrics.transport_lane("orchestrator-commands", "orchestrator.commands", 3, 2, 5)
    metrics.trigger_outcome("webhook", "busy", "github", "started")
    metrics.http_request("GET", "/api/v1/executions/{execution_id}", 404, 0.001)
    metrics.appends_grouped("SQLiteEventLog", 3)
    text = generate_latest(metrics.registry).decode()
    checked = promtool_check(text)
    assert checked.returncode == 0 and checked.stdout.strip() == "", checked.stdout + checked.stderr


def test_promtool_check_can_fail() -> None:
    checked = promtool_check("# TYPE orchestrator_things counter\norchestrator_things 1\n")
    assert checked.returncode != 0 and "_total" in checked.stdout + checked.stderr


def test_workflow_labels_are_capped() -> None:
    metrics = PrometheusInstruments(workflow_labels=2, process_metrics=False)
    for workflow in ("a", "b", "c", "d", "a"):
        metrics.execution_started(workflow)
    metrics.trigger_outcome("kafka", "d", "orders", "started")
    found = samples(metrics)
    started = {dict(labels)["workflow"]: v for (name, labels), v in found.items() if name.endswith("started_total")}
    assert started == {"a": 2, "b": 1, OTHER: 2}
    assert value(found, "orchestrator_trigger_messages_total", kind="kafka", workflow=OTHER, trigger=OTHER, outcome="started") == 1
    none = PrometheusInstruments(workflow_labels=0, process_metrics=False)
    none.execution_finished("a", "failed", None)
    found = samples(none)
    assert value(found, "orchestrator_executions_completed_total", workflow=OTHER, status="failed") == 1
    assert not [k for k in found if k[0].startswith("orchestrator_execution_duration_seconds_count")]


def test_a_partition_series_expires_once_it_is_not_refreshed() -> None:
    now = [100.0]
    metrics = PrometheusInstruments(process_metrics=False, clock=lambda: now[0])
    metrics.consumer_lag("g", "t", 0, 5)
    metrics.consumer_lag("g", "t", 1, 9)
    now[0] += 20
    metrics.consumer_lag("g", "t", 1, 4)
    assert value(samples(metrics), "orchestrator_consumer_lag_records", group="g", topic="t", partition="0") == 5
    now[0] += 15  # partition 0 not refreshed for 35 s: revoked
    found = samples(metrics)
    lags = {dict(labels)["partition"]: v for (name, labels), v in found.items() if name == "orchestrator_consumer_lag_records"}
    assert lags == {"1": 4}


def test_histograms_match_the_client_library_bucket_for_bucket() -> None:
    buckets = (0.1, 0.5, 1.0, 10.0)
    ours = Histogram("h_seconds", "x", ("a",), buckets)
    registry = CollectorRegistry()
    theirs = ClientHistogram("h_seconds", "x", ["a"], buckets=buckets, registry=registry)
    for observed in (0.05, 0.1, 0.3, 0.5, 0.7, 1.0, 3.0, 10.0, 11.0, 500.0):
        ours.observe(("v",), observed)
        theirs.labels("v").observe(observed)
    mine = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in ours.families() for s in f.samples}
    reference = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in registry.collect()
        for s in f.samples
        if not s.name.endswith("_created")
    }
    assert mine == reference


def test_a_gauge_without_expiry_keeps_its_series() -> None:
    gauge = Gauge("g", "x", ("a",))
    gauge.set(("1",), 3)
    gauge.add(("1",), -1)
    assert [s.value for f in gauge.families() for s in f.samples] == [2]
