"""The handover fence of the Kafka-mode admission, on memory backends: two admitters (a new
owner of shard 0 and a zombie that has not noticed it lost it) share the log and the epoch
store; a second engine stands for the executions' owners."""

from __future__ import annotations

import pytest

from orchestrator.backends.memory import MemoryEventLog, MemoryRegistry
from orchestrator.backends.memory_schedules import MemorySchedules
from orchestrator.core import events as ev
from orchestrator.core.commands import AdmitExecution, CancelExecution, Command, StartExecution
from orchestrator.core.machine import CommandRejected
from orchestrator.engine.admission import LocalAdmission
from orchestrator.engine.admission_epoch import EPOCH_KEY, FRESH_SECONDS, EpochClaim, EpochFence
from orchestrator.engine.admission_feed import CHECK_SECONDS, SETTLE_SECONDS, AdmissionFeed, log_loader
from orchestrator.engine.engine import Engine
from schemas.builder import Workflow

NOW = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Cluster:
    """The log, the epoch store and the owners' engine; admitters are added with ``admitter``."""

    def __init__(self, *, fenced: bool = True) -> None:
        self.log = MemoryEventLog()
        self.registry = MemoryRegistry()
        self.epochs = MemorySchedules()
        self.fenced = fenced
        self.owners = Engine(self.log, self.registry, clock=lambda: NOW)
        self.owner_clock = Clock()
        self.fence = EpochFence(self.epochs, self.owner_clock)
        if fenced:
            self.owners.fence = self.fence.refusal

    async def submit(self, command: Command) -> None:  # the owner applies it; a refusal is dropped
        await self.owners.handle_quietly(command)

    def admitter(self, node: str) -> Admitter:
        return Admitter(self, node)

    async def start(self, n: int) -> str:
        command = StartExecution(execution_id=f"ex-{n}", now=NOW + n, workflow="capped", version=1)
        await self.owners.handle(command)
        return command.execution_id

    async def admitted(self) -> list[str]:
        page = await self.log.feed().read_after(0, 10_000)
        return [e.subject for _, e in page.items if e.type == ev.EXECUTION_ADMITTED]


class Admitter:
    """One process running the admission over the feed, with its own monotonic clock."""

    def __init__(self, cluster: Cluster, node: str) -> None:
        self.cluster = cluster
        self.clock = Clock()
        self.sent: list[Command] = []
        self.admission = LocalAdmission(self.submit, log_loader(cluster.log), cluster.log, lambda: NOW, durable=True)
        claim = EpochClaim(cluster.epochs, node) if cluster.fenced else None
        self.feed = AdmissionFeed(self.admission, monotonic=self.clock, claim=claim)
        self.admission.feed = self.feed
        self.position = 0

    async def submit(self, command: Command) -> None:  # through the commands topic to the owner
        self.sent.append(command)
        await self.cluster.submit(command)

    async def read(self, seconds: float) -> bool:
        """The first half of a runner's poll, ``seconds`` after the last: apply one page."""
        self.clock.now += seconds
        self.cluster.owner_clock.now += seconds
        page = await self.cluster.log.feed().read_after(self.position, 1000)
        for at, envelope in page.items:
            await self.feed.apply(at, envelope)
        self.position = page.last
        return bool(page.items)

    async def follow(self, seconds: float = 1.0) -> None:
        """One read of the feed, as the projection runner does it."""
        await (self.feed.flush() if await self.read(seconds) else self.feed.idle())

    async def take_over(self) -> None:
        """Follow until a takeover has settled (reads 0.5 s apart: no epoch check falls due)."""
        for _ in range(int(SETTLE_SECONDS * 2) + 2):
            await self.follow(0.5)


async def capped(cluster: Cluster, limit: int, starts: int) -> list[str]:
    await cluster.registry.register(Workflow("capped", concurrency=[{"limit": limit}]).task("work", "noop").build())
    return [await cluster.start(n) for n in range(starts)]


async def held_at_once(cluster: Cluster) -> int:
    """The most executions that held the slot at the same time, from the recorded events."""
    page = await cluster.log.feed().read_after(0, 10_000)
    holding, most = set(), 0
    for _, envelope in page.items:
        if envelope.type == ev.EXECUTION_ADMITTED:
            holding.add(envelope.subject)
        elif envelope.type in ev.TERMINAL_TYPES:
            holding.discard(envelope.subject)
        most = max(most, len(holding))
    return most


async def race(cluster: Cluster, *, fenced: bool) -> list[str]:
    """The old admitter keeps granting after the new one took over; both see a slot free at the
    same time and act on it. Their tables differ (any cause does it: a round-robin turn, a grant
    still counted as in flight, a lagging read; here the old one's forgot ``ex-1``), so each
    grants another waiter."""
    ids = await capped(cluster, limit=1, starts=3)
    old, new = cluster.admitter("old"), cluster.admitter("new")
    await old.take_over()
    assert await cluster.admitted() == ids[:1]
    await new.take_over()  # shard 0 moved; the old process has not noticed yet
    assert (old.admission.epoch, new.admission.epoch) == ((1, 2) if fenced else (None, None))
    old.admission.table.forget(ids[1])
    await cluster.owners.handle(CancelExecution(execution_id=ids[0], now=NOW))
    cluster.owner_clock.now += FRESH_SECONDS  # the owner reads the stored epoch again
    for admitter in (old, new):  # both read the freed slot before either grant lands
        await admitter.read(0.5)
    await old.feed.flush()
    await new.feed.flush()
    assert [(c.execution_id, c.epoch) for c in old.sent[1:] if isinstance(c, AdmitExecution)] == [
        (ids[2], 1 if fenced else None)
    ]
    return ids


async def test_a_zombie_admitters_grants_admit_nothing_after_a_takeover() -> None:
    cluster = Cluster()
    ids = await race(cluster, fenced=True)
    assert cluster.fence.refused == 1
    assert await cluster.admitted() == ids[:2]  # the new admitter's grant only
    assert await held_at_once(cluster) == 1


async def test_without_the_fence_the_zombie_goes_over_the_limit() -> None:
    """The guard above can fail: the same race without epochs holds two slots of a limit of 1."""
    cluster = Cluster(fenced=False)
    ids = await race(cluster, fenced=False)
    assert sorted(await cluster.admitted()) == ids
    assert await held_at_once(cluster) == 2


async def test_an_admitter_whose_epoch_was_claimed_takes_over_again() -> None:
    cluster = Cluster()
    ids = await capped(cluster, limit=1, starts=2)
    first, second = cluster.admitter("first"), cluster.admitter("second")
    await first.take_over()
    await second.take_over()
    await first.follow(CHECK_SECONDS)  # its check falls due: epoch 2 is stored, not its 1
    assert first.admission.epoch == 3
    await cluster.owners.handle(CancelExecution(execution_id=ids[0], now=NOW))
    await first.follow(0.5)  # it settles before granting anything
    assert await cluster.admitted() == ids[:1]
    await first.take_over()
    assert await cluster.admitted() == ids[:2]


async def test_the_fence_refuses_only_grants_of_an_older_epoch() -> None:
    epochs, clock = MemorySchedules(), Clock()
    fence = EpochFence(epochs, clock)
    assert await EpochClaim(epochs, "a").claim(NOW) == 1
    assert await EpochClaim(epochs, "b").claim(NOW) == 2
    grant = AdmitExecution(execution_id="ex-1", now=NOW, epoch=1)
    assert await fence.refusal(grant) == "a grant of admission epoch 1 is refused: epoch 2 admits now"
    assert await fence.refusal(AdmitExecution(execution_id="ex-1", now=NOW, epoch=2)) is None
    assert await fence.refusal(AdmitExecution(execution_id="ex-1", now=NOW)) is None  # one process: none
    assert await fence.refusal(CancelExecution(execution_id="ex-1", now=NOW)) is None
    assert fence.refused == 1
    assert (await epochs.load(EPOCH_KEY)).body["node"] == "b"


async def test_the_fence_reads_the_stored_epoch_again_when_its_copy_is_old() -> None:
    epochs, clock = MemorySchedules(), Clock()
    fence = EpochFence(epochs, clock)
    await EpochClaim(epochs, "a").claim(NOW)
    assert await fence.refusal(AdmitExecution(execution_id="ex-1", now=NOW, epoch=1)) is None
    await EpochClaim(epochs, "b").claim(NOW)
    assert await fence.refusal(AdmitExecution(execution_id="ex-1", now=NOW, epoch=1)) is None  # copy fresh
    clock.now += FRESH_SECONDS
    assert await fence.refusal(AdmitExecution(execution_id="ex-1", now=NOW, epoch=1)) is not None
    await EpochClaim(epochs, "c").claim(NOW)
    assert await fence.refusal(AdmitExecution(execution_id="ex-1", now=NOW, epoch=3)) is None  # newer: read now
    assert await fence.refusal(AdmitExecution(execution_id="ex-1", now=NOW, epoch=2)) is not None


async def test_the_engine_rejects_what_its_fence_refuses() -> None:
    log, registry = MemoryEventLog(), MemoryRegistry()
    await registry.register(Workflow("capped", concurrency=[{"limit": 1}]).task("work", "noop").build())
    engine = Engine(log, registry, clock=lambda: NOW)

    async def refuse_all(command: Command) -> str | None:
        return "fenced" if isinstance(command, AdmitExecution) else None

    engine.fence = refuse_all
    await engine.handle(StartExecution(execution_id="ex-0", now=NOW, workflow="capped", version=1))
    with pytest.raises(CommandRejected, match="fenced"):
        await engine.handle(AdmitExecution(execution_id="ex-0", now=NOW, epoch=1))
    state = await engine.load("ex-0")
    assert state is not None and state.admissions == 0
