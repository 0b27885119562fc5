"""Fair scheduling of step tasks on the real Kafka: a tenant flooding the tasks topic does not keep
another tenant's tasks behind its backlog, weights set the shares, and reading past the flood
loses no task (every task not finished is delivered again after a restart)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from orchestrator.backends.kafka.codec import encode_task
from orchestrator.backends.kafka.transport import FAIR_FETCH_WAIT_BUSY_MS, FAIR_FETCH_WAIT_MS, KafkaTransport
from orchestrator.core.commands import Command
from orchestrator.ports import StepTask

pytestmark = pytest.mark.integration
STEP = 0.005  # each noisy step: 4 slots serve 800 a second at most
CONCURRENCY = 4


@pytest.fixture
async def prefix(kafka_url: str) -> AsyncIterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_url.removeprefix("kafka://").split(","))
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(name)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def transport_url(kafka_url: str, prefix: str, **options: object) -> str:
    query: dict[str, object] = {
        "commands": f"{prefix}.commands", "tasks": f"{prefix}.tasks", "group": prefix, "grace": 1,
        "partitions": 2, "concurrency": CONCURRENCY,
    }
    query.update(options)
    return kafka_url + "?" + "&".join(f"{k}={v}" for k, v in query.items())


def task(tenant: str, index: int) -> StepTask:
    execution_id = f"{tenant}-{index}"
    return StepTask(execution_id, "wf", "s", 1, f"{execution_id}/s", "noop", {}, None, execution_id, tenant=tenant)


async def ignore(_: Command) -> None:
    return None


async def flood(transport: KafkaTransport, tenant: str, count: int) -> None:
    for start in range(0, count, 500):
        await asyncio.gather(*(transport.dispatch(task(tenant, i)) for i in range(start, min(start + 500, count))))


class Served:
    """The handler: notes each task as it starts, then sleeps ``STEP``."""

    def __init__(self, step: float = STEP) -> None:
        self.step = step
        self.order: list[str] = []  # tenant of each task, in the order they started
        self.started: dict[str, float] = {}  # execution id -> when it started
        self.ids: list[str] = []  # execution ids of the tasks that finished
        self.changed = asyncio.Event()
        self.reading: dict[str, int | None] = {}  # the worker's read-ahead figures when it stopped

    async def __call__(self, item: StepTask) -> None:
        self.order.append(item.tenant)
        self.started[item.execution_id] = time.monotonic()
        await asyncio.sleep(self.step)
        self.ids.append(item.execution_id)
        self.changed.set()

    async def until(self, done: Callable[[], bool], timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()


async def run_worker(
    url: str,
    served: Served,
    until: Callable[[], bool],
    before: Callable[[KafkaTransport], Awaitable[None]] | None = None,
) -> None:
    worker = KafkaTransport.from_url(url)
    await worker.start(ignore, served)
    try:
        if before is not None:
            await before(worker)
        await served.until(until)
        served.reading = worker.read_ahead()
    finally:
        await worker.stop()


async def queued_flood(
    kafka_url: str, prefix: str, noisy: int, quiet: int, everything: bool = False, **options: object
) -> Served:
    """Noisy tasks first, then the quiet ones behind them in the same two partitions, all in Kafka
    before the worker starts; the order the worker serves them in."""
    url = transport_url(kafka_url, prefix, **options)
    producer = KafkaTransport.from_url(transport_url(kafka_url, prefix, role="api"))
    await producer.start(ignore, Served())
    try:
        await flood(producer, "noisy", noisy)
        await flood(producer, "quiet", quiet)
    finally:
        await producer.stop()
    served = Served()
    if everything:
        await run_worker(url, served, lambda: len(set(served.ids)) == noisy + quiet)
    else:
        await run_worker(url, served, lambda: served.order.count("quiet") == quiet)
    return served


async def test_quiet_tasks_queued_behind_a_flood_are_served_within_a_round(kafka_url: str, prefix: str) -> None:
    served = await queued_flood(kafka_url, prefix, noisy=2000, quiet=10)
    quiet_at = [i for i, tenant in enumerate(served.order) if tenant == "quiet"]
    # Behind 2,000 noisy records in their partitions, yet served within the first few rounds: the
    # worker read past the flood, and the gate alternates the tenants.
    assert quiet_at[-1] < 150, quiet_at
    gaps = [b - a for a, b in itertools.pairwise(quiet_at)]
    assert max(gaps) <= 2 * CONCURRENCY, quiet_at  # about one noisy task per quiet one, not a backlog


async def test_in_fetch_order_the_quiet_tenant_waits_for_the_whole_flood(kafka_url: str, prefix: str) -> None:
    """The contrast (``fair=false``, one FIFO): the same quiet tasks come after the flood in their
    partition (about half of it on each of the two partitions)."""
    served = await queued_flood(kafka_url, prefix, noisy=600, quiet=10, fair="false")
    quiet_at = [i for i, tenant in enumerate(served.order) if tenant == "quiet"]
    assert quiet_at[0] > 250, quiet_at


async def test_a_quiet_tenant_starting_during_a_flood_waits_about_one_round(kafka_url: str, prefix: str) -> None:
    url = transport_url(kafka_url, prefix)
    served = Served()
    sent: dict[str, float] = {}

    async def quiet_while_flooded(worker: KafkaTransport) -> None:
        await flood(worker, "noisy", 4000)  # 5 s of work for the 4 slots
        for index in range(20):
            await worker.dispatch(task("quiet", index))
            sent[f"quiet-{index}"] = time.monotonic()
            await asyncio.sleep(0.05)

    await run_worker(url, served, lambda: served.order.count("quiet") == 20, quiet_while_flooded)
    waits = sorted(served.started[i] - sent[i] for i in sent)
    assert served.order.count("noisy") < 4000  # the flood was still draining when the last quiet task ran
    assert waits[-1] < 1.0, waits  # against seconds of noisy backlog queued ahead of it


async def test_weights_set_the_shares_of_two_flooding_tenants(kafka_url: str, prefix: str) -> None:
    url = transport_url(kafka_url, prefix)
    producer = KafkaTransport.from_url(transport_url(kafka_url, prefix, role="api"))
    await producer.start(ignore, Served())
    try:
        await asyncio.gather(flood(producer, "gold", 1000), flood(producer, "basic", 1000))
    finally:
        await producer.stop()
    served = Served(step=0.02)
    worker = KafkaTransport.from_url(url)
    worker.set_tenant_weights({"gold": 3})
    await worker.start(ignore, served)
    try:
        await served.until(lambda: len(served.order) >= 600)
    finally:
        await worker.stop()
    shares = Counter(served.order[100:500])  # both tenants busy the whole time
    assert 0.65 <= shares["gold"] / 400 <= 0.85, shares  # 3:1 is 0.75


async def test_tasks_read_past_and_left_in_kafka_are_delivered_after_a_restart(kafka_url: str, prefix: str) -> None:
    url = transport_url(kafka_url, prefix)
    producer = KafkaTransport.from_url(transport_url(kafka_url, prefix, role="api"))
    await producer.start(ignore, Served())
    try:
        await flood(producer, "noisy", 1000)
        await flood(producer, "quiet", 50)
    finally:
        await producer.stop()
    first = Served()
    await run_worker(url, first, lambda: len(first.ids) >= 300)  # stops with most records deferred
    second = Served()
    expected = {f"noisy-{i}" for i in range(1000)} | {f"quiet-{i}" for i in range(50)}
    await run_worker(url, second, lambda: set(first.ids) | set(second.ids) >= expected)
    assert set(first.ids) | set(second.ids) == expected
    # At least once, and no more than the records in flight or done but not yet committed again.
    assert len(set(first.ids) & set(second.ids)) <= 2 * 2 * CONCURRENCY + 100


async def test_a_flood_longer_than_the_read_ahead_window_drains_and_is_committed(kafka_url: str, prefix: str) -> None:
    """Past ``read_ahead`` records the lane stops reading and waits for its oldest to finish; it
    resumes on its own, runs everything, and commits it all (a second worker gets nothing)."""
    served = await queued_flood(kafka_url, prefix, noisy=800, quiet=10, everything=True, read_ahead=100)
    quiet_at = [i for i, tenant in enumerate(served.order) if tenant == "quiet"]
    assert quiet_at[0] > 150, quiet_at  # behind more than a window of noisy records: read in turn
    await asyncio.sleep(0.5)  # the last commits
    again = Served()
    worker = KafkaTransport.from_url(transport_url(kafka_url, prefix))
    await worker.start(ignore, again)
    try:
        await worker.dispatch(task("marker", 0))  # it reads from the committed offsets up to this one
        await again.until(lambda: "marker" in again.order)
        await asyncio.sleep(0.5)
    finally:
        await worker.stop()
    assert again.order == ["marker"]


async def test_deferred_records_are_not_decoded_and_the_fetch_wait_is_short_while_they_wait(
    kafka_url: str, prefix: str
) -> None:
    """A task record names its tenant in a header: read-ahead defers a flood's records without
    decoding them. While records are deferred the consumer's fetch wait is the short one (its
    seeks must not wait behind a long poll); once none is, the long one again."""
    producer = KafkaTransport.from_url(transport_url(kafka_url, prefix, role="api"))
    await producer.start(ignore, Served())
    try:
        await flood(producer, "noisy", 3000)
    finally:
        await producer.stop()
    served = Served(step=0.002)
    worker = KafkaTransport.from_url(transport_url(kafka_url, prefix))
    await worker.start(ignore, served)
    try:
        await served.until(lambda: len(served.ids) >= 100)
        reading = worker.read_ahead()
        assert reading["deferred"] and reading["fetch_wait_ms"] == FAIR_FETCH_WAIT_BUSY_MS, reading
        decoded = reading["decoded"]
        assert decoded is not None and decoded < 2000, reading  # not the 3,000 read: those deferred were not
        await served.until(lambda: len(set(served.ids)) == 3000, timeout=120)
        await worker.dispatch(task("marker", 0))  # one more fetch batch after the last deferred went
        await served.until(lambda: "marker" in served.order)
        reading = worker.read_ahead()
        assert reading["deferred"] == 0 and reading["fetch_wait_ms"] == FAIR_FETCH_WAIT_MS, reading
    finally:
        await worker.stop()


async def test_a_task_record_without_a_tenant_header_is_served(kafka_url: str, prefix: str) -> None:
    """Records of an older producer have no tenant header: read-ahead decodes them for it."""
    url = transport_url(kafka_url, prefix)
    producer = KafkaTransport.from_url(transport_url(kafka_url, prefix, role="api"))
    await producer.start(ignore, Served())  # creates the topics
    await producer.stop()
    raw = AIOKafkaProducer(bootstrap_servers=kafka_url.removeprefix("kafka://").split(","))
    await raw.start()
    try:
        for index in range(3):
            old = task("legacy", index)
            await raw.send_and_wait(f"{prefix}.tasks", encode_task(old), key=old.execution_id.encode())
    finally:
        await raw.stop()
    served = Served()
    await run_worker(url, served, lambda: served.order.count("legacy") == 3)
    assert sorted(served.ids) == ["legacy-0", "legacy-1", "legacy-2"]


@pytest.mark.parametrize(("parked_bytes", "rereads"), [(16 << 20, False), (0, True)])
async def test_deferred_records_are_taken_from_memory_within_the_parking_budget(
    kafka_url: str, prefix: str, parked_bytes: int, rereads: bool
) -> None:
    """Within ``parked_bytes`` a flood's deferred records are kept in memory and taken from there:
    the consumer never seeks back. Without a budget it reads them from Kafka again."""
    served = await queued_flood(kafka_url, prefix, noisy=1500, quiet=10, everything=True, parked_bytes=parked_bytes)
    assert sorted(set(served.ids)) == sorted({f"noisy-{i}" for i in range(1500)} | {f"quiet-{i}" for i in range(10)})
    assert (served.reading["rereads"] > 0) is rereads, served.reading
