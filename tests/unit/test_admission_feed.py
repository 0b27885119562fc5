"""The admission over the event feed (Kafka mode's) on memory backends: a second engine stands
for the other workers, whose commits this process sees only through the feed and the log."""

from __future__ import annotations

import pytest

from orchestrator.backends.memory import MemoryEventLog, MemoryRegistry
from orchestrator.core import events as ev
from orchestrator.core.commands import AdmitExecution, CancelExecution, Command, StartExecution
from orchestrator.engine.admission import LocalAdmission
from orchestrator.engine.admission_feed import PAUSE_SECONDS, SETTLE_SECONDS, AdmissionFeed, log_loader
from orchestrator.engine.engine import Engine
from schemas.builder import Workflow

NOW = 1_700_000_000.0


class World:
    def __init__(self) -> None:
        self.log = MemoryEventLog()
        self.registry = MemoryRegistry()
        self.workers = Engine(self.log, self.registry, clock=lambda: NOW)  # the other processes
        self.sent: list[Command] = []
        self.now = 0.0
        admission = LocalAdmission(self.submit, log_loader(self.log), self.log, lambda: NOW, durable=True)
        self.feed = AdmissionFeed(admission, monotonic=lambda: self.now)
        admission.feed = self.feed
        self.admission = admission
        self.position = 0

    async def submit(self, command: Command) -> None:  # through the commands topic to the owner
        self.sent.append(command)
        await self.workers.handle(command)

    async def start(self, n: int) -> str:
        execution_id = f"ex-{n}"
        command = StartExecution(execution_id=execution_id, now=NOW + n, workflow="capped", version=1, input={"n": n})
        await self.workers.handle(command)
        return execution_id

    async def follow(self) -> None:
        """One read of the feed, as the projection runner does it."""
        self.now += 1
        page = await self.log.feed().read_after(self.position, 1000)
        for at, envelope in page.items:
            await self.feed.apply(at, envelope)
        if page.items:
            await self.feed.flush()
        else:
            await self.feed.idle()
        self.position = page.last

    async def settle(self) -> None:
        """Reads once a second, as the runner polls, until a takeover has settled."""
        for _ in range(int(SETTLE_SECONDS) + 1):
            await self.follow()

    async def admitted(self) -> list[str]:
        page = await self.log.feed().read_after(0, 10_000)
        return [e.subject for _, e in page.items if e.type == ev.EXECUTION_ADMITTED]


async def test_the_feed_admission_grants_what_other_workers_queue_and_release() -> None:
    world = World()
    await world.registry.register(Workflow("capped", concurrency=[{"limit": 2}]).task("work", "noop").build())
    ids = [await world.start(n) for n in range(4)]
    await world.follow()  # the first call folds the table from the log, and grants nothing yet
    assert await world.admitted() == []
    await world.settle()  # what a previous admitter sent has landed: fold again and grant
    assert await world.admitted() == ids[:2]
    await world.follow()
    await world.follow()  # the grants' own events come back through the feed: nothing more
    assert await world.admitted() == ids[:2]
    assert [(row["held"], row["queued"]) for row in await world.admission.limits("default")] == [(2, 2)]
    await world.workers.handle(CancelExecution(execution_id=ids[0], now=NOW))  # another worker's commit
    await world.follow()
    assert await world.admitted() == ids[:3]


async def test_after_a_pause_the_table_is_rebuilt_from_the_log() -> None:
    world = World()
    await world.registry.register(Workflow("capped", concurrency=[{"limit": 1}]).task("work", "noop").build())
    ids = [await world.start(n) for n in range(2)]
    await world.settle()
    assert await world.admitted() == ids[:1]
    world.admission.table.forget(ids[0])  # a table gone stale while another process admitted
    world.now += PAUSE_SECONDS
    await world.settle()  # a pause: rebuilt, so the holder counts and nothing more is admitted
    assert await world.admitted() == ids[:1]
    assert world.feed.current
    world.now += PAUSE_SECONDS + 1
    assert not world.feed.current  # another process admits: the limits view reads the log
    [row] = await world.admission.limits("default")
    assert (row["held"], row["queued"]) == (1, 1)


async def test_in_one_process_a_grant_that_was_not_applied_frees_its_slot() -> None:
    log, registry = MemoryEventLog(), MemoryRegistry()
    await registry.register(Workflow("capped", concurrency=[{"limit": 1}]).task("work", "noop").build())
    engine = Engine(log, registry, clock=lambda: NOW)
    dropped: list[Command] = []

    async def parked(command: Command) -> None:  # the command never reaches the engine
        dropped.append(command)

    admission = LocalAdmission(parked, engine.load, log, lambda: NOW)
    engine.observers.append(admission.on_committed)
    await engine.handle(StartExecution(execution_id="ex-0", now=NOW, workflow="capped", version=1))
    assert [type(c).__name__ for c in dropped] == ["AdmitExecution"]
    assert "ex-0" in admission.table.waiting and not admission.table.pending
    assert [(row["held"], row["queued"]) for row in await admission.limits("default")] == [(0, 1)]


async def test_a_grant_that_cannot_be_sent_is_undone_and_raised() -> None:
    log, registry = MemoryEventLog(), MemoryRegistry()
    await registry.register(Workflow("capped", concurrency=[{"limit": 1}]).task("work", "noop").build())
    engine = Engine(log, registry, clock=lambda: NOW)

    async def down(command: Command) -> None:
        raise ConnectionError("the commands topic is unreachable")

    admission = LocalAdmission(down, engine.load, log, lambda: NOW)
    committed = await engine.handle(StartExecution(execution_id="ex-0", now=NOW, workflow="capped", version=1))
    assert committed is not None
    with pytest.raises(ConnectionError):
        await admission.on_committed(committed)  # the engine's retry of the observer decides again
    assert "ex-0" in admission.table.waiting and not admission.table.pending


async def test_a_grant_the_previous_admitter_sent_lands_while_the_takeover_settles() -> None:
    world = World()
    await world.registry.register(Workflow("capped", concurrency=[{"limit": 1}]).task("work", "noop").build())
    ids = [await world.start(n) for n in range(2)]
    await world.follow()  # this process takes over; the previous admitter's grant is in flight
    await world.workers.handle(AdmitExecution(execution_id=ids[1], now=NOW, actor="admission"))
    await world.settle()
    assert await world.admitted() == [ids[1]]  # counted: the oldest waiter is not granted too
    await world.workers.handle(CancelExecution(execution_id=ids[1], now=NOW))
    await world.follow()
    assert await world.admitted() == [ids[1], ids[0]]
