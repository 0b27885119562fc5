"""The cluster view, node records, redacted configuration, the heartbeat and the trace: pure parts."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from orchestrator.backends.memory_nodes import MemoryNodeDirectory
from orchestrator.backends.sqlite.nodes import SQLiteNodeDirectory
from orchestrator.cluster.config import REDACTED, effective_config, redact_url
from orchestrator.cluster.heartbeat import Heartbeat
from orchestrator.cluster.view import cluster_view, node_status
from orchestrator.history.trace import build_trace
from orchestrator.ports import NodeDirectory, NodeRecord
from orchestrator.settings import Settings
from schemas.envelope import Envelope

NOW = 1_800_000_000.0


def record(node_id: str, *, beat: float = NOW, shards: tuple[int, ...] | None = (), **fields: object) -> NodeRecord:
    base = NodeRecord(node_id, "worker", "0.1.0", "h", 1, NOW - 100, beat, 5.0, shards)
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("silent", "status"), [(0.0, "alive"), (10.0, "alive"), (10.5, "late"), (15.0, "late"), (15.1, "dead")]
)
def test_status_follows_missed_heartbeats(silent: float, status: str) -> None:
    assert node_status(record("a", beat=NOW - silent), NOW) == status


def test_a_node_that_said_goodbye_has_left_whatever_its_age() -> None:
    assert node_status(record("a", stopped=True), NOW) == "left"
    assert node_status(record("a", beat=NOW - 1000, stopped=True), NOW) == "left"


def test_partitions_belong_to_live_nodes_and_double_claims_are_shown() -> None:
    view = cluster_view(
        [
            record("a", shards=(0, 1)),
            record("b", shards=(1, 2), lag={"commands/1": 7}),
            record("dead", beat=NOW - 60, shards=(3,), lag={"commands/3": 99}),
            record("api", shards=()),
            record("single", shards=None),  # one process owning everything: no partition map
        ],
        NOW,
    )
    assert view.owners == {0: ["a"], 1: ["a", "b"], 2: ["b"]}
    assert view.contested == {1: ["a", "b"]}
    shown = view.to_dict()
    assert shown["counts"] == {"alive": 4, "late": 0, "dead": 1, "left": 0}
    assert shown["lag"] == {"commands/1": 7}  # a dead node's last lag is not current
    assert [n["status"] for n in shown["nodes"]] == ["alive", "alive", "dead", "alive", "alive"]
    assert "config" not in view.to_dict(with_config=False)["nodes"][0]


def test_records_round_trip_through_dicts() -> None:
    original = record("a", shards=(2, 5), in_flight=3, lag={"t/0": 1}, config={"port": 8080})
    assert NodeRecord.from_dict(original.to_dict()) == original
    assert NodeRecord.from_dict(record("b", shards=None).to_dict()).shards is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("cassandra://app:hunter2@db:9042/ks", f"cassandra://app:{REDACTED}@db:9042/ks"),
        ("amqp://guest@mq/", "amqp://guest@mq/"),
        ("kafka://k:9092?sasl_plain_password=pw&topic=t", f"kafka://k:9092?sasl_plain_password={REDACTED}&topic=t"),
        ("sqlite:///orchestrator.db", "sqlite:///orchestrator.db"),
    ],
)
def test_urls_lose_their_secrets(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_effective_config_names_secrets_but_never_shows_them() -> None:
    settings = Settings(
        event_log_url="cassandra://u:pw@db/ks",
        secrets={"GITHUB": "s3cr3t-value"},
        connections={"kafka": "kafka://user:pass@k:9092"},
    )
    config = effective_config(settings)
    text = repr(config)
    assert "s3cr3t-value" not in text and "pw@" not in text and "pass@" not in text
    assert config["secrets"] == ["GITHUB"]
    assert config["connections"] == {"kafka": f"kafka://user:{REDACTED}@k:9092"}
    assert config["port"] == 8080 and config["definitions"] == []


class _Failing(MemoryNodeDirectory):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    async def publish(self, record: NodeRecord) -> None:
        if self.fail:
            raise ConnectionError("directory down")
        await super().publish(record)


async def test_the_heartbeat_publishes_survives_failures_and_says_goodbye() -> None:
    directory = _Failing()
    beats = iter(range(1000))
    heartbeat = Heartbeat(directory, lambda: record("me", beat=float(next(beats))), interval=0.01)
    await heartbeat.start()  # the first publish fails: start does not
    await asyncio.sleep(0.05)
    assert heartbeat.failures >= 2 and await directory.nodes() == []
    directory.fail = False
    await asyncio.sleep(0.05)
    [alive] = await directory.nodes()
    assert heartbeat.failures == 0 and not alive.stopped
    await heartbeat.stop()
    [gone] = await directory.nodes()
    assert gone.stopped and gone.heartbeat_at > alive.heartbeat_at


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_node_directory_contract(kind: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nodes.db"
    first: NodeDirectory = MemoryNodeDirectory() if kind == "memory" else SQLiteNodeDirectory.from_url(url)
    await first.start()
    try:
        await first.publish(record("b"))
        await first.publish(record("a", in_flight=1))
        await first.publish(record("a", in_flight=2))  # replaces
        assert [(r.node_id, r.in_flight) for r in await first.nodes()] == [("a", 2), ("b", 0)]
        if kind == "sqlite":  # another process on the same file sees the same nodes
            second = SQLiteNodeDirectory.from_url(url)
            await second.start()
            try:
                assert [r.node_id for r in await second.nodes()] == ["a", "b"]
                await second.publish(record("old", beat=NOW - 2 * 86_400))
                await second.publish(record("c"))  # publishing prunes records a day old
                assert [r.node_id for r in await first.nodes()] == ["a", "b", "c"]
            finally:
                await second.stop()
    finally:
        await first.stop()


def envelope(sequence: int, seconds: float, type_: str, node: str | None, step: str | None = None) -> Envelope:
    whole, fraction = divmod(seconds, 1)
    time = f"2026-12-07T00:00:{int(whole):02d}.{round(fraction * 1e6):06d}Z"
    data = {"step": step} if step else {}
    return Envelope(f"e{sequence}", type_, "ex", sequence, time, "w", 1, data, node=node)


def test_the_trace_says_where_the_time_went_and_who_did_it() -> None:
    events = [
        envelope(1, 0.0, "ExecutionStarted", "n1"),
        envelope(2, 0.001, "StepScheduled", "n1", "a"),
        envelope(3, 2.001, "StepSucceeded", "n1", "a"),
        envelope(4, 2.002, "StepScheduled", "n2", "b"),  # n1 died: n2 took the partition
        envelope(5, 2.502, "StepSucceeded", "n2", "b"),
        envelope(6, 2.503, "ExecutionCompleted", "n2"),
    ]
    trace = build_trace("ex", 4, events)
    assert trace.total_seconds == pytest.approx(2.503)
    assert [round(r.delay_seconds, 3) for r in trace.rows] == [0.0, 0.001, 2.0, 0.001, 0.5, 0.001]
    assert trace.handoffs == [{"sequence": 4, "from": "n1", "to": "n2"}]
    assert trace.events_by_node == {"n1": 3, "n2": 3}
    assert next(iter(trace.seconds_by_type)) == "StepSucceeded"
    assert trace.seconds_by_type["StepSucceeded"] == pytest.approx(2.5)
    assert [r.sequence for r in trace.slowest(2)] == [3, 5]
    assert trace.to_dict()["partition"] == 4


def test_events_record_their_node_and_old_events_have_none() -> None:
    stamped = Envelope.sealed("", id="e1", type="T", subject="x", sequence=1, time="t", workflow="w",
                              workflowversion=1, data={}, node="n1")
    assert Envelope.from_bytes(stamped.to_bytes()).node == "n1"
    old = Envelope.sealed("", id="e1", type="T", subject="x", sequence=1, time="t", workflow="w",
                          workflowversion=1, data={})
    assert b'"node"' not in old.to_bytes() and Envelope.from_bytes(old.to_bytes()).node is None
