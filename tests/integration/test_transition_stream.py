"""The transition stream against the real Kafka, read back with kcat (as an operator would).

A Runtime (SQLite event log, in-process transport) exports to a fresh topic; ``kcat -J`` reads it
and every record is checked against the event log: all events, in sequence order per execution,
keyed by execution id, with ``ce_*`` headers and a structured CloudEvent value.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from orchestrator.core.commands import DeliverEvent
from orchestrator.projections.transitions import TransitionExporter
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas import cloudevents
from schemas.envelope import Envelope
from schemas.validation import parse_definition
from tests.fake_sources import eventually
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration
NOOP = {"type": "task", "connector": "noop"}
DEFINITIONS = [
    {
        "name": "chain",
        "steps": [
            {"name": "a", **NOOP, "input": {"n": "input.n"}, "next": "b"},
            {"name": "b", **NOOP, "input": {"n": "steps.a.n"}, "next": "done"},
            {"name": "done", "type": "succeed", "output": "steps.b"},
        ],
    },
    {
        # branches finish concurrently: commits of one execution race to the exporter
        "name": "fanout",
        "steps": [
            {
                "name": "split",
                "type": "parallel",
                "next": "done",
                "branches": [
                    {"name": f"b{i}", "steps": [{"name": f"t{i}", **NOOP, "input": {"i": i}}]}
                    for i in range(4)
                ],
            },
            {"name": "done", "type": "succeed"},
        ],
    },
    {
        "name": "waiter",
        "steps": [
            {
                "name": "wait",
                "type": "wait_for_event",
                "event": "go",
                "correlation_key": "input.key",
                "next": "done",
            },
            {"name": "done", "type": "succeed", "output": "steps.wait"},
        ],
    },
]


@pytest.fixture
async def topic(kafka_url: str) -> AsyncIterator[str]:
    name = f"test-transitions-{uuid.uuid4().hex[:10]}"
    yield name
    admin = AIOKafkaAdminClient(bootstrap_servers=servers(kafka_url))
    await admin.start()
    try:
        if name in await admin.list_topics():
            await admin.delete_topics([name])
    finally:
        await admin.close()


def servers(kafka_url: str) -> list[str]:
    return kafka_url.removeprefix("kafka://").split(",")


def runtime_for(tmp_path: Path, kafka_url: str, topic: str) -> Runtime:
    settings = Settings(auth=False,
        event_log_url=f"sqlite:///{tmp_path}/events.db",
        transitions_url=f"{kafka_url}?topic={topic}&partitions=3",
        retention_interval=0,
    )
    return Runtime(settings)


async def kcat(kafka_url: str, topic: str) -> list[dict[str, Any]]:
    """Every record of the topic, through ``kcat -C -e -o beginning -J``."""
    assert shutil.which("kcat"), "kcat is not installed"
    command = ["kcat", "-b", servers(kafka_url)[0], "-C", "-t", topic, "-e", "-o", "beginning", "-J", "-q"]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def headers_of(message: dict[str, Any]) -> dict[str, str]:
    flat = message["headers"] or []
    return dict(zip(flat[::2], flat[1::2], strict=True))


def by_execution(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records per key, in the order the consumer saw them (offset order within a partition)."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in sorted(messages, key=lambda m: (m["partition"], m["offset"])):
        grouped[message["key"]].append(message)
    return grouped


def check_record(message: dict[str, Any], stored: Envelope) -> None:
    """One record against the event it exports: key, every ce_ header, the CloudEvent value."""
    headers = headers_of(message)
    assert message["key"] == stored.subject
    assert headers["content-type"] == "application/cloudevents+json"
    event = stored.to_cloudevent()
    for name in ("id", "source", "type", "subject", "time", "specversion", "sequence", "workflow", "tenant"):
        assert headers[f"ce_{name}"] == str(event[name]), name
    for name in ("workflowversion", "schemaversion", "codec", "causationid", "chainhash", "actor"):
        assert headers.get(f"ce_{name}") == (None if event.get(name) is None else str(event[name])), name
    value = message["payload"].encode()
    assert Envelope.from_bytes(value) == stored  # the very envelope the log stores
    decoded = cloudevents.from_kafka(value, [(k, v.encode()) for k, v in headers.items()])
    assert decoded.mode == "structured"
    assert decoded.attributes is not None and decoded.attributes["id"] == stored.id
    assert decoded.data == stored.data


async def test_every_committed_event_is_on_the_topic_in_order(
    tmp_path: Path, kafka_url: str, topic: str
) -> None:
    async with runtime_for(tmp_path, kafka_url, topic) as runtime:
        for definition in DEFINITIONS:
            await runtime.register(parse_definition(definition))
        waiting = (await runtime.start_execution("waiter", {"key": "k1"}, actor="test")).execution_id
        # the observer returned only after the broker acknowledged: already readable now
        early = by_execution(await kcat(kafka_url, topic))
        logged = await runtime.log.read(waiting)
        assert [int(headers_of(m)["ce_sequence"]) for m in early[waiting]] == [e.sequence for e in logged]

        started = [
            *[(await runtime.start_execution("chain", {"n": n})).execution_id for n in range(4)],
            *[(await runtime.start_execution("fanout", {})).execution_id for _ in range(3)],
        ]
        assert await runtime.publish_event("go", "k1", {"ok": True}) == [waiting]
        for execution_id in [*started, waiting]:
            assert (await runtime.wait(execution_id, timeout=30)).status == "succeeded"
        history = {execution_id: await runtime.log.read(execution_id) for execution_id in [*started, waiting]}

    messages = await kcat(kafka_url, topic)
    grouped = by_execution(messages)
    assert set(grouped) == set(history)
    assert len(messages) == sum(len(events) for events in history.values())
    for execution_id, stored in history.items():
        records = grouped[execution_id]
        assert len({m["partition"] for m in records}) == 1  # keyed: one partition per execution
        assert [int(headers_of(m)["ce_sequence"]) for m in records] == list(range(1, len(stored) + 1))
        for message, envelope in zip(records, stored, strict=True):
            check_record(message, envelope)
    types = {headers_of(m)["ce_type"] for m in messages}
    assert {"io.orchestrator.ExecutionStarted", "io.orchestrator.ParallelStarted"} <= types
    assert "io.orchestrator.ExecutionSucceeded" in types


async def test_a_redelivered_command_is_exported_again_never_with_a_gap(
    tmp_path: Path, kafka_url: str, topic: str
) -> None:
    async with runtime_for(tmp_path, kafka_url, topic) as runtime:
        for definition in DEFINITIONS:
            await runtime.register(parse_definition(definition))
        execution_id = (await runtime.start_execution("waiter", {"key": "k2"})).execution_id
        # the command as the Kafka transport carries it (with a command id), delivered twice,
        # as after a crash between the append and the offset commit
        command = DeliverEvent(
            execution_id=execution_id,
            now=runtime.clock(),
            name="go",
            payload={"n": 1},
            correlation_key="k2",
            command_id=f"cmd-{uuid.uuid4()}",
        )
        first = await runtime.engine.handle(command)
        assert first is not None and first.events
        again = await runtime.engine.handle(command)
        assert again is not None and not again.events  # nothing new committed...
        stored = await runtime.log.read(execution_id)

    records = by_execution(await kcat(kafka_url, topic))[execution_id]
    decision = [e.sequence for e in first.events]
    sequences = [int(headers_of(m)["ce_sequence"]) for m in records]
    assert sequences == [e.sequence for e in stored] + decision  # ...but its events are re-sent
    assert sorted(set(sequences)) == list(range(1, len(stored) + 1))  # never a gap
    ids = [headers_of(m)["ce_id"] for m in records]
    assert ids[-len(decision) :] == [e.id for e in first.events]  # duplicates carry the same id
    assert {headers_of(m)["ce_causationid"] for m in records[-len(decision) :]} == {command.command_id}
    by_sequence = {e.sequence: e for e in stored}
    for message in records:
        check_record(message, by_sequence[int(headers_of(message)["ce_sequence"])])


async def test_with_cassandra_the_stream_follows_the_settled_feed(
    tmp_path: Path, kafka_url: str, topic: str, cassandra_keyspace: TestKeyspace
) -> None:
    """Distributed storage: the exporter publishes from the Cassandra feed, feed_delay later."""
    await cassandra_keyspace.empty_once(tmp_path)
    settings = Settings(auth=False,
        event_log_url=f"{cassandra_keyspace.url}?feed_delay=1",
        transitions_url=f"{kafka_url}?topic={topic}&partitions=3",
        retention_interval=0,
    )
    async with Runtime(settings) as runtime:
        assert runtime.transitions is not None
        assert runtime.transitions.on_committed not in runtime.engine.observers  # no waiting
        for definition in DEFINITIONS[:2]:
            await runtime.register(parse_definition(definition))
        started = [
            *[(await runtime.start_execution("chain", {"n": n})).execution_id for n in range(3)],
            *[(await runtime.start_execution("fanout", {})).execution_id for _ in range(2)],
        ]
        for execution_id in started:
            assert (await runtime.wait(execution_id, timeout=30)).status == "succeeded"
        history = {execution_id: await runtime.log.read(execution_id) for execution_id in started}
        exporter: TransitionExporter = runtime.transitions
        total = sum(len(events) for events in history.values())
        await eventually(lambda: exporter.published >= total, timeout=30)

    grouped = by_execution(await kcat(kafka_url, topic))
    assert set(grouped) == set(history)
    for execution_id, stored in history.items():
        records = grouped[execution_id]
        assert [int(headers_of(m)["ce_sequence"]) for m in records] == list(range(1, len(stored) + 1))
        for message, envelope in zip(records, stored, strict=True):
            check_record(message, envelope)
