"""KafkaTransport against the real Kafka from ``scripts/services``: ordering, commit points, redelivery.

Each test has its own topics and consumer groups (a uuid prefix), deleted at the end.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from connectors.base import Connectors
from connectors.noop import NoopConnector
from orchestrator.backends.kafka.client import KafkaOptions
from orchestrator.backends.kafka.codec import encode_command
from orchestrator.backends.kafka.transport import KafkaTransport
from orchestrator.backends.urls import TRANSPORTS, open_backend
from orchestrator.core.commands import Command, FireTimer
from orchestrator.ports import BackendUnavailable, StepTask
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow
from tests.recording_instruments import RecordingInstruments

pytestmark = pytest.mark.integration
WAIT = 30.0  # generous: a group join or rebalance takes a few seconds


@dataclass
class Recorder:
    """Handlers that record what they were given; a test waits for counts."""

    commands: list[Command] = field(default_factory=list)
    tasks: list[StepTask] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_command(self, command: Command) -> None:
        self.commands.append(command)
        self.changed.set()

    async def on_task(self, task: StepTask) -> None:
        self.tasks.append(task)
        self.changed.set()

    async def until(self, done: Callable[[], bool], timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def prefix(kafka_url: str) -> AsyncIterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    admin = AIOKafkaAdminClient(bootstrap_servers=_servers(kafka_url))
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(name)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def _servers(kafka_url: str) -> list[str]:
    return kafka_url.removeprefix("kafka://").split(",")


def url(kafka_url: str, prefix: str, **options: object) -> str:
    query = {"commands": f"{prefix}.commands", "tasks": f"{prefix}.tasks", "group": prefix, "grace": 1}
    query.update(options)
    return kafka_url + "?" + "&".join(f"{k}={v}" for k, v in query.items())


def timer(execution_id: str, index: int) -> FireTimer:
    return FireTimer(execution_id=execution_id, now=time.time(), timer_id=str(index))


def task(execution_id: str, name: str) -> StepTask:
    return StepTask(execution_id, "wf", name, 1, f"{execution_id}/{name}", "noop", {}, None, name)


async def started(
    transport_url: str,
    on_command: Callable[[Command], Awaitable[None]],
    on_task: Callable[[StepTask], Awaitable[None]],
) -> KafkaTransport:
    transport = KafkaTransport.from_url(transport_url)
    await transport.start(on_command, on_task)
    return transport


async def test_commands_of_one_execution_arrive_in_order(kafka_url: str, prefix: str) -> None:
    seen = Recorder()

    async def jittery(command: Command) -> None:  # handlers of different executions interleave
        await asyncio.sleep(0.002 * (hash(command.command_id) % 3))
        await seen.on_command(command)

    worker = await started(url(kafka_url, prefix), jittery, seen.on_task)
    api = open_backend(TRANSPORTS, url(kafka_url, prefix, role="api"), "transport")
    await api.start(seen.on_command, seen.on_task)
    assert api.owned_shards() == set()  # an API process produces only
    try:
        sent = [timer(f"exec-{e}", i) for i in range(40) for e in range(5)]
        for command in sent:
            await api.submit(command)
        await seen.until(lambda: len(seen.commands) >= len(sent))
    finally:
        await api.stop()
        await worker.stop()
    for e in range(5):
        got = [c for c in seen.commands if c.execution_id == f"exec-{e}"]
        assert [c.timer_id for c in got if isinstance(c, FireTimer)] == [str(i) for i in range(40)]
    assert len({c.command_id for c in seen.commands}) == len(sent)


async def test_executions_spread_over_partitions_each_on_one(kafka_url: str, prefix: str) -> None:
    seen = Recorder()
    worker = await started(url(kafka_url, prefix, partitions=6), seen.on_command, seen.on_task)
    try:
        for e in range(30):
            await worker.submit(timer(f"spread-{e}", 0))
            await worker.submit(timer(f"spread-{e}", 1))
        await seen.until(lambda: len(seen.commands) >= 60)
        assert worker.owned_shards() == set(range(6))  # the only worker owns every shard
    finally:
        await worker.stop()
    partitions = await _partitions_by_key(kafka_url, f"{prefix}.commands", 6)
    assert all(len(found) == 1 for found in partitions.values())  # one execution, one partition
    assert len(set().union(*partitions.values())) >= 5  # 30 executions use (nearly) all 6
    for key, (partition,) in partitions.items():
        assert worker.shard_of(key.decode()) == partition  # shards are the commands partitions
    assert worker.durable


async def _partitions_by_key(kafka_url: str, topic: str, count: int) -> dict[bytes, set[int]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=_servers(kafka_url), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: dict[bytes, set[int]] = {}
        read = 0
        async with asyncio.timeout(WAIT):
            while read < sum(ends.values()):
                for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                    for record in records:
                        assert record.key is not None
                        found.setdefault(record.key, set()).add(tp.partition)
                        read += 1
        return found
    finally:
        await consumer.stop()


@pytest.mark.parametrize("failure", ["raises", "hangs"])
async def test_command_committed_only_after_on_command_returns(
    kafka_url: str, prefix: str, failure: str
) -> None:
    first, second = Recorder(), Recorder()
    stuck = asyncio.Event()

    async def fails_on_third(command: Command) -> None:
        if isinstance(command, FireTimer) and command.timer_id == "2":
            stuck.set()
            if failure == "raises":
                raise RuntimeError("event log unavailable")
            await asyncio.Event().wait()
        await first.on_command(command)

    transport_url = url(kafka_url, prefix, command_concurrency=1)
    a = await started(transport_url, fails_on_third, first.on_task)
    try:
        for index in range(4):
            await a.submit(timer("redeliver", index))
        async with asyncio.timeout(WAIT):
            await stuck.wait()
        await first.until(lambda: len(first.commands) >= 2)
        await asyncio.sleep(0.3)  # the committer commits the two done records
    finally:
        await a.stop()  # the stuck record is abandoned after the grace period, not committed
    assert [c.timer_id for c in first.commands if isinstance(c, FireTimer)] == ["0", "1"]
    stuck_id = await _command_id_at(kafka_url, f"{prefix}.commands", "redeliver", offset_index=2)

    b = await started(transport_url, second.on_command, second.on_task)
    try:
        await second.until(lambda: len(second.commands) >= 2)
    finally:
        await b.stop()
    redelivered = [c for c in second.commands if isinstance(c, FireTimer)]
    assert [c.timer_id for c in redelivered] == ["2", "3"]  # 0 and 1 were committed
    assert redelivered[0].command_id == stuck_id


async def _command_id_at(kafka_url: str, topic: str, key: str, offset_index: int) -> str:
    """The command id written in the record ``offset_index`` of ``key``'s records (read raw)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=_servers(kafka_url), auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        mine: list[str] = []
        async with asyncio.timeout(WAIT):
            while len(mine) <= offset_index:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    mine += [json.loads(r.value)["id"] for r in records if r.key == key.encode() and r.value]
        return mine[offset_index]
    finally:
        await consumer.stop()


async def test_tasks_run_concurrently(kafka_url: str, prefix: str) -> None:
    running, everyone_in = 0, asyncio.Event()

    async def meets_the_others(_: StepTask) -> None:
        nonlocal running
        running += 1
        if running == 10:
            everyone_in.set()
        async with asyncio.timeout(WAIT):
            await everyone_in.wait()  # only returns once all ten run at the same time

    seen = Recorder()
    worker = await started(url(kafka_url, prefix, concurrency=16), seen.on_command, meets_the_others)
    try:
        for index in range(10):  # half of one execution (one partition), half of others
            await worker.dispatch(task("same" if index < 5 else f"other-{index}", f"t{index}"))
        async with asyncio.timeout(WAIT):
            await everyone_in.wait()
    finally:
        await worker.stop()


async def test_unfinished_task_redelivered_after_restart(kafka_url: str, prefix: str) -> None:
    first, second = Recorder(), Recorder()

    async def t2_never_ends(item: StepTask) -> None:
        if item.step == "t2":
            await asyncio.Event().wait()
        await first.on_task(item)

    transport_url = url(kafka_url, prefix)
    a = await started(transport_url, first.on_command, t2_never_ends)
    try:
        for index in range(5):
            await a.dispatch(task("one-partition", f"t{index}"))
        await first.until(lambda: len(first.tasks) >= 4)
        await asyncio.sleep(0.3)
    finally:
        await a.stop()
    assert {t.step for t in first.tasks} == {"t0", "t1", "t3", "t4"}

    b = await started(transport_url, second.on_command, second.on_task)
    try:
        await second.until(lambda: "t2" in {t.step for t in second.tasks})
        await asyncio.sleep(1.0)  # anything else would arrive with it
    finally:
        await b.stop()
    # Committed up to the lowest unfinished task: t2 comes back, t3 and t4 run again (at least once).
    assert sorted(t.step for t in second.tasks) == ["t2", "t3", "t4"]
    assert next(t for t in second.tasks if t.step == "t2").attempt_id == "one-partition/t2"


async def test_bad_record_is_skipped_and_committed(kafka_url: str, prefix: str) -> None:
    seen = Recorder()
    transport_url = url(kafka_url, prefix, partitions=1)
    worker = await started(transport_url, seen.on_command, seen.on_task)
    producer = AIOKafkaProducer(bootstrap_servers=_servers(kafka_url))
    await producer.start()
    try:
        await producer.send_and_wait(f"{prefix}.commands", b"\x00not a command", key=b"bad")
        await producer.send_and_wait(f"{prefix}.commands", b'{"specversion":"1.0"}', key=b"bad")
        await producer.send_and_wait(f"{prefix}.tasks", b"[]", key=b"bad")
        await worker.submit(timer("after-bad", 0))
        await worker.dispatch(task("after-bad", "t"))
        await seen.until(lambda: bool(seen.commands and seen.tasks))
        await asyncio.sleep(0.5)
    finally:
        await producer.stop()
        await worker.stop()
    assert [c.execution_id for c in seen.commands] == ["after-bad"]
    options = KafkaOptions.from_url(transport_url)
    for topic, group, end in ((options.commands, "commands", 3), (options.tasks, "tasks", 2)):
        consumer = AIOKafkaConsumer(bootstrap_servers=_servers(kafka_url), group_id=f"{prefix}.{group}")
        await consumer.start()
        try:
            assert await consumer.committed(TopicPartition(topic, 0)) == end
        finally:
            await consumer.stop()


async def test_poison_records_neither_stop_the_consumer_nor_block_the_partition(kafka_url: str, prefix: str) -> None:
    """Before, a huge integer or deep nesting raised ValueError/RecursionError out of the decoder,
    which ended the fetch loop: the worker consumed nothing more."""
    seen = Recorder()
    transport_url = url(kafka_url, prefix, partitions=1)
    worker = await started(transport_url, seen.on_command, seen.on_task)
    good = encode_command(timer("poisoned", 0))
    poison = [
        good.replace(b'"timer_id":"0"', b'"timer_id":"0","n":' + b"7" * 5000),
        good.replace(b'"timer_id":"0"', b'"timer_id":' + b"[" * 50_000),
        good.replace(b'"timer_id":"0"', b'"timer_id":"0","x":NaN'),
        good.replace(b'"timer_id":"0"', b'"timer_id":"\xff"'),
    ]
    assert all(p != good for p in poison)
    producer = AIOKafkaProducer(bootstrap_servers=_servers(kafka_url))
    await producer.start()
    try:
        for value in poison:
            await producer.send_and_wait(f"{prefix}.commands", value, key=b"poisoned")
            await producer.send_and_wait(f"{prefix}.tasks", value, key=b"poisoned")
        await worker.submit(timer("after-poison", 0))
        await worker.dispatch(task("after-poison", "t"))
        await seen.until(lambda: bool(seen.commands and seen.tasks))
        await asyncio.sleep(0.5)
    finally:
        await producer.stop()
        await worker.stop()
    assert [c.execution_id for c in seen.commands] == ["after-poison"]
    assert [t.execution_id for t in seen.tasks] == ["after-poison"]
    options = KafkaOptions.from_url(transport_url)
    for topic, group in ((options.commands, "commands"), (options.tasks, "tasks")):
        consumer = AIOKafkaConsumer(bootstrap_servers=_servers(kafka_url), group_id=f"{prefix}.{group}")
        await consumer.start()
        try:
            assert await consumer.committed(TopicPartition(topic, 0)) == len(poison) + 1
        finally:
            await consumer.stop()


async def test_a_second_worker_takes_over_partitions_without_reordering(kafka_url: str, prefix: str) -> None:
    handled: list[tuple[str, Command]] = []
    progress = Recorder()

    def recorder(name: str) -> Callable[[Command], Awaitable[None]]:
        async def on_command(command: Command) -> None:
            await asyncio.sleep(0.005)
            handled.append((name, command))
            progress.changed.set()

        return on_command

    async def no_tasks(_: StepTask) -> None:
        return None

    transport_url = url(kafka_url, prefix, partitions=4)
    a = await started(transport_url, recorder("a"), no_tasks)
    b: KafkaTransport | None = None
    try:
        rounds, after_b = 0, 0
        async with asyncio.timeout(WAIT * 2):
            while after_b < 10:  # keep commands flowing until b has taken over some partitions
                for e in range(8):
                    await a.submit(timer(f"move-{e}", rounds))
                rounds += 1
                if rounds == 10:
                    b = await started(transport_url, recorder("b"), no_tasks)
                if any(name == "b" for name, _ in handled):
                    after_b += 1
                await asyncio.sleep(0.05)
        await progress.until(lambda: len({c.command_id for _, c in handled}) >= 8 * rounds, WAIT * 2)
    finally:
        await a.stop()
        if b is not None:
            await b.stop()
    for e in range(8):
        firsts: list[int] = []
        for _, command in handled:
            if command.execution_id == f"move-{e}" and isinstance(command, FireTimer):
                index = int(command.timer_id)
                if index not in firsts:
                    firsts.append(index)
        assert firsts == list(range(rounds))  # every command, first deliveries in order
    assert {name for name, _ in handled} == {"a", "b"}  # the partitions were shared after the join


async def test_a_workflow_runs_end_to_end_over_kafka(kafka_url: str, prefix: str, tmp_path: Path) -> None:
    """The runtime with this transport: tasks and their answers travel through Kafka."""
    settings = Settings(event_log_url=f"sqlite:///{tmp_path}/log.db", transport_url=url(kafka_url, prefix))
    workflow = Workflow("kafka-e2e")
    for index in range(5):
        workflow.task(f"s{index}", "noop")
    recorded = RecordingInstruments()
    async with Runtime(settings, connectors=Connectors([NoopConnector()]), instruments=recorded) as runtime:
        assert isinstance(runtime.transport, KafkaTransport)
        await runtime.register(workflow.build())
        ids = [(await runtime.start_execution("kafka-e2e", {"n": n})).execution_id for n in range(10)]
        states = await asyncio.gather(*(runtime.wait(i, timeout=WAIT) for i in ids))
        topics = {f"{prefix}.commands", f"{prefix}.tasks"}
        for _ in range(int(WAIT * 10)):  # lag is reported about once a second per group
            if {topic for _, topic, _, _ in recorded.of("consumer_lag")} == topics:
                break
            await asyncio.sleep(0.1)
    assert {state.status for state in states} == {"succeeded"}
    outcomes = [(kind, outcome) for kind, outcome, _ in recorded.of("command_handled")]
    assert outcomes.count(("StartExecution", "applied")) == 10  # started by the API side, in-process
    assert outcomes.count(("CompleteStep", "applied")) == 50  # answers from the tasks topic
    lags = recorded.of("consumer_lag")
    assert {group for group, *_ in lags} == {f"{prefix}.commands", f"{prefix}.tasks"}
    assert all(0 <= partition < 12 and lag >= 0 for _, _, partition, lag in lags)
    assert len(recorded.of("step_finished")) == 50


async def test_unreachable_broker_is_one_clear_error() -> None:
    transport = KafkaTransport.from_url("kafka://127.0.0.1:1")
    began = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        await transport.start(Recorder().on_command, Recorder().on_task)
    assert time.monotonic() - began < 15
    message = str(caught.value)
    assert message.startswith("Kafka transport kafka://127.0.0.1:1: cannot reach the brokers within 10s")
    assert "Unable to bootstrap" in message
    with pytest.raises(RuntimeError, match="not started"):
        await transport.submit(timer("e", 0))


def test_url_options_are_parsed_and_checked() -> None:
    options = KafkaOptions.from_url("kafka://h1,h2:9093?partitions=3&role=api&send_timeout=2.5")
    assert options.bootstrap == ("h1:9092", "h2:9093")
    assert (options.partitions, options.role, options.send_timeout) == (3, "api", 2.5)
    for bad in ("kafka://h?partitions=x", "kafka://h?colour=red", "kafka://h?role=boss", "kafka://"):
        with pytest.raises(ValueError):
            KafkaOptions.from_url(bad)
