"""The Prometheus implementation of ``orchestrator.instrumentation.Instruments``.

:class:`PrometheusInstruments` keeps every metric of docs/observability.md in its own
``CollectorRegistry`` (never the library's global default one): two runtimes in one process
expose two sets. The process root creates one per process, hands it to the ``Runtime`` and
serves ``registry`` at ``GET /metrics`` (``orchestrator.observability.exposition``).

Labels stay bounded: no execution id, key or sender-controlled text. Workflow names are labels
for the first ``workflow_labels`` workflows seen (``ORCHESTRATOR_METRICS_WORKFLOWS``); later ones,
and all of them when it is 0, are counted under ``_other``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from orchestrator.instrumentation import AppendOutcome, CommandOutcome, StepOutcome, TriggerOutcome
from orchestrator.observability.series import Counter, Gauge, Histogram, Series

OTHER = "_other"  # the workflow label of workflows past the cap
LAG_EXPIRES = 30.0  # seconds: a partition's series not refreshed for this long was revoked
LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
STEP = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
EXECUTION = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)
LATENESS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0)
BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class WorkflowLabels:
    """A workflow's label: its name for the first ``cap`` names seen, else ``_other``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._seen: dict[str, str] = {}

    def __call__(self, workflow: str) -> str:
        label = self._seen.get(workflow)
        if label is not None:
            return label
        if len(self._seen) >= self.cap:
            return OTHER
        self._seen[workflow] = workflow
        return workflow


class _Families(Collector):
    """Collects the series of one :class:`PrometheusInstruments` (plus any extra ones)."""

    def __init__(self, series: Iterable[Series]) -> None:
        self.series = list(series)

    def collect(self) -> Iterator[Metric]:
        for one in self.series:
            yield from one.families()


class PrometheusInstruments:
    """Every hook of ``Instruments`` as Prometheus metrics in ``self.registry``.

    ``process_metrics``: also register the client library's process, platform and GC collectors
    (``process_*``, ``python_*``) on this registry."""

    def __init__(
        self,
        *,
        workflow_labels: int = 100,
        process_metrics: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workflow = WorkflowLabels(workflow_labels)
        w = ("workflow",)
        self.started = Counter("orchestrator_executions_started", "Executions started (commits of a start).", w)
        self.completed = Counter(
            "orchestrator_executions_completed", "Executions ended, by final status.", (*w, "status")
        )
        self.execution_seconds = Histogram(
            "orchestrator_execution_duration_seconds",
            "Execution start to end (only where the committing process knows the start time).",
            (*w, "status"),
            EXECUTION,
        )
        self.running = Gauge(
            "orchestrator_executions_running",
            "Executions not finished, counted from the event log's index (sampled; capped).",
        )
        self.queued = Gauge("orchestrator_tasks_queued", "Step tasks waiting for a worker in this process.", ("queue",))
        self.steps_running = Gauge(
            "orchestrator_steps_running", "Step attempts running in this process's worker.", ("connector",)
        )
        self.step_seconds = Histogram(
            "orchestrator_step_duration_seconds", "One step attempt's connector run.", ("connector", "outcome"), STEP
        )
        self.schedule_to_start = Histogram(
            "orchestrator_step_schedule_to_start_seconds",
            "From the commit that scheduled a step attempt to a worker starting it.",
            ("connector",),
            STEP,
        )
        self.retries = Counter("orchestrator_step_retries", "Step attempts after the first (retries).", ("connector",))
        self.commands = Histogram(
            "orchestrator_command_duration_seconds",
            "Commands handled by the engine: lock, load, decide, append and effects.",
            ("kind", "outcome"),
            LATENCY,
        )
        self.appends = Histogram(
            "orchestrator_event_log_append_duration_seconds",
            "Latency of one event log append.",
            ("backend", "outcome"),
            LATENCY,
        )
        self.appended = Counter("orchestrator_events_appended", "Events appended to the event log.", ("backend",))
        self.batches = Histogram(
            "orchestrator_event_log_group_commit_appends", "Appends per group-commit transaction.", ("backend",), BATCH
        )
        self.pending = Gauge("orchestrator_timers_pending", "Timers armed in this process.", ("backend",))
        self.lateness = Histogram(
            "orchestrator_timer_lateness_seconds", "How late durable timers fired after their due time.", ("backend",), LATENESS
        )
        self.waits = Gauge(
            "orchestrator_waits_parked", "Executions parked on a wait key in this process's index.", ("backend",)
        )
        self.triggers = Counter(
            "orchestrator_trigger_messages",
            "Trigger messages, deliveries and requests by outcome (their sum: received).",
            ("kind", "workflow", "trigger", "outcome"),
        )
        partition = ("group", "topic", "partition")
        self.lag = Gauge(
            "orchestrator_consumer_lag_records",
            "Records behind the partition's high watermark, per assigned partition.",
            partition,
            expire_after=LAG_EXPIRES,
            clock=clock,
        )
        self.in_flight = Gauge(
            "orchestrator_kafka_transport_in_flight_records",
            "Kafka transport records taken and not yet finished, per assigned partition.",
            partition,
            expire_after=LAG_EXPIRES,
            clock=clock,
        )
        self.uncommitted = Gauge(
            "orchestrator_kafka_transport_uncommitted_records",
            "Kafka transport records taken past the last committed offset (commit lag).",
            partition,
            expire_after=LAG_EXPIRES,
            clock=clock,
        )
        self.sla_breaches = Counter(
            "orchestrator_sla_breaches",
            "Executions and steps that took longer than their SLA, as the analytics projection counts them.",
            ("scope", "workflow"),
        )
        self.quota_used = Gauge(
            "orchestrator_quota_usage", "A tenant's usage of a quota, as the last start checked it.", ("tenant", "quota")
        )
        self.quota_refusals = Counter(
            "orchestrator_quota_refusals", "Starts refused by a quota (429: start rate, 403: hard quota).",
            ("tenant", "quota", "status"),
        )
        self.doctor_leaks = Gauge(
            "orchestrator_doctor_leaks",
            "What the doctor's last pass found held for finished or unknown executions, by kind.",
            ("kind",),
        )
        self.doctor_fixed = Counter(
            "orchestrator_doctor_fixed", "Leaks the doctor released (POST /api/v1/doctor), by kind.", ("kind",)
        )
        self.http_requests = Counter(
            "orchestrator_http_requests", "HTTP requests by route template and status.", ("method", "route", "status")
        )
        self.http_seconds = Histogram(
            "orchestrator_http_request_duration_seconds", "HTTP request handling time.", ("method", "route"), LATENCY
        )
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Families(s for s in vars(self).values() if isinstance(s, Series)))
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    # -- Instruments ---------------------------------------------------------------------

    def command_handled(self, kind: str, outcome: CommandOutcome, seconds: float) -> None:
        self.commands.observe((kind, outcome), seconds)

    def events_appended(self, backend: str, outcome: AppendOutcome, events: int, seconds: float) -> None:
        self.appends.observe((backend, outcome), seconds)
        if outcome == "ok":
            self.appended.inc((backend,), events)

    def step_started(self, workflow: str, step: str, connector: str, attempt: int) -> None:
        self.steps_running.add((connector,), 1)
        if attempt > 1:
            self.retries.inc((connector,))

    def step_finished(
        self, workflow: str, step: str, connector: str, attempt: int, outcome: StepOutcome, seconds: float
    ) -> None:
        self.steps_running.add((connector,), -1)
        self.step_seconds.observe((connector, outcome), seconds)

    def trigger_outcome(self, kind: str, workflow: str, trigger: str, outcome: TriggerOutcome) -> None:
        label = self.workflow(workflow)
        self.triggers.inc((kind, label, trigger if label != OTHER else OTHER, outcome))

    def timer_fired(self, backend: str, lateness: float) -> None:
        self.lateness.observe((backend,), max(lateness, 0.0))

    def consumer_lag(self, group: str, topic: str, partition: int, lag: int) -> None:
        self.lag.set((group, topic, str(partition)), lag)

    def queue_depth(self, queue: str, depth: int) -> None:
        self.queued.set((queue,), depth)

    def execution_started(self, workflow: str) -> None:
        self.started.inc((self.workflow(workflow),))

    def execution_finished(self, workflow: str, status: str, seconds: float | None) -> None:
        labels = (self.workflow(workflow), status)
        self.completed.inc(labels)
        if seconds is not None:
            self.execution_seconds.observe(labels, seconds)

    def step_queued(self, workflow: str, step: str, connector: str, seconds: float) -> None:
        self.schedule_to_start.observe((connector,), seconds)

    def appends_grouped(self, backend: str, appends: int) -> None:
        self.batches.observe((backend,), appends)

    def timers_pending(self, backend: str, count: int) -> None:
        self.pending.set((backend,), count)

    def waits_parked(self, backend: str, count: int) -> None:
        self.waits.set((backend,), count)

    def transport_lane(self, group: str, topic: str, partition: int, in_flight: int, uncommitted: int) -> None:
        labels = (group, topic, str(partition))
        self.in_flight.set(labels, in_flight)
        self.uncommitted.set(labels, uncommitted)

    def execution_traced(
        self, execution_id: str, workflow: str, tenant: str, traceparent: str | None,
        status: str, started_at: float | None, ended_at: float,
    ) -> None:
        pass  # spans: observability/otel.py

    def step_traced(
        self, execution_id: str, workflow: str, step: str, connector: str, attempt: int,
        traceparent: str | None, outcome: StepOutcome, error: str | None, started_at: float, ended_at: float,
    ) -> None:
        pass

    def sla_breached(self, scope: str, workflow: str) -> None:
        self.sla_breaches.inc((scope, self.workflow(workflow)))

    def quota_usage(self, tenant: str, quota: str, usage: int) -> None:
        self.quota_used.set((tenant, quota), usage)

    def quota_refused(self, tenant: str, quota: str, status: int) -> None:
        self.quota_refusals.inc((tenant, quota, str(status)))

    def doctor_checked(self, kind: str, leaks: int, fixed: int) -> None:
        self.doctor_leaks.set((kind,), leaks)
        if fixed:
            self.doctor_fixed.inc((kind,), fixed)

    # -- the HTTP edge and the sampler (not hooks: the process root calls them) -----------

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.inc((method, route, str(status)))
        self.http_seconds.observe((method, route), seconds)

    def executions_running(self, count: int) -> None:
        self.running.set((), count)
