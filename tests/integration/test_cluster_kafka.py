"""The cluster view on Kafka + Cassandra: two real workers publish heartbeats into the keyspace
and split the commands partitions; SIGKILL one and it turns dead while the survivor takes every
partition. And the Cassandra node directory's contract."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.backends.cassandra.nodes import CassandraNodeDirectory
from orchestrator.cluster.view import ClusterView, cluster_view
from orchestrator.ports import NodeRecord
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.integration.conftest import TestKeyspace
from tests.integration.workers import REPO, spawn_worker, stop_workers

pytestmark = pytest.mark.integration
PARTITIONS = 8


async def test_the_cassandra_node_directory_keeps_one_record_per_node(cassandra_keyspace: TestKeyspace) -> None:
    directory = CassandraNodeDirectory.from_url(cassandra_keyspace.url)
    await directory.start()
    try:
        base = NodeRecord(f"n-{uuid.uuid4().hex[:6]}", "worker", "0.1.0", "h", 1, 1.0, 2.0, 5.0, (1, 2))
        await directory.publish(base)
        await directory.publish(dataclasses.replace(base, heartbeat_at=3.0, in_flight=4, lag={"c/1": 2}))
        mine = [r for r in await directory.nodes() if r.node_id == base.node_id]
        assert mine == [dataclasses.replace(base, heartbeat_at=3.0, in_flight=4, lag={"c/1": 2})]
    finally:
        await directory.stop()


async def test_two_workers_split_the_partitions_and_a_killed_one_turns_dead(
    kafka_url: str, cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    transport = f"{kafka_url}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}&partitions={PARTITIONS}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(
        PYTHONPATH=str(REPO),
        ORCHESTRATOR_EVENT_LOG_URL=cassandra_keyspace.url,
        ORCHESTRATOR_TRANSPORT_URL=transport,
        ORCHESTRATOR_HEARTBEAT_INTERVAL="0.5",
    )
    names = [f"{prefix}-w0", f"{prefix}-w1"]
    logs = [tmp_path / f"{name}.log" for name in names]
    workers = [spawn_worker({**env, "ORCHESTRATOR_NODE_ID": name}, log) for name, log in zip(names, logs, strict=True)]
    api = Settings(event_log_url=cassandra_keyspace.url, transport_url=f"{transport}&role=api", heartbeat_interval=0)
    try:
        async with Runtime(api) as runtime:

            async def view_until(check: Callable[[ClusterView], bool], timeout: float = 90.0) -> dict[str, NodeRecord]:
                deadline = time.monotonic() + timeout
                while True:
                    records = {r.node_id: r for r in await runtime.nodes.nodes() if r.node_id in names}
                    view = cluster_view(list(records.values()), time.time())
                    if check(view):
                        return records
                    for worker, log in zip(workers, logs, strict=True):
                        if worker.poll() is not None and worker is not workers[0]:
                            raise AssertionError(log.read_text()[-3000:])
                    assert time.monotonic() < deadline, [dataclasses.asdict(r) for r in records.values()]
                    await asyncio.sleep(0.3)

            def split(view: ClusterView) -> bool:
                alive = [r for r, s in view.nodes if s == "alive" and r.shards]
                return len(alive) == 2 and set(view.owners) == set(range(PARTITIONS)) and not view.contested

            records = await view_until(split)
            shards = [set(records[name].shards or ()) for name in names]
            assert shards[0] and shards[1] and not shards[0] & shards[1]
            assert {records[name].role for name in names} == {"worker"}
            workers[0].send_signal(signal.SIGKILL)
            assert workers[0].wait(10) == -signal.SIGKILL

            def taken_over(view: ClusterView) -> bool:
                status = {r.node_id: s for r, s in view.nodes}
                owners = view.owners
                return status.get(names[0]) == "dead" and len(owners) == PARTITIONS and all(
                    o == [names[1]] for o in owners.values()
                )

            await view_until(taken_over)
    finally:
        stop_workers(workers)
