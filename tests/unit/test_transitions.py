"""The transition exporter's logic over a real engine (memory://), with the Kafka send replaced.

It is a projection of the global feed: ``attach`` adds it to the runtime's projection runner and
registers its observer, as the runtime does when ``ORCHESTRATOR_TRANSITIONS_URL`` is set.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from orchestrator.core.commands import DeliverEvent, ResumeExecution
from orchestrator.ports import BackendUnavailable
from orchestrator.projections.transitions import TransitionExporter, TransitionOptions, record
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas import cloudevents
from schemas.envelope import Envelope
from schemas.validation import parse_definition
from tests.fake_sources import eventually

ECHO = {
    "name": "echo",
    "steps": [
        {"name": "first", "type": "task", "connector": "noop", "input": {"x": "input.x"}, "next": "second"},
        {
            "name": "second",
            "type": "task",
            "connector": "noop",
            "input": {"y": "steps.first.x"},
            "next": "done",
        },
        {"name": "done", "type": "succeed", "output": "steps.second"},
    ],
}
FANOUT = {
    "name": "fanout",
    "steps": [
        {
            "name": "split",
            "type": "parallel",
            "next": "done",
            "branches": [
                {"name": f"b{i}", "steps": [{"name": f"t{i}", "type": "task", "connector": "noop"}]}
                for i in range(4)
            ],
        },
        {"name": "done", "type": "succeed"},
    ],
}
WAITER = {
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
}


class Sink:
    """Records what would have been produced; can be told to fail."""

    def __init__(self) -> None:
        self.records: list[Envelope] = []
        self.fail = 0

    async def __call__(self, envelopes: Sequence[Envelope]) -> None:
        if self.fail:
            self.fail -= 1
            raise BackendUnavailable("broker down")
        self.records.extend(envelopes)

    def of(self, execution_id: str) -> list[int]:
        return [e.sequence for e in self.records if e.subject == execution_id]


async def caught_up(runtime: Runtime, sink: Sink, ids: list[str]) -> None:
    """Wait until the sink holds as many records of each execution as its log has events.

    ``Runtime.wait`` returns when the execution finished, which may be before the exporter
    (a projection, running in its own task) published the last commit."""

    async def done() -> bool:
        return all([len(sink.of(i)) >= len(await runtime.log.read(i)) for i in ids])

    await eventually(done)


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with Runtime(Settings(event_log_url="memory://")) as runtime:
        for definition in (ECHO, WAITER):
            await runtime.register(parse_definition(definition))
        yield runtime


def exporter_for(runtime: Runtime, sink: Sink) -> TransitionExporter:
    return TransitionExporter(TransitionOptions(bootstrap=("x:9092",)), runtime.log, publish=sink)


def attach(runtime: Runtime, sink: Sink) -> TransitionExporter:
    exporter = exporter_for(runtime, sink)
    runtime.projections.add(exporter)  # the runner is started: it follows the feed at once
    runtime.engine.observers.append(exporter.on_committed)
    return exporter


async def test_record_is_the_structured_envelope_with_ce_headers(runtime: Runtime) -> None:
    started = await runtime.start_execution("echo", {"x": 1}, actor="test")
    await runtime.wait(started.execution_id, timeout=5)
    envelope = (await runtime.log.read(started.execution_id))[0]
    key, value, headers = record(envelope)
    assert key == started.execution_id.encode()
    assert value == envelope.to_bytes()
    named = dict(headers)
    assert named["content-type"] == b"application/cloudevents+json"
    assert named["ce_id"] == envelope.id.encode()
    assert named["ce_type"] == b"io.orchestrator.ExecutionStarted"
    assert named["ce_subject"] == started.execution_id.encode()
    assert named["ce_sequence"] == b"1"
    assert named["ce_specversion"] == b"1.0"
    assert named["ce_actor"] == b"test"
    assert {"ce_time", "ce_source", "ce_workflow", "ce_workflowversion", "ce_tenant", "ce_chainhash"} <= set(
        named
    )
    assert "ce_data" not in named and "ce_datacontenttype" not in named
    # a CloudEvents consumer reads it as a structured event; the data is the event's data
    decoded = cloudevents.from_kafka(value, headers)
    assert decoded.mode == "structured"
    assert decoded.data == envelope.data
    assert json.loads(value)["sequence"] == 1


async def test_every_committed_event_is_published_once_in_order(runtime: Runtime) -> None:
    sink = Sink()
    attach(runtime, sink)
    ids = [(await runtime.start_execution("echo", {"x": n})).execution_id for n in range(5)]
    for execution_id in ids:
        await runtime.wait(execution_id, timeout=5)
    await caught_up(runtime, sink, ids)
    for execution_id in ids:
        logged = [e.sequence for e in await runtime.log.read(execution_id)]
        assert sink.of(execution_id) == logged == list(range(1, len(logged) + 1))
    assert len(sink.records) == sum([len(await runtime.log.read(i)) for i in ids])


async def test_concurrent_commits_of_one_execution_are_published_in_order(runtime: Runtime) -> None:
    """Branches of a parallel step finish together; the feed gives their commits in commit order."""
    await runtime.register(parse_definition(FANOUT))
    sink = Sink()
    attach(runtime, sink)
    ids = [(await runtime.start_execution("fanout", {})).execution_id for _ in range(5)]
    for execution_id in ids:
        await runtime.wait(execution_id, timeout=5)
    await caught_up(runtime, sink, ids)
    for execution_id in ids:
        total = len(await runtime.log.read(execution_id))
        assert total > 10 and sink.of(execution_id) == list(range(1, total + 1))


async def test_what_a_process_failed_to_publish_is_published_after_its_restart(tmp_path: Path) -> None:
    """The broker is down for the whole life of the first process: the next one publishes it all."""
    settings = Settings(event_log_url=f"sqlite:///{tmp_path}/events.db", retention_interval=0)
    down = Sink()
    down.fail = 10**6
    async with Runtime(settings) as first:
        await first.register(parse_definition(ECHO))
        attach(first, down)
        ids = [(await first.start_execution("echo", {"x": n})).execution_id for n in range(3)]
        for execution_id in ids:
            await first.wait(execution_id, timeout=5)  # commands do not wait for a failing broker
        logged = {i: [e.sequence for e in await first.log.read(i)] for i in ids}
    assert down.records == []

    sink = Sink()
    async with Runtime(settings) as second:
        attach(second, sink)
        await eventually(lambda: all(sink.of(i) == logged[i] for i in ids))
    assert len(sink.records) == sum(len(s) for s in logged.values())  # each once


async def test_a_failed_export_is_repaired_by_the_next_commit(runtime: Runtime) -> None:
    sink = Sink()
    attach(runtime, sink)
    execution_id = (await runtime.start_execution("waiter", {"key": "k"})).execution_id
    first = sink.of(execution_id)
    sink.fail = 1
    await runtime.signal(execution_id, "ping")  # committed; its export fails once, then retries
    assert sink.of(execution_id)[: len(first)] == first
    await runtime.publish_event("go", "k", {"ok": True})
    await runtime.wait(execution_id, timeout=5)
    await caught_up(runtime, sink, [execution_id])
    logged = [e.sequence for e in await runtime.log.read(execution_id)]
    assert sink.of(execution_id) == logged  # nothing missing, nothing out of order


async def test_a_redelivered_command_republishes_its_decision(runtime: Runtime) -> None:
    sink = Sink()
    attach(runtime, sink)
    execution_id = (await runtime.start_execution("waiter", {"key": "k"})).execution_id
    command = DeliverEvent(
        execution_id=execution_id, now=0.0, name="go", payload=1, correlation_key="k", command_id="cmd-1"
    )
    committed = await runtime.engine.handle(command)
    assert committed is not None and committed.events
    decision = [e.sequence for e in committed.events]
    before = list(sink.of(execution_id))
    again = await runtime.engine.handle(command)  # e.g. Kafka redelivered it after a crash
    assert again is not None and not again.events
    assert sink.of(execution_id) == before + decision
    assert all(e.causationid == "cmd-1" for e in sink.records[-len(decision) :])
    # a resume request (no command id) republishes nothing
    count = len(sink.records)
    resumed = await runtime.engine.handle(ResumeExecution(execution_id=execution_id, now=0.0))
    assert resumed is not None and not resumed.events
    assert len(sink.records) == count


async def test_a_redelivery_after_a_restart_neither_waits_nor_publishes_again(tmp_path: Path) -> None:
    """Its events went out before the restart (the checkpoint is past them): nothing to wait for."""
    settings = Settings(event_log_url=f"sqlite:///{tmp_path}/events.db", retention_interval=0)
    command = DeliverEvent(execution_id="", now=0.0, name="go", payload=1, correlation_key="k", command_id="c-1")
    sink = Sink()
    async with Runtime(settings) as first:
        await first.register(parse_definition(WAITER))
        attach(first, sink)
        execution_id = (await first.start_execution("waiter", {"key": "k"})).execution_id
        command = dataclasses.replace(command, execution_id=execution_id)
        assert (committed := await first.engine.handle(command)) is not None and committed.events
    published = len(sink.records)

    async with Runtime(settings) as second:
        exporter = attach(second, sink)
        exporter.options = dataclasses.replace(exporter.options, send_timeout=30.0)
        again = await asyncio.wait_for(second.engine.handle(command), 5)  # no 30 s wait
        assert again is not None and not again.events
        await asyncio.sleep(0.1)
    assert len(sink.records) == published


def test_options_from_url() -> None:
    options = TransitionOptions.from_url("kafka://a:1,b?topic=t.x&partitions=3&send_timeout=2.5")
    assert options == TransitionOptions(
        bootstrap=("a:1", "b:9092"), topic="t.x", partitions=3, send_timeout=2.5
    )
    assert TransitionOptions.from_url("kafka://a:1").topic == "orchestrator.transitions"
    for bad, reason in [
        ("http://a:1", "not a kafka://"),
        ("kafka://a:1?topics=x", "unknown option 'topics'"),
        ("kafka://a:1?partitions=two", "is not an int"),
        ("kafka://a:1?topic=", "topic must be set"),
    ]:
        with pytest.raises(ValueError, match=reason):
            TransitionOptions.from_url(bad)


def test_setting_is_read_from_the_environment_and_off_by_default() -> None:
    assert Settings.from_env({}).transitions_url is None
    url = "kafka://127.0.0.1:9092?topic=orchestrator.transitions"
    assert Settings.from_env({"ORCHESTRATOR_TRANSITIONS_URL": url}).transitions_url == url
    assert Runtime(Settings(event_log_url="memory://")).transitions is None
    runtime = Runtime(Settings(event_log_url="memory://", transitions_url=url))
    assert runtime.transitions is not None
    assert runtime.projections.projections == [runtime.transitions]  # follows the feed
    assert runtime.engine.observers[-1] == runtime.transitions.on_committed  # one process: waits
    with pytest.raises(ValueError, match="not a kafka"):
        Runtime(Settings(event_log_url="memory://", transitions_url="nats://x"))
