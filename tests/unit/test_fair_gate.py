"""The fair gate: a concurrency limit whose waiters are let in by tenant in weighted fair order."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from orchestrator.backends.fair_gate import FairGate


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class Entries:
    """Waiters that enter the gate, note their name and stay in until released."""

    def __init__(self, gate: FairGate) -> None:
        self.gate = gate
        self.order: list[str] = []
        self.leave: dict[str, asyncio.Event] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def add(self, tenant: str, name: str) -> None:
        self.leave[name] = asyncio.Event()

        async def enter() -> None:
            async with self.gate.slot(tenant):
                self.order.append(name)
                await self.leave[name].wait()

        self.tasks.append(asyncio.create_task(enter()))

    async def release(self, name: str) -> None:
        self.leave[name].set()
        await settle()


async def test_at_most_slots_bodies_run_at_once() -> None:
    gate = FairGate(2)
    entries = Entries(gate)
    for i in range(5):
        entries.add("a", f"a{i}")
    await settle()
    assert entries.order == ["a0", "a1"] and gate.running == 2 and gate.waiting == 3
    await entries.release("a0")
    assert entries.order == ["a0", "a1", "a2"]  # FIFO within one tenant
    for name in ("a1", "a2", "a3", "a4"):
        await entries.release(name)
    assert gate.running == 0 and gate.waiting == 0


async def test_a_quiet_tenant_enters_within_a_round_of_a_flood() -> None:
    gate = FairGate(1)
    entries = Entries(gate)
    for i in range(100):
        entries.add("noisy", f"n{i}")
    await settle()
    for i in range(5):
        await entries.release(f"n{i}")
    entries.add("quiet", "q0")
    await settle()
    await entries.release("n5")
    await entries.release(entries.order[-1])
    assert "q0" in entries.order[6:8]  # not behind the 94 noisy waiters
    for task in entries.tasks:
        task.cancel()


async def test_fifo_gate_lets_the_flood_in_first() -> None:
    """The guard's contrast: ``fair=False`` is one FIFO, and the quiet tenant waits behind the flood."""
    gate = FairGate(1, fair=False)
    entries = Entries(gate)
    for i in range(20):
        entries.add("noisy", f"n{i}")
    await settle()
    entries.add("quiet", "q0")
    await settle()
    for i in range(20):
        await entries.release(f"n{i}")
    assert entries.order[-1] == "q0"
    await entries.release("q0")


async def test_busy_tenants_share_by_weight() -> None:
    gate = FairGate(1, {"gold": 3})
    entries = Entries(gate)
    entries.add("x", "first")
    for i in range(100):
        entries.add("gold", f"g{i}")
        entries.add("basic", f"b{i}")
    await settle()
    await entries.release("first")
    for _ in range(80):
        await entries.release(entries.order[-1])
    served = Counter(name[0] for name in entries.order[1:81])
    assert served["g"] == pytest.approx(60, abs=2) and served["b"] == pytest.approx(20, abs=2)
    for task in entries.tasks:
        task.cancel()


async def test_a_cancelled_waiter_is_passed_over_and_leaks_no_slot() -> None:
    gate = FairGate(1)
    entries = Entries(gate)
    entries.add("a", "a0")
    entries.add("b", "b0")
    entries.add("c", "c0")
    await settle()
    entries.tasks[1].cancel()  # b0 waits: cancelled before its turn
    await settle()
    assert gate.waiting == 1
    await entries.release("a0")
    assert entries.order == ["a0", "c0"]
    await entries.release("c0")
    assert gate.running == 0 and gate.waiting == 0
    entries.add("d", "d0")  # only the dead entry was queued: the free slot is taken at once
    await settle()
    assert entries.order[-1] == "d0"
    await entries.release("d0")


async def test_a_waiter_cancelled_as_it_is_let_in_hands_the_slot_on() -> None:
    gate = FairGate(1)
    await gate.acquire("a")
    second = asyncio.create_task(gate.acquire("b"))
    third = asyncio.create_task(gate.acquire("c"))
    await settle()
    gate.release()  # the slot goes to "b" ...
    second.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await second
    await asyncio.wait_for(third, 1)  # "c" got the slot
    assert gate.running == 1 and gate.waiting == 0
    gate.release()
    assert gate.running == 0


def test_bad_slots_and_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        FairGate(0)
    with pytest.raises(ValueError, match="above 0"):
        FairGate(1, {"a": 0})
