"""The engine suite's workloads through an event log that fails at random (memory and SQLite).

Hundreds of executions run while appends fail before and after their commit and reads fail,
with a seeded RNG. The client retries like a real one, with idempotency keys (a start's dedup
key, a signal's and an event's id). Afterwards, with the faults off: every execution succeeded,
each step succeeded exactly once, each event was taken once, sequences have no gaps, and nothing
is left armed, queued or pending.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from connectors.base import Connectors
from orchestrator.backends.inprocess import InProcessTransport
from orchestrator.backends.memory import MemoryEventLog, MemoryRegistry
from orchestrator.backends.memory_timers import MemoryTimers
from orchestrator.backends.sqlite import SQLiteEventLog, SQLiteRegistry
from orchestrator.engine.retrying import Backoff
from orchestrator.ports import EventLog, ExecutionQuery, Registry
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.engine_suite import Scripted, chain_workflow, kid_workflow, order_workflow, waiter_workflow
from tests.faulty_log import FaultRates, FaultyLog

T = TypeVar("T")
RATES = FaultRates(append_before=0.04, append_after=0.04, read=0.02)
FAST = Backoff(first=0.01, cap=0.2)
CHAINS, ORDERS, WAITERS = 150, 80, 70


async def retried(call: Callable[[], Awaitable[T]]) -> T:
    """A client: any error is retried (the calls carry idempotency keys)."""
    for attempt in range(1, 400):
        try:
            return await call()
        except Exception:
            await asyncio.sleep(min(0.01 * attempt, 0.1))
    raise AssertionError("a call kept failing")


def stores(backend: str, tmp_path: Path) -> tuple[EventLog, Registry]:
    if backend == "memory":
        return MemoryEventLog(), MemoryRegistry()
    url = f"sqlite:///{tmp_path}/faults.db"
    return SQLiteEventLog.from_url(url), SQLiteRegistry.from_url(url)


@asynccontextmanager
async def faulty_runtime(log: FaultyLog, registry: Registry, scripted: Scripted) -> AsyncIterator[Runtime]:
    timers = MemoryTimers(time.time, retry_seconds=0.05)
    runtime = Runtime(
        Settings(event_log_url="memory://", worker_concurrency=16),
        connectors=Connectors([scripted]),
        event_log=log,
        registry=registry,
        timers=timers,
    )
    runtime.worker.backoff = FAST
    assert runtime.redo is not None
    runtime.redo.backoff = FAST
    async with runtime:
        yield runtime


async def drive(rt: Runtime, kind: str, n: int) -> str:
    """One execution, from its start to its end, as a retrying client drives it."""
    if kind == "chain":
        started = await retried(lambda: rt.start_execution("chain", {"n": n}, dedup_key=f"chain-{n}"))
    elif kind == "order":
        started = await retried(lambda: rt.start_execution("order", {"id": 10 + n}, dedup_key=f"order-{n}"))
    else:
        started = await retried(lambda: rt.start_execution("waiter", {}, dedup_key=f"waiter-{n}"))
    execution_id = started.execution_id
    if kind == "order":
        event_id = f"approval-{n}"
        while True:
            delivered = await retried(
                lambda: rt.publish_event("approved", str(10 + n), {"ok": n}, event_id=event_id)
            )
            if delivered or event_id in (await retried(lambda: rt.state(execution_id))).event_ids:
                break
            await asyncio.sleep(0.02)
    elif kind == "waiter":
        await retried(lambda: rt.signal(execution_id, "go", {"n": n}, event_id=f"go-{n}"))
    state = await retried(lambda: rt.wait(execution_id, timeout=25))
    assert state.status == "succeeded", (kind, n, state.error)
    return execution_id


async def check_histories(log: EventLog) -> Counter[str]:
    """Every execution succeeded, without gaps, each step and event once; counts by workflow."""
    workflows: Counter[str] = Counter()
    cursor = None
    while True:
        page = await log.list_executions(ExecutionQuery(limit=500, cursor=cursor))
        for summary in page.items:
            history = await log.read(summary.execution_id)
            assert [e.sequence for e in history] == list(range(1, len(history) + 1))
            assert summary.last_sequence == len(history) and summary.status == "succeeded"
            succeeded = Counter(e.data["step"] for e in history if e.type == "StepSucceeded")
            assert all(count == 1 for count in succeeded.values()), succeeded
            received = [e for e in history if e.type in ("EventReceived", "SignalReceived")]
            assert len(received) == (summary.workflow in ("order", "waiter"))
            workflows[summary.workflow] += 1
        if page.next_cursor is None:
            return workflows
        cursor = page.next_cursor


async def settled(rt: Runtime) -> None:
    """Nothing armed, queued or pending once every execution has finished."""
    redo, timers, transport = rt.redo, rt.timers, rt.transport
    assert redo is not None and isinstance(timers, MemoryTimers) and isinstance(transport, InProcessTransport)
    deadline = time.monotonic() + 5
    while redo.pending or len(timers) or transport.backlog:
        assert time.monotonic() < deadline, (redo.pending, len(timers), transport.backlog)
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_every_execution_completes_through_random_faults(backend: str, tmp_path: Path) -> None:
    inner, registry = stores(backend, tmp_path)
    log = FaultyLog(inner, seed=20261206, rates=RATES)
    scripted = Scripted()
    async with faulty_runtime(log, registry, scripted) as rt:
        for definition in (kid_workflow(), order_workflow(), chain_workflow(), waiter_workflow()):
            await rt.register(definition)
        work = [("chain", n) for n in range(CHAINS)]
        work += [("order", n) for n in range(ORDERS)] + [("waiter", n) for n in range(WAITERS)]
        ids = await asyncio.wait_for(asyncio.gather(*(drive(rt, kind, n) for kind, n in work)), 28)
        assert len(set(ids)) == len(work)
        log.enabled = False
        await settled(rt)
        assert isinstance(rt.transport, InProcessTransport) and rt.transport.problem() is None
        assert rt.transport.workers_alive == rt.transport.concurrency
        workflows = await check_histories(inner)
    assert workflows == {"chain": CHAINS, "order": ORDERS, "kid": ORDERS, "waiter": WAITERS}
    # the run did meet every kind of fault, the nasty one included, many times
    assert min(log.injected[k] for k in ("append_before", "append_after", "read")) >= 20, log.injected


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_a_restart_under_faults_strands_nothing(backend: str, tmp_path: Path) -> None:
    """The process stops with work in flight; the next one, on the same failing log, recovers it."""
    inner, registry = stores(backend, tmp_path)
    log = FaultyLog(inner, seed=7, rates=RATES)
    scripted = Scripted()
    async with faulty_runtime(log, registry, scripted) as first:
        await first.register(chain_workflow())

        async def start(n: int) -> str:
            started = await retried(lambda: first.start_execution("chain", {"n": n}, dedup_key=f"c-{n}"))
            return started.execution_id

        ids = [await start(n) for n in range(60)]
        await asyncio.sleep(0.05)  # some steps ran, most did not
    log.fail_reads(1)  # the recovery scan's first listing fails too
    async with faulty_runtime(log, registry, scripted) as second:

        async def wait(execution_id: str) -> str:
            return (await retried(lambda: second.wait(execution_id, 20))).status

        assert set(await asyncio.gather(*(wait(i) for i in ids))) == {"succeeded"}
        log.enabled = False
        assert await check_histories(inner) == {"chain": 60}
