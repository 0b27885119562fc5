"""Concurrent starts share one count of running executions in flight (no herd of listings),
and each adds itself to it until the next count."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.limits.quotas import QuotaExceeded, Quotas, TenantQuotas


async def test_concurrent_starts_share_one_count() -> None:
    calls = 0

    async def count_running(tenant: str, at_most: int) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return 3

    quotas = Quotas({"*": TenantQuotas(running=10)}, lambda: 100.0, count_running)
    await asyncio.gather(*(quotas.check_start("t", None) for _ in range(7)))
    assert calls == 1
    with pytest.raises(QuotaExceeded) as refused:  # 3 counted + 7 started = the limit
        await quotas.check_start("t", None)
    assert refused.value.usage == 10 and calls == 1
