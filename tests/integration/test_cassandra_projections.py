"""Cassandra timers and wait index pass their contracts against a real Cassandra, and more."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.cassandra import projections as cassandra_projections
from orchestrator.backends.cassandra.projections import (
    BUCKET_SECONDS,
    CassandraTimers,
    CassandraWaitIndex,
    TimerOptions,
    bucket_of,
)
from orchestrator.backends.urls import TIMERS, WAIT_INDEXES, open_backend
from orchestrator.instrumentation import attach
from orchestrator.ports import BackendUnavailable, Timers, WaitIndex
from tests.contracts.timers import OneShard, Recorder, TimersContract
from tests.contracts.waits import WaitIndexContract
from tests.integration.conftest import TestKeyspace
from tests.recording_instruments import RecordingInstruments

pytestmark = pytest.mark.integration


class TestCassandraTimers(TimersContract):
    @pytest.fixture(autouse=True)
    def _keyspace(self, cassandra_keyspace: TestKeyspace) -> None:
        self.keyspace = cassandra_keyspace

    async def make_timers(self, tmp_path: Path, clock: Callable[[], float]) -> Timers:
        await self.keyspace.empty_once(tmp_path)
        timers = open_backend(TIMERS, self.keyspace.url, "timers", clock)
        assert isinstance(timers, CassandraTimers)
        return timers


class TestCassandraWaitIndex(WaitIndexContract):
    @pytest.fixture(autouse=True)
    def _keyspace(self, cassandra_keyspace: TestKeyspace) -> None:
        self.keyspace = cassandra_keyspace

    async def make_waits(self, tmp_path: Path) -> WaitIndex:
        await self.keyspace.empty_once(tmp_path)
        waits = open_backend(WAIT_INDEXES, self.keyspace.url, "wait index")
        assert isinstance(waits, CassandraWaitIndex)
        await waits.start()
        return waits

    async def test_waits_survive_stop_and_reopen(self, tmp_path: Path) -> None:
        waits = await self.make_waits(tmp_path)
        await waits.update("x1", set(), {("paid", "a"), ("approved", None)})
        await waits.stop()

        reopened = await self.make_waits(tmp_path)
        try:
            assert await reopened.waiting(("paid", "a")) == ["x1"]
            assert await reopened.waiting(("approved", None)) == ["x1"]
        finally:
            await reopened.stop()


class Owned:
    """``Shards`` of a process that owns some of two shards: ``e<n>`` is in shard n % 2."""

    def __init__(self, owned: set[int] | None, count: int = 2) -> None:
        self.owned = owned
        self.count = count

    def shard_of(self, execution_id: str) -> int:
        return int(execution_id.rsplit("e", 1)[1]) % self.count

    def owned_shards(self) -> set[int] | None:
        return None if self.owned is None else set(self.owned)


async def started(
    keyspace: TestKeyspace,
    tmp_path: Path,
    shards: Owned | OneShard,
    *,
    options: str = "",
    clock: Callable[[], float] = time.time,
    cancel: bool = True,
) -> tuple[CassandraTimers, Recorder]:
    await keyspace.empty_once(tmp_path)
    timers = CassandraTimers.from_url(keyspace.url + options, clock)
    recorder = Recorder(clock=clock, cancel=cancel, timers=timers)
    await timers.start(recorder, shards)
    return timers, recorder


def rows(keyspace: TestKeyspace, table: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in keyspace.admin.execute(f"SELECT * FROM {keyspace.name}.{table}")]


async def cancelled(keyspace: TestKeyspace, timeout: float = 2.0) -> None:
    """Wait until no timer rows are left (cancels run just after the recorder records a fire)."""
    deadline = time.monotonic() + timeout
    while rows(keyspace, "timers") or rows(keyspace, "timers_by_execution"):
        assert time.monotonic() < deadline, rows(keyspace, "timers")
        await asyncio.sleep(0.05)


async def test_a_new_instance_fires_timers_scheduled_by_a_stopped_one(
    cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    old, _ = await started(cassandra_keyspace, tmp_path, OneShard())
    now = time.time()
    due = now + 6.0  # far enough for the setup below to end first, even on a loaded machine
    await old.schedule("e1", "later", due)
    await old.stop()  # before the poller could fire the past-due one below
    await cassandra_keyspace.empty_once(tmp_path)
    writer = CassandraTimers.from_url(cassandra_keyspace.url, time.time)
    await writer.start(Recorder(), Owned(set()))  # owns nothing: only writes
    await writer.schedule("e2", "overdue", now - 60)
    await writer.stop()

    new, recorder = await started(cassandra_keyspace, tmp_path, OneShard())
    began = time.time()
    try:
        assert await recorder.until(1, 5.0)
        assert recorder.keys[0] == ("e2", "overdue")  # the overdue one first, at once
        assert await recorder.until(2, 10.0)
        assert recorder.keys[1] == ("e1", "later")
        assert due <= recorder.fired[1][2] <= max(due, began) + 1.0  # when due, not before
        await cancelled(cassandra_keyspace)  # the recorder cancels each timer after recording it
    finally:
        await new.stop()


async def test_only_owned_shards_fire_and_a_gained_shard_takes_over_unacknowledged_fires(
    cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    zero, one = Owned({0}), Owned({1})
    first, fired_first = await started(cassandra_keyspace, tmp_path, zero)
    second, fired_second = await started(cassandra_keyspace, tmp_path, one, cancel=False)
    try:
        now = time.time()
        for n in range(10):
            await first.schedule(f"e{n}", "t", now - 1 + n * 0.05)

        assert await fired_first.until(5, 2.0) and await fired_second.until(5, 2.0)
        await asyncio.sleep(0.5)
        assert fired_first.keys == [(f"e{n}", "t") for n in range(0, 10, 2)]
        assert fired_second.keys == [(f"e{n}", "t") for n in range(1, 10, 2)]

        # The second process fired shard 1 without acknowledging (no cancel), then lost it.
        one.owned, zero.owned = set(), {0, 1}
        assert await fired_first.until(10, 1.5)  # picked up from shard 1's progress bucket
        assert sorted(fired_first.keys[5:]) == [(f"e{n}", "t") for n in range(1, 10, 2)]
        due = time.time() + 0.5
        await second.schedule("e7", "next", due)  # shard 1, scheduled by a non-owner
        assert await fired_first.until(11, 1.5)
        assert fired_first.keys[10] == ("e7", "next") and fired_first.fired[10][2] >= due
        assert len(fired_second.fired) == 5
    finally:
        await first.stop()
        await second.stop()


async def test_a_fire_that_is_not_cancelled_fires_again_after_the_retry_time(
    cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    timers, recorder = await started(
        cassandra_keyspace, tmp_path, OneShard(), options="?timer_retry_s=0.5&timer_poll_ms=50", cancel=False
    )
    recorded = RecordingInstruments()
    attach(timers, recorded)
    try:
        await timers.schedule("e1", "lost", time.time() - 1)
        assert await recorder.until(3, 3.0)  # after 0.5 s, then 1 s (doubling while not cancelled)
        times = [at for _, _, at in recorder.fired]
        assert 0.5 <= times[1] - times[0] <= 1.1
        assert 1.0 <= times[2] - times[1] <= 1.6
        assert set(recorder.keys) == {("e1", "lost")}
        [(backend, lateness)] = recorded.of("timer_fired")  # the first fire only, not the retries
        assert backend == "CassandraTimers" and 1.0 <= lateness < 2.0

        await timers.cancel("e1", "lost")
        await asyncio.sleep(2.0)
        assert len(recorder.fired) == 3
    finally:
        await timers.stop()


async def test_500_timers_across_shards_and_a_bucket_boundary_all_fire(
    cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    shift = [0.0]

    def clock() -> float:
        return time.time() + shift[0]

    timers, recorder = await started(cassandra_keyspace, tmp_path, Owned(None, count=8), clock=clock)
    real = time.time()  # jump the clock forward to 1.5 s before a bucket boundary
    shift[0] = (math.ceil(real / BUCKET_SECONDS) * BUCKET_SECONDS - 1.5 - real) % BUCKET_SECONDS
    try:
        now = clock()
        rng = random.Random(7)
        dues = {
            f"e{n}": now - rng.uniform(0, 300) if n < 100 else now + rng.uniform(0, 3) for n in range(500)
        }
        assert len({bucket_of(max(due, now)) for due in dues.values()}) == 2
        gate = asyncio.Semaphore(32)
        known: dict[str, float] = {}  # when each schedule call returned (a loaded machine is slow to insert)

        async def schedule(execution_id: str) -> None:
            async with gate:
                await timers.schedule(execution_id, f"t-{execution_id}", dues[execution_id])
                known[execution_id] = clock()

        await asyncio.gather(*(schedule(e) for e in dues))
        assert await recorder.until(500, 3.0 + 2.0)
        await asyncio.sleep(0.5)
        counts = Counter(recorder.keys)
        assert set(counts) == {(e, f"t-{e}") for e in dues}
        assert max(counts.values()) == 1  # each cancelled as it fired: no second fire
        for execution_id, _, fired_at in recorder.fired:
            assert fired_at >= dues[execution_id]
            assert fired_at <= max(dues[execution_id], known[execution_id]) + 2.0  # due and stored: soon fired
        await cancelled(cassandra_keyspace)
        assert sorted(shard for shard, _ in rows(cassandra_keyspace, "timer_shard_progress")) == list(
            range(8)
        )
    finally:
        await timers.stop()


async def test_a_restart_resumes_each_shard_from_its_progress_bucket(
    cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    def an_hour_ago() -> float:
        return time.time() - 3600

    writer, _ = await started(cassandra_keyspace, tmp_path, Owned(set()), clock=an_hour_ago)
    await writer.schedule("e0", "old", an_hour_ago() + 5)  # in a bucket an hour back
    await writer.stop()
    (shard, mark), = rows(cassandra_keyspace, "timer_shard_progress")  # fmt: skip
    assert shard == 0 and mark <= bucket_of(an_hour_ago())

    timers, recorder = await started(cassandra_keyspace, tmp_path, Owned({0}), options="?timer_retry_s=0.3")
    try:
        assert await recorder.until(1, 1.5)
        assert recorder.keys == [("e0", "old")]
        deadline = time.monotonic() + 3  # the next sweep finds the old bucket empty: move past it
        while rows(cassandra_keyspace, "timer_shard_progress") != [
            (0, bucket_of(time.time() - timers.grace))
        ]:
            assert time.monotonic() < deadline, rows(cassandra_keyspace, "timer_shard_progress")
            await asyncio.sleep(0.1)
    finally:
        await timers.stop()


async def test_rescheduling_and_cancelling_keep_one_row_per_timer(
    cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    timers, _ = await started(cassandra_keyspace, tmp_path, Owned(set()))
    try:
        now = time.time()
        await timers.schedule("e1", "t", now + 600)
        await timers.schedule("e1", "t", now + 7200)
        await timers.schedule("e1", "t", now + 7200)
        (timer,) = rows(cassandra_keyspace, "timers")
        (lookup,) = rows(cassandra_keyspace, "timers_by_execution")
        assert timer == (1, bucket_of(now + 7200), now + 7200, "e1", "t", now + 7200)
        assert lookup == ("e1", "t", bucket_of(now + 7200), now + 7200, now + 7200, 1)

        await timers.schedule("e3", "overdue", now - 500)  # stored to fire now, not in an old bucket
        overdue = [r for r in rows(cassandra_keyspace, "timers") if r[3] == "e3"]
        assert overdue[0][1] == bucket_of(now) or overdue[0][1] == bucket_of(time.time())
        assert overdue[0][5] == now - 500

        await timers.cancel("e1", "t")
        await timers.cancel("e3", "overdue")
        assert rows(cassandra_keyspace, "timers") == rows(cassandra_keyspace, "timers_by_execution") == []
    finally:
        await timers.stop()


async def test_stop_ends_the_poller_and_can_be_repeated(
    cassandra_keyspace: TestKeyspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cassandra_projections, "START_WAIT_SECONDS", 0.2)
    timers, _ = await started(cassandra_keyspace, tmp_path, OneShard())
    poller = timers._task
    assert poller is not None and not poller.done()
    await timers.stop()
    await timers.stop()
    assert poller.done() and timers._task is None
    with pytest.raises(RuntimeError, match="not started"):
        await timers.schedule("e1", "t", time.time())


@pytest.mark.parametrize("kind", ["timers", "wait index"])
async def test_an_unreachable_cluster_fails_start_clearly(kind: str) -> None:
    url = "cassandra://127.0.0.1:1/orchestrator"
    began = time.monotonic()
    with pytest.raises(BackendUnavailable) as raised:
        if kind == "timers":
            url += "?timer_poll_ms=100"
            await CassandraTimers.from_url(url, time.time).start(Recorder(), OneShard())
        else:
            await CassandraWaitIndex.from_url(url).start()
    assert time.monotonic() - began < 5
    assert url in str(raised.value) and "no host available" in str(raised.value)


def test_timer_options_come_off_the_url() -> None:
    options, settings = TimerOptions.from_url(
        "cassandra://u:pw@h/ks?consistency=ONE&timer_poll_ms=50&timer_retry_s=2.5"
    )
    assert options == TimerOptions(poll_seconds=0.05, retry_seconds=2.5)
    assert settings.consistency == "ONE" and settings.keyspace == "ks"
    assert settings.url == "cassandra://u:***@h/ks?consistency=ONE&timer_poll_ms=50&timer_retry_s=2.5"
    assert TimerOptions.from_url("cassandra://h/ks")[0] == TimerOptions()
    for bad in ("timer_poll_ms=0", "timer_retry_s=soon", "timer_retry_s=inf", "colour=blue"):
        with pytest.raises(ValueError):
            TimerOptions.from_url(f"cassandra://h/ks?{bad}")
    with pytest.raises(ValueError):  # the wait index takes no timer options
        CassandraWaitIndex.from_url("cassandra://h/ks?timer_poll_ms=50")


async def eventually_counted(
    recorded: RecordingInstruments, name: str, expected: int, timeout: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout
    while not (recorded.of(name) and recorded.of(name)[-1][1] == expected):
        assert time.monotonic() < deadline, recorded.of(name)[-3:]
        await asyncio.sleep(0.05)


async def test_timers_pending_counts_the_timers_of_the_owned_shards(
    cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    counts: list[RecordingInstruments] = []
    workers: list[CassandraTimers] = []
    for owned in ({0}, {1}):  # two workers, one shard each: their gauges add up to every timer
        timers = CassandraTimers.from_url(cassandra_keyspace.url, time.time)
        timers.count_seconds = 0.2
        counts.append(RecordingInstruments())
        attach(timers, counts[-1])
        await timers.start(Recorder(clock=time.time, cancel=True, timers=timers), Owned(owned))
        workers.append(timers)
    try:
        later = time.time() + 3600
        for execution_id in ("e0", "e2", "e4", "e1"):
            await workers[0].schedule(execution_id, "t", later)
        await eventually_counted(counts[0], "timers_pending", 3)
        await eventually_counted(counts[1], "timers_pending", 1)
        assert counts[0].of("timers_pending")[-1][0] == "CassandraTimers"
        await workers[0].cancel("e2", "t")
        await eventually_counted(counts[0], "timers_pending", 2)
    finally:
        for timers in workers:
            await timers.stop()


async def test_waits_parked_counts_every_entry_of_the_index(
    cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    waits = CassandraWaitIndex.from_url(cassandra_keyspace.url)
    waits.count_seconds = 0.2
    recorded = RecordingInstruments()
    attach(waits, recorded)
    await waits.start()
    try:
        await waits.update("x1", set(), {("paid", "a"), ("approved", None)})
        await waits.update("x2", set(), {("paid", "b")})
        await eventually_counted(recorded, "waits_parked", 3)
        await waits.update("x1", {("paid", "a"), ("approved", None)}, set())
        await eventually_counted(recorded, "waits_parked", 1)
        assert recorded.of("waits_parked")[-1][0] == "CassandraWaitIndex"
    finally:
        await waits.stop()


async def test_a_runtime_on_cassandra_exports_both_gauges(
    cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    from prometheus_client import generate_latest

    from orchestrator.observability.prometheus import PrometheusInstruments
    from orchestrator.runtime import Runtime
    from orchestrator.settings import Settings

    await cassandra_keyspace.empty_once(tmp_path)
    metrics = PrometheusInstruments(process_metrics=False)
    settings = Settings(
        auth=False, event_log_url=cassandra_keyspace.url, retention_interval=0, doctor_interval=0
    )
    runtime = Runtime(settings, instruments=metrics)
    assert isinstance(runtime.timers, CassandraTimers) and isinstance(runtime.waits, CassandraWaitIndex)
    runtime.timers.count_seconds = runtime.waits.count_seconds = 0.2
    async with runtime:
        await runtime.waits.update("x1", set(), {("paid", "a")})
        deadline = time.monotonic() + 10
        wanted = (
            'orchestrator_timers_pending{backend="CassandraTimers"}',
            'orchestrator_waits_parked{backend="CassandraWaitIndex"}',
        )
        while not all(name in generate_latest(metrics.registry).decode() for name in wanted):
            assert time.monotonic() < deadline, generate_latest(metrics.registry).decode()[-2000:]
            await asyncio.sleep(0.1)
