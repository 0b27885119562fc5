"""The weighted fair queue of step tasks: shares by weight, FIFO per tenant, no starvation."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from orchestrator.backends.fair_queue import FairQueue
from orchestrator.settings import Settings, SettingsError


def drain(queue: FairQueue[str], count: int) -> list[str]:
    return [queue.get_nowait() for _ in range(count)]


def test_fifo_within_one_tenant() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(5):
        queue.put_nowait("a", f"a{i}")
    assert drain(queue, 5) == ["a0", "a1", "a2", "a3", "a4"]
    assert queue.empty()


def test_a_quiet_tenant_is_served_within_a_round_of_a_flood() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(1000):
        queue.put_nowait("noisy", f"n{i}")
    drain(queue, 10)
    queue.put_nowait("quiet", "q0")
    served = drain(queue, 3)
    assert "q0" in served[:2]  # not behind the 990 noisy tasks still queued
    assert queue.depth("noisy") == 988


def test_busy_tenants_share_by_weight() -> None:
    queue: FairQueue[str] = FairQueue({"gold": 3})
    for i in range(400):
        queue.put_nowait("gold", f"g{i}")
        queue.put_nowait("basic", f"b{i}")
    served = Counter(item[0] for item in drain(queue, 400))
    assert served["g"] == pytest.approx(300, abs=2) and served["b"] == pytest.approx(100, abs=2)


def test_without_weights_every_tenant_gets_an_equal_share() -> None:
    queue: FairQueue[str] = FairQueue()
    for tenant in "abc":
        for i in range(100):
            queue.put_nowait(tenant, f"{tenant}{i}")
    first = drain(queue, 30)
    assert Counter(item[0] for item in first) == {"a": 10, "b": 10, "c": 10}


def test_an_idle_tenant_saves_up_no_credit() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(50):
        queue.put_nowait("a", f"a{i}")
    drain(queue, 50)  # "a" was served alone for a long time; "b" was idle
    for i in range(10):
        queue.put_nowait("a", f"a{50 + i}")
        queue.put_nowait("b", f"b{i}")
    served = drain(queue, 10)
    assert Counter(item[0] for item in served) == {"a": 5, "b": 5}  # alternating, no burst for "b"


async def test_get_waits_for_a_put_and_a_cancelled_getter_passes_the_wake_up_on() -> None:
    queue: FairQueue[str] = FairQueue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("a", "x")
    first.cancel()  # woken, then cancelled before it ran: the item must reach the other getter
    assert await asyncio.wait_for(second, 1) == "x"
    assert first.cancelled()


def test_bad_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="above 0"):
        FairQueue({"a": 0})
    with pytest.raises(ValueError, match="above 0"):
        FairQueue().set_weights({"a": -1})


def test_weights_from_the_environment() -> None:
    settings = Settings.from_env({"ORCHESTRATOR_TENANT_WEIGHTS": "acme=3, beta=0.5"})
    assert settings.tenant_weights == {"acme": 3.0, "beta": 0.5}
    for bad in ("acme", "acme=0", "=2", "acme=inf", "acme=x"):
        with pytest.raises(SettingsError, match="TENANT_WEIGHTS"):
            Settings.from_env({"ORCHESTRATOR_TENANT_WEIGHTS": bad})
