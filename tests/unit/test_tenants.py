"""Tenant and actor through the Runtime: recorded on every event, carried on tasks to the
connector, and executions seen only within their tenant (memory backends, in-process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from connectors.base import ConnectorError, Connectors, StepCall
from connectors.noop import NoopConnector
from orchestrator.core import events as ev
from orchestrator.core.commands import SYSTEM_ACTOR
from orchestrator.ports import ExecutionQuery
from orchestrator.runtime import LIBRARY_ACTOR, ExecutionNotFound, Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow
from schemas.definition import KafkaTrigger
from schemas.tenant import TenantInvalid, check_tenant
from triggers.inbound import InboundMessage, Router


class Recording:
    """A connector that records the calls it gets and echoes the step's args."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[StepCall] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def invoke(self, call: StepCall) -> Any:
        self.calls.append(call)
        if isinstance(call.args, dict) and call.args.get("fail"):
            raise ConnectorError("planned", retryable=False)
        return {"echo": call.args}


@pytest.fixture
def recording() -> Recording:
    return Recording()


@pytest.fixture
async def runtime(recording: Recording) -> AsyncIterator[Runtime]:
    settings = Settings(event_log_url="memory://", retention_interval=0)
    async with Runtime(settings, connectors=Connectors([recording, NoopConnector()])) as runtime:
        await runtime.register(
            Workflow("flow")
            .task("call", "recording", input={"n": "input.n", "fail": "input.fail"})
            .wait("nap", seconds=0.01)
            .wait_for_event("hold", "go", correlation_key="input.key")
            .succeed("done")
            .build()
        )
        await runtime.register(Workflow("kid").task("k", "recording", input={"n": "input.n"}).build())
        await runtime.register(
            Workflow("parent").subworkflow("child", "kid", input={"n": "input.n"}).succeed("done").build()
        )
        await runtime.register(
            Workflow("parked").wait_for_event("hold", "go", correlation_key="input.key").build()
        )
        yield runtime


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not reached: {what}")


async def waiting_on(runtime: Runtime, execution_id: str, tenant: str) -> None:
    async def parked() -> bool:
        state = await runtime.state(execution_id, tenant=tenant)
        return any(a.kind == "wait_for_event" for a in state.active.values())

    await eventually(parked, f"{execution_id} waiting")


# -- recorded on every event ----------------------------------------------------------------


async def test_every_event_carries_the_tenant_and_an_actor(runtime: Runtime, recording: Recording) -> None:
    started = await runtime.start_execution("flow", {"n": 1, "key": "k1"}, tenant="acme", actor="ann")
    execution_id = started.execution_id
    await waiting_on(runtime, execution_id, "acme")
    await runtime.signal(execution_id, "go", {"ok": True}, actor="bob", tenant="acme")
    final = await runtime.wait(execution_id, timeout=5, tenant="acme")
    assert final.status == "succeeded" and final.tenant == "acme" and final.started_by == "ann"

    history = await runtime.history(execution_id, tenant="acme")
    assert {e.tenant for e in history} == {"acme"}
    actors = [(e.type, e.data.get("step"), e.actor) for e in history]
    assert actors == [
        (ev.EXECUTION_STARTED, None, "ann"),  # the start's decision
        (ev.STEP_SCHEDULED, "call", "ann"),
        (ev.STEP_SUCCEEDED, "call", SYSTEM_ACTOR),  # the worker's answer, and what it decided
        (ev.TIMER_SCHEDULED, "nap", SYSTEM_ACTOR),
        (ev.TIMER_FIRED, "nap", SYSTEM_ACTOR),  # a timer
        (ev.STEP_SUCCEEDED, "nap", SYSTEM_ACTOR),
        (ev.EVENT_AWAITED, "hold", SYSTEM_ACTOR),
        (ev.EVENT_RECEIVED, "hold", "bob"),  # the signal, and what it decided
        (ev.STEP_SUCCEEDED, "hold", "bob"),
        (ev.STEP_SUCCEEDED, "done", "bob"),
        (ev.EXECUTION_SUCCEEDED, None, "bob"),
    ], actors
    # the connector saw the execution's tenant and who started it
    assert [(c.tenant, c.actor) for c in recording.calls] == [("acme", "ann")]


async def test_a_caller_that_names_no_actor_is_the_library(runtime: Runtime) -> None:
    started = await runtime.start_execution("parked", {"key": "k"})
    await runtime.cancel(started.execution_id)
    history = await runtime.history(started.execution_id)
    assert [e.actor for e in history] == [LIBRARY_ACTOR] * len(history)
    assert {e.tenant for e in history} == {"default"}


async def test_the_starter_survives_a_reload_from_the_log(runtime: Runtime, recording: Recording) -> None:
    started = await runtime.start_execution("flow", {"n": 2, "key": "k2"}, tenant="acme", actor="ann")
    await waiting_on(runtime, started.execution_id, "acme")
    runtime.engine.forget(started.execution_id)
    reloaded = await runtime.engine.load(started.execution_id)
    assert reloaded is not None and reloaded.started_by == "ann" and reloaded.tenant == "acme"


async def test_a_child_inherits_the_tenant_and_its_parent_is_the_actor(
    runtime: Runtime, recording: Recording
) -> None:
    parent = await runtime.start_execution("parent", {"n": 3}, tenant="acme", actor="ann")
    final = await runtime.wait(parent.execution_id, timeout=5, tenant="acme")
    assert final.status == "succeeded"
    child_id = next(
        e.data["child_id"]
        for e in await runtime.history(parent.execution_id, tenant="acme")
        if e.type == ev.CHILD_STARTED
    )
    child = await runtime.history(child_id, tenant="acme")
    assert child[0].actor == f"parent:{parent.execution_id}"
    assert {e.tenant for e in child} == {"acme"}
    with pytest.raises(ExecutionNotFound):
        await runtime.summary(child_id)  # not in the default tenant
    assert [(c.tenant, c.actor) for c in recording.calls] == [("acme", f"parent:{parent.execution_id}")]


async def test_a_cancelled_parent_cancels_its_child_as_the_actor(runtime: Runtime) -> None:
    await runtime.register(Workflow("holder").subworkflow("child", "parked", input={"key": "'x'"}).build())
    parent = (await runtime.start_execution("holder", tenant="acme")).execution_id

    async def child_started() -> bool:
        return any(e.type == ev.CHILD_STARTED for e in await runtime.history(parent, tenant="acme"))

    await eventually(child_started, "the child started")
    child_id = next(
        e.data["child_id"] for e in await runtime.history(parent, tenant="acme") if e.type == ev.CHILD_STARTED
    )
    await runtime.cancel(parent, actor="ann", tenant="acme")
    assert (await runtime.wait(child_id, timeout=5, tenant="acme")).status == "cancelled"
    child = await runtime.history(child_id, tenant="acme")
    assert child[-1].type == ev.EXECUTION_CANCELLED and child[-1].actor == f"parent:{parent}"
    assert (await runtime.history(parent, tenant="acme"))[-1].actor == "ann"


# -- within a tenant -----------------------------------------------------------------------


async def test_another_tenants_execution_is_not_found(runtime: Runtime) -> None:
    started = await runtime.start_execution("parked", {"key": "k"}, tenant="acme")
    execution_id = started.execution_id
    other = (await runtime.start_execution("parked", {"key": "k"})).execution_id
    lookups: list[Callable[[], Awaitable[Any]]] = [
        lambda: runtime.summary(execution_id),
        lambda: runtime.state(execution_id),
        lambda: runtime.history(execution_id),
        lambda: runtime.timeline(execution_id),
        lambda: runtime.links(execution_id),
        lambda: runtime.diff_executions(execution_id, other),
        lambda: runtime.diff_executions(other, execution_id),
        lambda: runtime.wait(execution_id, timeout=0.1),
        lambda: runtime.cancel(execution_id),
        lambda: runtime.signal(execution_id, "go"),
        lambda: runtime.redrive(execution_id),
        lambda: runtime.summary(other, tenant="acme"),
    ]
    for lookup in lookups:
        with pytest.raises(ExecutionNotFound):
            await lookup()
    # untouched by the attempts, and all there for its own tenant
    state = await runtime.state(execution_id, tenant="acme")
    assert state.status == "running" and state.signals == ()
    assert (await runtime.summary(execution_id, tenant="acme")).tenant == "acme"
    assert len(await runtime.history(execution_id, tenant="acme")) == 2


async def test_listings_only_hold_the_tenants_executions(runtime: Runtime) -> None:
    ids: dict[str, set[str]] = {"default": set(), "acme": set(), "globex": set()}
    for n in range(3):
        for tenant in ids:
            ids[tenant].add(
                (await runtime.start_execution("parked", {"key": f"k{n}"}, tenant=tenant)).execution_id
            )
    for tenant, expected in ids.items():
        page = await runtime.list_executions(ExecutionQuery(limit=100), tenant=tenant)
        assert {s.execution_id for s in page.items} == expected
        # a query naming another tenant is still answered within the caller's
        page = await runtime.list_executions(
            ExecutionQuery(tenant="globex", workflow="parked"), tenant=tenant
        )
        assert {s.execution_id for s in page.items} == expected
    assert (await runtime.list_executions(ExecutionQuery(), tenant="initech")).items == []


async def test_an_event_reaches_only_the_waiters_of_its_tenant(runtime: Runtime) -> None:
    here = (await runtime.start_execution("parked", {"key": "k"}, tenant="acme")).execution_id
    there = (await runtime.start_execution("parked", {"key": "k"}, tenant="globex")).execution_id
    await waiting_on(runtime, here, "acme")
    await waiting_on(runtime, there, "globex")

    assert await runtime.publish_event("go", "k", {"v": 1}) == []  # nobody waits in default
    assert await runtime.publish_event("go", "k", {"v": 2}, actor="ann", tenant="acme") == [here]

    assert (await runtime.wait(here, timeout=5, tenant="acme")).output == {"v": 2}
    assert (await runtime.state(there, tenant="globex")).status == "running"
    received = [e for e in await runtime.history(here, tenant="acme") if e.type == ev.EVENT_RECEIVED]
    assert [e.actor for e in received] == ["ann"]


async def test_dedup_keys_are_per_tenant(runtime: Runtime) -> None:
    first = await runtime.start_execution("parked", {"key": "k"}, dedup_key="d-1", tenant="acme")
    again = await runtime.start_execution("parked", {"key": "k"}, dedup_key="d-1", tenant="acme")
    other = await runtime.start_execution("parked", {"key": "k"}, dedup_key="d-1", tenant="globex")
    assert (first.created, again.created, other.created) == (True, False, True)
    assert first.execution_id == again.execution_id != other.execution_id


async def test_an_invalid_tenant_starts_nothing(runtime: Runtime) -> None:
    for bad in ("", "Acme", "-acme", "a" * 64, "a b", "acme\n", "ünï"):
        with pytest.raises(TenantInvalid):
            await runtime.start_execution("parked", {"key": "k"}, tenant=bad)
    assert (await runtime.list_executions(ExecutionQuery())).items == []
    assert check_tenant("a" * 63) == "a" * 63 and check_tenant("0-x_y") == "0-x_y"


# -- redrive -------------------------------------------------------------------------------


async def test_a_redrive_keeps_the_tenant_and_records_the_redriver(
    runtime: Runtime, recording: Recording
) -> None:
    broken = await runtime.start_execution("flow", {"n": 1, "fail": True}, tenant="acme", actor="ann")
    assert (await runtime.wait(broken.execution_id, timeout=5, tenant="acme")).status == "failed"

    with pytest.raises(ExecutionNotFound):
        await runtime.redrive(broken.execution_id, input={"n": 1, "key": "k"}, actor="bob")
    result = await runtime.redrive(
        broken.execution_id, input={"n": 1, "key": "k"}, actor="bob", tenant="acme"
    )

    await waiting_on(runtime, result.execution_id, "acme")  # past its task
    history = await runtime.history(result.execution_id, tenant="acme")
    assert history[0].actor == "bob" and {e.tenant for e in history} == {"acme"}
    assert [link.relation for link in await runtime.links(result.execution_id, tenant="acme")] == [
        "redrive_of"
    ]
    assert recording.calls[-1].tenant == "acme" and recording.calls[-1].actor == "bob"


async def test_a_bulk_redrive_matches_only_the_tenants_executions(runtime: Runtime) -> None:
    failed: dict[str, str] = {}
    for tenant in ("acme", "globex"):
        started = await runtime.start_execution("flow", {"n": 1, "fail": True}, tenant=tenant)
        assert (await runtime.wait(started.execution_id, timeout=5, tenant=tenant)).status == "failed"
        failed[tenant] = started.execution_id

    dry = await runtime.redrive_many(ExecutionQuery(workflow="flow", status="failed"), tenant="acme")
    assert dry.matched == [failed["acme"]]
    done = await runtime.redrive_many(
        ExecutionQuery(workflow="flow", status="failed"), dry_run=False, tenant="globex", actor="ops"
    )
    assert done.matched == [failed["globex"]] and len(done.started) == 1
    assert (await runtime.history(done.started[0], tenant="globex"))[0].actor == "ops"
    none = await runtime.redrive_many(ExecutionQuery(workflow="flow", status="failed"))
    assert none.matched == []


# -- queue and topic triggers ------------------------------------------------------------------


def kafka_trigger(**fields: Any) -> KafkaTrigger:
    return KafkaTrigger.model_validate({"name": "orders", "topics": ["shop.orders"], **fields})


async def test_a_topic_trigger_starts_in_its_tenant_as_the_trigger(runtime: Runtime) -> None:
    router = Router(runtime, "parked", kafka_trigger(tenant="acme"))
    outcome = await router.accept(InboundMessage({"key": "k"}, "kafka:shop.orders/0/7"))
    assert outcome.kind == "started"
    (execution_id,) = outcome.execution_ids
    history = await runtime.history(execution_id, tenant="acme")
    assert {(e.tenant, e.actor) for e in history} == {("acme", "trigger:parked/orders")}
    again = await router.accept(InboundMessage({"key": "k"}, "kafka:shop.orders/0/7"))
    assert (again.kind, again.execution_ids) == ("duplicate", (execution_id,))
    plain = await Router(runtime, "parked", kafka_trigger()).accept(
        InboundMessage({"key": "k"}, "kafka:x/0/8")
    )
    assert (await runtime.summary(plain.execution_ids[0])).tenant == "default"


async def test_a_correlating_trigger_delivers_within_its_tenant(runtime: Runtime) -> None:
    here = (await runtime.start_execution("parked", {"key": "k"}, tenant="acme")).execution_id
    there = (await runtime.start_execution("parked", {"key": "k"})).execution_id
    await waiting_on(runtime, here, "acme")
    await waiting_on(runtime, there, "default")
    correlation = {"event": "go", "key": "data.key", "unmatched": "drop"}
    router = Router(runtime, "parked", kafka_trigger(tenant="acme", correlation=correlation))

    outcome = await router.accept(InboundMessage({"key": "k"}, "kafka:shop.orders/0/9"))

    assert (outcome.kind, outcome.execution_ids) == ("delivered", (here,))
    assert (await runtime.state(there)).status == "running"
    received = [e for e in await runtime.history(here, tenant="acme") if e.type == ev.EVENT_RECEIVED]
    assert [e.actor for e in received] == ["trigger:parked/orders"]


def test_a_trigger_tenant_must_be_a_tenant_name() -> None:
    with pytest.raises(ValueError, match="tenant"):
        kafka_trigger(tenant="Not A Tenant")
    assert kafka_trigger().tenant == "default"
