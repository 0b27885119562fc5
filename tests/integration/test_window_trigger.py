"""The windowed Kafka trigger against the real broker: failed logins published with kcat lock accounts.

Each test uses its own topic and workflow (so its own faust app, consumer group and changelogs).
The runtime is embedded (SQLite in tmp_path, in-process transport); the trigger's faust app runs
in the test's event loop. Messages are published after ``start`` returned (a new trigger starts at
the end of its topic) and all within a second, so with a 60 s window they share a window.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from orchestrator.ports import BackendUnavailable
from orchestrator.runtime import Runtime, execution_id_for
from orchestrator.settings import Settings
from schemas.validation import parse_definition
from tests.integration.test_kafka_trigger import (
    _true,
    bootstrap,
    eventually,
    executions,
    kcat_produce,
    kcat_read,
    read_records,
)
from triggers.sources import SourceSpec
from triggers.window_counts import dedup_key
from triggers.window_source import WindowTriggerSource

pytestmark = pytest.mark.integration

LOCK_STEPS = [
    {"name": "lock", "type": "task", "connector": "noop", "input": {"user": "input.user"}, "next": "done"},
    {"name": "done", "type": "succeed", "output": "input"},
]


def lock_account(topic: str, workflow: str, **trigger: Any) -> dict[str, Any]:
    return {
        "name": workflow,
        "input_schema": {"type": "object", "required": ["user", "failures"]},
        "triggers": [
            {
                "type": "kafka_window",
                "name": "failed_logins",
                "topics": [topic],
                "filter": "data.event == 'login_failed'",
                "key": "data.user",
                "window_seconds": 60,
                "threshold": 5,
                "input": "{user: key, failures: count, since: window_start, until: window_end, "
                "last_ip: message.data.ip, topic: message.topic}",
                **trigger,
            }
        ],
        "steps": LOCK_STEPS,
    }


def login(user: str | None, event: str = "login_failed", ip: str = "10.0.0.1") -> str:
    body: dict[str, Any] = {"event": event, "ip": ip}
    if user is not None:
        body["user"] = user
    return json.dumps(body)


class Harness:
    """An embedded runtime and the window sources a test starts; stops them all at the end."""

    def __init__(self, runtime: Runtime, kafka_url: str, state_dir: Path) -> None:
        self.runtime = runtime
        self.kafka_url = kafka_url
        self.state_dir = state_dir
        self.sources: list[WindowTriggerSource] = []
        self.topic = f"wt.{uuid.uuid4().hex[:10]}.logins"
        self.workflow = f"lock_account_{uuid.uuid4().hex[:8]}"

    def definition(self, **trigger: Any) -> dict[str, Any]:
        return lock_account(self.topic, self.workflow, **trigger)

    async def source(self, definition: dict[str, Any]) -> WindowTriggerSource:
        stored = await self.runtime.register(parse_definition(definition))
        assert stored.version is not None
        trigger = parse_definition(definition).triggers[0]
        settings = dataclasses.replace(
            self.runtime.settings,
            connections={"kafka": f"{self.kafka_url}?partitions=3"},
            state_dir=str(self.state_dir),
        )
        source = WindowTriggerSource(SourceSpec(definition["name"], stored.version, trigger, self.runtime, settings))
        await source.start()
        self.sources.append(source)
        return source

    async def stop(self, source: WindowTriggerSource) -> None:
        self.sources.remove(source)
        await source.stop()

    def publish(self, *values: str, key: str | None = None) -> None:
        kcat_produce(self.kafka_url, self.topic, list(values), key=key)

    async def states(self) -> list[Any]:
        found = await executions(self.runtime, self.workflow)
        return [await self.runtime.wait(summary.execution_id, timeout=30) for summary in found]


@pytest.fixture
async def harness(kafka_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    settings = Settings(
        event_log_url=f"sqlite:///{tmp_path / 'orchestrator.db'}", connections={"kafka": kafka_url}, retention_interval=0
    )
    async with Runtime(settings) as runtime:
        harness = Harness(runtime, kafka_url, tmp_path / "state")
        try:
            yield harness
        finally:
            for source in list(harness.sources):
                await harness.stop(source)
            await delete_topics(kafka_url, [harness.topic, f"{harness.topic}.dlq"], prefix=f"orchestrator.{harness.workflow}.")


async def delete_topics(kafka_url: str, names: list[str], prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(kafka_url))
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t in names or t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def settled(source: WindowTriggerSource, received: int, counted: int, timeout: float = 30.0) -> None:
    """Every published record was routed and every hit counted (then a moment for stray work)."""
    await eventually(lambda: _true(source.stats.received >= received), timeout, f"{received} received")
    await eventually(lambda: _true(source.counted >= counted), timeout, f"{counted} hits counted")
    await asyncio.sleep(0.5)
    assert (source.stats.received, source.counted) == (received, counted)


async def test_five_failures_lock_once_four_do_not_and_bad_messages_are_parked(harness: Harness) -> None:
    harness.publish(*[login("eve") for _ in range(5)])  # before the trigger existed: not counted
    source = await harness.source(harness.definition())
    ada, bob = f"ada-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    harness.publish(*[login(ada, ip=f"10.0.0.{i}") for i in range(1, 4)], key="k1")
    harness.publish(*[login(bob) for _ in range(4)], key="k2")  # one short of the threshold
    harness.publish(*[login(bob, event="login_ok") for _ in range(3)])  # filtered out
    harness.publish("this is not json", login(None))  # bad: parked, the stream goes on
    harness.publish(login(ada, ip="10.0.0.4"), login(ada, ip="10.0.0.5"), key="k3")  # the 5th reaches it
    await settled(source, received=14, counted=9)

    states = await harness.states()
    assert len(states) == 1
    state = states[0]
    assert state.status == "succeeded"
    assert state.input["user"] == ada and state.input["failures"] == 5
    assert state.input["last_ip"] == "10.0.0.5" and state.input["topic"] == harness.topic
    since, until = state.input["since"], state.input["until"]
    assert since.endswith("Z") and until > since
    history = await harness.runtime.history(state.execution_id)
    key = history[0].data["dedup_key"]
    assert key.startswith("kafka_window:failed_logins:") and key.endswith(f":{ada}")
    assert history[0].actor == f"trigger:{harness.workflow}/failed_logins"
    window_start = float(key.split(":")[2])
    assert state.execution_id == execution_id_for("default", harness.workflow, dedup_key("failed_logins", ada, window_start))
    stats = source.stats
    assert (stats.started, stats.duplicates, stats.filtered, stats.dead_lettered) == (1, 0, 3, 2)

    parked = {p["payload"]: p["headers"] for p in kcat_read(harness.kafka_url, f"{harness.topic}.dlq")}
    assert sorted(parked) == sorted(["this is not json", login(None)])
    assert "not JSON" in parked["this is not json"]["x-orchestrator-error"]
    assert "data.user" in parked[login(None)]["x-orchestrator-error"]
    assert parked[login(None)]["x-orchestrator-workflow"] == harness.workflow

    # More failures of the same burst start nothing more; the stream still works after the bad ones.
    harness.publish(login(ada), login(ada), login(bob, event="login_ok"))
    await settled(source, received=17, counted=11)
    assert len(await harness.states()) == 1 and source.stats.started == 1


async def test_window_state_survives_a_restart(harness: Harness) -> None:
    before = {t.ident for t in threading.enumerate()}
    definition = harness.definition()
    first = await harness.source(definition)
    carol = f"carol-{uuid.uuid4().hex[:6]}"
    harness.publish(*[login(carol) for _ in range(3)])
    await settled(first, received=3, counted=3)
    await harness.stop(first)
    # faust's consumer thread is gone with it: stop leaves no thread behind.
    assert {t.ident for t in threading.enumerate() if t.is_alive()} <= before
    assert await harness.states() == []

    second = await harness.source(definition)
    harness.publish(login(carol), login(carol))
    await settled(second, received=2, counted=2)  # the first three are not read again (committed)
    states = await harness.states()
    assert len(states) == 1, "the 3 counted before the restart came back from the changelog"
    assert states[0].input["user"] == carol and states[0].input["failures"] == 5
    assert second.stats.started == 1
    assert data_dirs(harness.state_dir) == [second.app_id]  # faust's data: never the working directory
    assert not data_dirs(Path.cwd(), f"{second.app_id}*")


async def test_a_start_that_keeps_failing_is_not_acknowledged_and_happens_after_a_restart(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    definition = harness.definition()
    working = harness.runtime.start_execution
    attempts: list[str] = []

    async def down(*args: Any, **kwargs: Any) -> Any:
        attempts.append(kwargs["dedup_key"])
        raise BackendUnavailable("the event log is down")

    monkeypatch.setattr(harness.runtime, "start_execution", down)
    first = await harness.source(definition)
    erin = f"erin-{uuid.uuid4().hex[:6]}"
    harness.publish(*[login(erin) for _ in range(5)])
    await eventually(lambda: _true(len(attempts) >= 3), 30, "retries with backoff")
    assert len(set(attempts)) == 1 and first.counted == 4  # the 5th hit is still in hand
    assert "the event log is down" in (first.stats.last_error or "")
    await harness.stop(first)  # gives up the hit in hand without acknowledging it
    assert await harness.states() == []

    monkeypatch.setattr(harness.runtime, "start_execution", working)
    second = await harness.source(definition)
    await eventually(lambda: _true(second.stats.started == 1), 30, "the start after the restart")
    (state,) = await harness.states()
    assert state.input["user"] == erin and state.input["failures"] == 5
    assert (await harness.runtime.history(state.execution_id))[0].data["dedup_key"] == attempts[0]


async def test_lost_state_and_replayed_topic_start_nothing_twice(harness: Harness) -> None:
    """The worst replay: the changelogs are gone and the topic is read again from the start. The
    window is counted again from scratch and fires again, with the same dedup key: no new start."""
    definition = harness.definition()
    first = await harness.source(definition)
    dave = f"dave-{uuid.uuid4().hex[:6]}"
    harness.publish(*[login(dave) for _ in range(5)])
    await settled(first, received=5, counted=5)
    assert first.stats.started == 1
    app_id = first.app_id
    await harness.stop(first)

    internal = [f"{app_id}-windows-changelog", f"{app_id}-quiet-changelog", f"{app_id}-hits"]
    await delete_topics(harness.kafka_url, internal, prefix="\0")
    await gone(harness.kafka_url, internal)
    await rewind(harness.kafka_url, app_id, harness.topic)

    second = await harness.source(definition)
    await settled(second, received=5, counted=5)
    assert (second.stats.started, second.stats.duplicates) == (0, 1)
    assert len(await harness.states()) == 1


def data_dirs(where: Path, pattern: str = "*") -> list[str]:
    return sorted(p.name for p in where.glob(pattern))


async def gone(kafka_url: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(kafka_url))
    await admin.start()
    try:
        async def deleted() -> bool:
            return not set(names) & set(await admin.list_topics())

        await eventually(deleted, 60, f"{names} deleted")
    finally:
        await admin.close()


async def rewind(kafka_url: str, group: str, topic: str) -> None:
    """Commit offset 0 on every partition of ``topic`` for ``group`` (no member is running)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(kafka_url), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]  # the harness's partitions=3
        consumer.assign(partitions)
        await consumer.commit({tp: 0 for tp in partitions})
    finally:
        await consumer.stop()


POISON = [  # (value, what the dead letter's reason says)
    (b'{"event": "login_failed", "user": "p", "n": ' + b"7" * 5000 + b"}", "longer than 4300 digits"),
    (b'{"event": "login_failed", "user": ' + b"[" * 50_000, "nested deeper than"),
    (b'{"event": "login_failed", "user": "\xff"}', "not UTF-8"),
    (b'{"event": "login_failed", "user": NaN}', "NaN is not valid JSON"),
    (b'{"event": "login_failed", "user": "p", "ip": 1e400}', "too large for a JSON number"),
    (b'{"event": "login_failed", "user": "p", "tries": [{"k": 1}, {"k": "x"}]}', "cannot compare these values"),
]


async def test_undecodable_records_and_failing_expressions_are_parked(harness: Harness) -> None:
    """Before, a huge integer or deep nesting escaped the decoder, and a filter comparing a string
    with a number escaped the router: the stream stopped at that record."""
    tries = "(data.tries == null || max_by(data.tries, &k) != null)"
    source = await harness.source(harness.definition(filter=f"data.event == 'login_failed' && {tries}"))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(harness.kafka_url))
    await producer.start()
    try:
        for value, _ in POISON:
            await producer.send_and_wait(harness.topic, value, key=b"k")
    finally:
        await producer.stop()
    frank = f"frank-{uuid.uuid4().hex[:6]}"
    harness.publish(*[login(frank) for _ in range(5)])
    await settled(source, received=len(POISON) + 5, counted=5)
    (state,) = await harness.states()
    assert state.input["user"] == frank and state.input["failures"] == 5
    assert source.stats.dead_lettered == len(POISON)
    parked = await read_records(harness.kafka_url, f"{harness.topic}.dlq", len(POISON))
    reasons = {value: headers["x-orchestrator-error"].decode() for value, headers in parked}
    for value, expected in POISON:
        assert expected in reasons[value], reasons[value]
