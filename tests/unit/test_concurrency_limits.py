"""Concurrency limits through the Runtime on SQLite: slots granted and given back as recorded
events, checked from the event feed (commit order), never from timing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Connectors, StepCall
from connectors.noop import NoopConnector
from orchestrator.core import events as ev
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow
from schemas.envelope import Envelope
from tests.fake_sources import eventually


class Gate:
    """Calls wait until the test opens the gate; ``entered`` counts the calls that began."""

    name = "gate"

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.entered: list[Any] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None  # a stop is a crash here: held calls never answer

    async def invoke(self, call: StepCall) -> Any:
        self.entered.append(call.args)
        await self.open.wait()
        return {"ok": True}


def settings(path: Path) -> Settings:
    return Settings(event_log_url=f"sqlite:///{path / 'log.db'}", retention_interval=0, auth=False)


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
async def runtime(tmp_path: Path, gate: Gate) -> AsyncIterator[Runtime]:
    async with Runtime(settings(tmp_path), connectors=Connectors([gate, NoopConnector()])) as runtime:
        yield runtime


def limited(name: str, *limits: dict[str, Any], priority: str | None = None) -> Workflow:
    fields: dict[str, Any] = {"concurrency": list(limits)}
    if priority is not None:
        fields["priority"] = priority
    return Workflow(name, **fields)


async def feed(runtime: Runtime) -> list[Envelope]:
    page = await runtime.feed.read_after(0, 100_000)
    return [envelope for _, envelope in page.items]


def most_held(events: list[Envelope]) -> int:
    """The most executions holding a slot at once, from the recorded events in commit order."""
    holding: set[str] = set()
    most = 0
    for event in events:
        if event.type == ev.EXECUTION_ADMITTED:
            assert event.subject not in holding, f"{event.subject} admitted twice"
            holding.add(event.subject)
        elif event.type == ev.SLOTS_RELEASED or event.type in ev.TERMINAL_TYPES:
            holding.discard(event.subject)
        most = max(most, len(holding))
    return most


async def statuses(runtime: Runtime, ids: list[str]) -> list[str]:
    return [(await runtime.state(i)).to_dict()["status"] for i in ids]


async def test_n_executions_with_limit_k_never_hold_more_than_k_slots(runtime: Runtime, gate: Gate) -> None:
    await runtime.register(limited("capped", {"limit": 3}).task("work", "gate").build())
    ids = [(await runtime.start_execution("capped", {"n": n})).execution_id for n in range(8)]
    await eventually(lambda: len(gate.entered) == 3)
    assert sorted(await statuses(runtime, ids)) == ["queued"] * 5 + ["running"] * 3
    positions = sorted(runtime.admission.position(i) or 0 for i in ids)
    assert positions == [0, 0, 0, 1, 2, 3, 4, 5]
    gate.open.set()
    for execution_id in ids:
        assert (await runtime.wait(execution_id, timeout=10)).status == "succeeded"
    events = await feed(runtime)
    assert most_held(events) == 3
    assert [e.type for e in events].count(ev.EXECUTION_ADMITTED) == 8
    assert await runtime.admission.limits("default") == []  # nothing held, nothing waits


async def test_a_key_per_customer_and_a_cap_overall_combine(runtime: Runtime, gate: Gate) -> None:
    definition = limited("orders", {"key": "input.customer", "limit": 1}, {"limit": 2}).task("work", "gate")
    await runtime.register(definition.build())
    ids = [
        (await runtime.start_execution("orders", {"customer": c})).execution_id for c in ["a", "a", "b", "c"]
    ]
    await eventually(lambda: len(gate.entered) == 2)
    assert await statuses(runtime, ids) == ["running", "queued", "running", "queued"]
    rows = {(row["scope"], row["value"]): row for row in await runtime.admission.limits("default")}
    assert rows[("workflow", "all")]["held"] == 2 and rows[("workflow", "all")]["queued"] == 2
    assert rows[("workflow", "a")]["held"] == 1 and rows[("workflow", "a")]["queued"] == 1
    assert rows[("workflow", "a")]["workflow"] == "orders"
    gate.open.set()
    for execution_id in ids:
        assert (await runtime.wait(execution_id, timeout=10)).status == "succeeded"
    assert most_held(await feed(runtime)) == 2


async def test_cancel_new_cancels_the_newcomer(runtime: Runtime, gate: Gate) -> None:
    await runtime.register(limited("single", {"limit": 1, "on_limit": "cancel_new"}).task("work", "gate").build())
    first = (await runtime.start_execution("single")).execution_id
    await eventually(lambda: len(gate.entered) == 1)
    second = (await runtime.start_execution("single")).execution_id
    final = await runtime.wait(second, timeout=5)
    assert final.status == "cancelled" and "is full" in (final.error or {})["message"]
    gate.open.set()
    assert (await runtime.wait(first, timeout=5)).status == "succeeded"


async def test_fail_fails_the_newcomer_with_a_reason(runtime: Runtime, gate: Gate) -> None:
    await runtime.register(limited("strict", {"limit": 1, "on_limit": "fail"}).task("work", "gate").build())
    first = (await runtime.start_execution("strict")).execution_id
    await eventually(lambda: len(gate.entered) == 1)
    second = (await runtime.start_execution("strict")).execution_id
    final = await runtime.wait(second, timeout=5)
    assert final.status == "failed"
    assert final.error == {
        "type": "concurrency.limit",
        "message": "concurrency limit workflow key 'all' is full (1 held)",
        "retryable": False,
    }
    gate.open.set()
    assert (await runtime.wait(first, timeout=5)).status == "succeeded"


async def test_cancel_running_cancels_the_oldest_holder(runtime: Runtime, gate: Gate) -> None:
    definition = limited("latest", {"limit": 2, "on_limit": "cancel_running"}).task("work", "gate")
    await runtime.register(definition.build())
    ids = [(await runtime.start_execution("latest", {"n": n})).execution_id for n in range(2)]
    await eventually(lambda: len(gate.entered) == 2)
    newest = (await runtime.start_execution("latest", {"n": 2})).execution_id
    cancelled = await runtime.wait(ids[0], timeout=5)
    assert cancelled.status == "cancelled" and newest in (cancelled.error or {})["message"]
    await eventually(lambda: len(gate.entered) == 3)
    gate.open.set()
    assert [(await runtime.wait(i, timeout=5)).status for i in [ids[1], newest]] == ["succeeded"] * 2
    assert most_held(await feed(runtime)) == 2


@pytest.mark.parametrize("release", [True, False])
async def test_release_while_waiting_lets_another_run(runtime: Runtime, gate: Gate, release: bool) -> None:
    definition = limited("patient", {"limit": 1, "release_while_waiting": release})
    await runtime.register(definition.wait_for_event("hold", "go").task("work", "gate").build())
    first = (await runtime.start_execution("patient")).execution_id
    second = (await runtime.start_execution("patient")).execution_id

    async def second_waits_for_event() -> bool:
        return "hold" in (await runtime.state(second)).active

    if release:  # the first waits without its slot: the second is admitted and waits too
        await eventually(second_waits_for_event)
        assert await statuses(runtime, [first, second]) == ["running", "running"]
        await runtime.signal(first, "go")
        await eventually(lambda: len(gate.entered) == 1)
        await runtime.signal(second, "go")  # the first holds its slot again: the second queues
        await eventually(lambda: runtime.admission.position(second) == 1)
        assert await statuses(runtime, [first, second]) == ["running", "queued"]
    else:
        await eventually(lambda: runtime.admission.position(second) == 1)
        assert not await second_waits_for_event()
        await runtime.signal(first, "go")
    gate.open.set()
    if not release:
        await eventually(second_waits_for_event)
        await runtime.signal(second, "go")
    for execution_id in (first, second):
        assert (await runtime.wait(execution_id, timeout=5)).status == "succeeded"
    events = await feed(runtime)
    assert most_held(events) == 1
    released = [e for e in events if e.type == ev.SLOTS_RELEASED]
    assert len(released) == (2 if release else 0)


async def test_higher_priority_first_and_fifo_within_one(runtime: Runtime, gate: Gate) -> None:
    definition = limited("ranked", {"limit": 1}, priority="input.p").task("work", "gate", input={"n": "input.n"})
    await runtime.register(definition.build())
    holder = (await runtime.start_execution("ranked", {"n": 0, "p": 0})).execution_id
    await eventually(lambda: len(gate.entered) == 1)
    waiting = {
        n: (await runtime.start_execution("ranked", {"n": n, "p": p})).execution_id
        for n, p in [(1, 1), (2, 5), (3, 5), (4, None)]
    }
    assert [runtime.admission.position(waiting[n]) for n in (1, 2, 3, 4)] == [3, 1, 2, 4]
    gate.open.set()
    for execution_id in [holder, *waiting.values()]:
        assert (await runtime.wait(execution_id, timeout=5)).status == "succeeded"
    assert [call["n"] for call in gate.entered] == [0, 2, 3, 1, 4]


async def test_a_priority_that_is_not_a_number_fails_the_start(runtime: Runtime) -> None:
    await runtime.register(limited("odd", {"limit": 1}, priority="input.p").task("work", "noop").build())
    final = await runtime.wait((await runtime.start_execution("odd", {"p": "high"})).execution_id, timeout=5)
    assert final.status == "failed" and "must give a number" in (final.error or {})["message"]


async def test_holders_and_waiters_are_rebuilt_from_the_log_after_a_restart(tmp_path: Path) -> None:
    first_gate = Gate()
    async with Runtime(settings(tmp_path), connectors=Connectors([first_gate])) as runtime:
        await runtime.register(limited("capped", {"limit": 1}).task("work", "gate").build())
        ids = [(await runtime.start_execution("capped", {"n": n})).execution_id for n in range(3)]
        await eventually(lambda: len(first_gate.entered) == 1)
    gate = Gate()
    async with Runtime(settings(tmp_path), connectors=Connectors([gate])) as again:
        [row] = await again.admission.limits("default")
        assert (row["held"], row["queued"]) == (1, 2)
        assert await statuses(again, ids) == ["running", "queued", "queued"]
        gate.open.set()
        for execution_id in ids:
            assert (await again.wait(execution_id, timeout=10)).status == "succeeded"
        assert most_held(await feed(again)) == 1


async def test_a_redrive_goes_through_the_same_admission(runtime: Runtime, gate: Gate) -> None:
    await runtime.register(limited("again", {"limit": 1}).task("work", "gate").build())
    first = (await runtime.start_execution("again")).execution_id
    gate.open.set()
    await runtime.wait(first, timeout=5)
    gate.open.clear()
    holder = (await runtime.start_execution("again")).execution_id
    await eventually(lambda: len(gate.entered) == 2)
    redriven = await runtime.redrive(first)
    assert await statuses(runtime, [holder, redriven.execution_id]) == ["running", "queued"]
    gate.open.set()
    assert (await runtime.wait(redriven.execution_id, timeout=5)).status == "succeeded"
    assert most_held(await feed(runtime)) == 1


async def test_tenant_and_global_keys_are_shared_across_workflows_and_tenants(runtime: Runtime, gate: Gate) -> None:
    erp = {"key": "'erp'", "limit": 1, "scope": "tenant"}
    shared = {"key": "'bank'", "limit": 1, "scope": "global"}
    for name in ("invoices", "refunds"):
        await runtime.register(limited(name, erp).task("work", "gate").build())
    await runtime.register(limited("payouts", shared).task("work", "gate").build())
    invoice = (await runtime.start_execution("invoices")).execution_id
    refund = (await runtime.start_execution("refunds")).execution_id  # the tenant's one ERP slot
    acme = (await runtime.start_execution("payouts", tenant="acme")).execution_id
    beta = (await runtime.start_execution("payouts", tenant="beta")).execution_id  # the one bank slot
    await eventually(lambda: len(gate.entered) == 2)
    assert runtime.admission.position(refund) == 1 and runtime.admission.position(beta) == 1
    assert [(r["scope"], r["value"], r["held"], r["queued"]) for r in await runtime.admission.limits("default")] == [
        ("tenant", "erp", 1, 1)
    ]
    assert [(r["value"], r["held"], r["queued"]) for r in await runtime.admission.limits("beta")] == [("bank", 1, 1)]
    assert await runtime.admission.limits("gamma") == []  # no execution of its own: nothing listed
    gate.open.set()
    for execution_id, tenant in [(invoice, "default"), (refund, "default"), (acme, "acme"), (beta, "beta")]:
        assert (await runtime.wait(execution_id, timeout=5, tenant=tenant)).status == "succeeded"
