"""Concurrency limits on Kafka + Cassandra: the owner of commands shard 0 admits from the event
feed, for the executions of every worker; the recorded slot events never show more than the
limit held at once."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Connectors, StepCall
from orchestrator.core.commands import AdmitExecution
from orchestrator.engine.admission_epoch import EPOCH_KEY, EpochFence
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow
from tests.integration.conftest import TestKeyspace
from tests.integration.slots import admissions, most_held

pytestmark = pytest.mark.integration


class Gate:
    name = "gate"

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.entered = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.open.set()

    async def invoke(self, call: StepCall) -> Any:
        self.entered += 1
        await self.open.wait()
        return {"ok": True}


def settings(kafka_url: str, keyspace: TestKeyspace) -> Settings:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    transport = f"{kafka_url}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}&partitions=4"
    return Settings(event_log_url=f"{keyspace.url}?feed_delay=0.3", transport_url=transport, retention_interval=0)


async def until(check: Any, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.1)


async def test_two_workers_never_hold_more_than_the_limit(
    kafka_url: str, cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    s = settings(kafka_url, cassandra_keyspace)
    gates = [Gate(), Gate()]
    async with AsyncExitStack() as stack:
        runtimes = [await stack.enter_async_context(Runtime(s, connectors=Connectors([g]))) for g in gates]
        first = runtimes[0]
        await first.register(Workflow("capped", concurrency=[{"limit": 2}]).task("work", "gate").build())

        async def spread() -> bool:  # both workers own commands partitions
            return all(r.transport.owned_shards() for r in runtimes)

        await until(spread)
        ids = [(await first.start_execution("capped", {"n": n})).execution_id for n in range(6)]

        async def two_running() -> bool:
            return sum(g.entered for g in gates) == 2

        await until(two_running)
        await asyncio.sleep(2)  # long enough for a wrong admission to show
        assert sum(g.entered for g in gates) == 2
        states = [await first.state(i) for i in ids]
        assert sorted(state.to_dict()["status"] for state in states) == ["queued"] * 4 + ["running"] * 2
        [row] = await first.admission.limits("default")
        assert (row["held"], row["queued"]) == (2, 4)
        for gate in gates:
            gate.open.set()
        for execution_id in ids:
            assert (await first.wait(execution_id, timeout=60)).status == "succeeded"
        histories = [await first.history(i) for i in ids]

    assert most_held(histories) <= 2 and sum(admissions(h) for h in histories) == 6


async def test_a_grant_of_an_older_admitter_epoch_admits_nothing(
    kafka_url: str, cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    """A zombie admitter's grant, sent through the commands topic after a newer admitter claimed
    its epoch in Cassandra, is refused by the execution's owner; the same grant with the stored
    epoch is applied (the fence, not the limit, stopped the first)."""
    await cassandra_keyspace.empty_once(tmp_path)
    gate = Gate()
    async with Runtime(settings(kafka_url, cassandra_keyspace), connectors=Connectors([gate])) as runtime:
        await runtime.register(Workflow("capped", concurrency=[{"limit": 1}]).task("work", "gate").build())
        first = (await runtime.start_execution("capped", {"n": 0})).execution_id
        second = (await runtime.start_execution("capped", {"n": 1})).execution_id

        async def one_running() -> bool:
            return gate.entered == 1

        await until(one_running)
        epoch = runtime.admission.epoch
        assert epoch is not None and runtime.epochs is not None
        assert (await runtime.epochs.load(EPOCH_KEY)).version == epoch  # claimed in Cassandra
        waiting = [i for i in (first, second) if (await runtime.state(i)).admissions == 0]
        assert len(waiting) == 1
        queued = waiting[0]
        zombie = AdmitExecution(execution_id=queued, now=runtime.clock(), actor="admission", ticket=0, epoch=epoch - 1)
        await runtime.transport.submit(zombie)

        async def refused() -> bool:
            return fence_of(runtime).refused == 1

        await until(refused)
        await asyncio.sleep(1)
        assert (await runtime.state(queued)).admissions == 0 and gate.entered == 1
        await runtime.transport.submit(replace(zombie, epoch=epoch))

        async def two_running() -> bool:
            return gate.entered == 2

        await until(two_running)
        gate.open.set()


async def test_the_next_owner_of_shard_0_claims_a_newer_epoch_and_admits(
    kafka_url: str, cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    s = settings(kafka_url, cassandra_keyspace)
    gates = [Gate(), Gate()]
    async with AsyncExitStack() as stack:
        stacks = [await stack.enter_async_context(AsyncExitStack()) for _ in gates]
        runtimes = [await st.enter_async_context(Runtime(s, connectors=Connectors([g]))) for st, g in zip(stacks, gates, strict=True)]
        await runtimes[0].register(Workflow("capped", concurrency=[{"limit": 1}]).task("work", "gate").build())

        async def admitter() -> bool:
            return any(r.admission.epoch is not None and r.admission.feed.current for r in runtimes if r.admission.feed)

        await until(admitter)
        [old] = [r for r in runtimes if r.admission.feed is not None and r.admission.feed.current]
        survivor = runtimes[1 - runtimes.index(old)]
        old_epoch = old.admission.epoch
        assert old_epoch is not None
        await stacks[runtimes.index(old)].aclose()  # shard 0 moves to the survivor

        async def taken_over() -> bool:
            return (survivor.admission.epoch or 0) > old_epoch

        await until(taken_over)
        gates[runtimes.index(survivor)].open.set()
        done = await survivor.start_execution("capped", {"n": 0})
        assert (await survivor.wait(done.execution_id, timeout=60)).status == "succeeded"


def fence_of(runtime: Runtime) -> EpochFence:
    fence = getattr(runtime.engine.fence, "__self__", None)
    assert isinstance(fence, EpochFence)
    return fence
