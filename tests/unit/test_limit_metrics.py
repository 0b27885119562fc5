"""The SLA breach counter, counted by the analytics projection (recent breaches only), and the
quota usage gauges and refusal counters, exported by the Prometheus instruments."""

from __future__ import annotations

import pytest

from orchestrator.analytics.projection import FRESH_BREACH, AnalyticsProjection
from orchestrator.backends.memory import MemoryEventLog
from orchestrator.limits.quotas import QuotaExceeded, Quotas, StartRateExceeded, TenantQuotas
from orchestrator.observability.prometheus import PrometheusInstruments
from schemas.definition import WorkflowDefinition
from schemas.validation import parse_definition
from tests.analytics_histories import StepPlan, history
from tests.unit.test_metrics import samples, value

T0 = 1_767_225_600.0


async def order(workflow: str, version: int) -> WorkflowDefinition:
    return parse_definition({
        "name": workflow, "sla": {"seconds": 3},
        "steps": [{"name": "charge", "type": "task", "connector": "noop", "sla": {"seconds": 2}}],
    })  # fmt: skip


async def test_sla_breaches_are_counted_by_scope_and_old_ones_replayed_are_not() -> None:
    metrics = PrometheusInstruments(process_metrics=False)
    now = T0 + 10 * 86400
    projection = AnalyticsProjection(MemoryEventLog().analytics(), order, metrics, clock=lambda: now)
    position = 0
    for n, started in enumerate((now - 60, now - 120, now - FRESH_BREACH - 600)):  # the last one: history
        for envelope in history(f"o{n}", "order", started, [StepPlan("charge", run=5.0)]):
            position += 1
            await projection.apply(position, envelope)
    await projection.flush()
    found = samples(metrics)
    assert value(found, "orchestrator_sla_breaches_total", scope="step", workflow="order") == 2
    assert value(found, "orchestrator_sla_breaches_total", scope="execution", workflow="order") == 2
    rows = await projection.store.breaches("default", None, 0, now + 1, 100)
    assert len(rows) == 6  # every breach is recorded; only the recent ones are counted now


async def test_quota_usage_and_refusals_are_exported_per_tenant_and_quota() -> None:
    metrics = PrometheusInstruments(process_metrics=False)
    running = {"acme": 0}

    async def count_running(tenant: str, at_most: int) -> int:
        return running[tenant]

    limits = {"acme": TenantQuotas(running=5, starts_per_minute=2, payload_bytes=50)}
    quotas = Quotas(limits, lambda: 1000.0, count_running, metrics)
    await quotas.check_start("acme", {})
    await quotas.check_start("acme", {})
    with pytest.raises(StartRateExceeded):
        await quotas.check_start("acme", {})
    with pytest.raises(QuotaExceeded):
        await quotas.check_start("acme", {"blob": "x" * 100})
    found = samples(metrics)
    assert value(found, "orchestrator_quota_usage", tenant="acme", quota="starts_per_minute") == 2
    assert value(found, "orchestrator_quota_usage", tenant="acme", quota="running") == 1
    assert value(found, "orchestrator_quota_refusals_total", tenant="acme", quota="starts_per_minute", status="429") == 1
    assert value(found, "orchestrator_quota_refusals_total", tenant="acme", quota="payload_bytes", status="403") == 1
    running["acme"] = 5
    later = Quotas(limits, lambda: 5000.0, count_running, metrics)
    with pytest.raises(QuotaExceeded):
        await later.check_start("acme", {})
    found = samples(metrics)
    assert value(found, "orchestrator_quota_refusals_total", tenant="acme", quota="running", status="403") == 1
    assert value(found, "orchestrator_quota_usage", tenant="acme", quota="running") == 5
