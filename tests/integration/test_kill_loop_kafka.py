"""The kill loop with a Kafka trigger on the real broker: while webhooks, retries, timers and
event waits run, records are published to a topic whose trigger starts a second workflow; the
server (embedded SQLite) is SIGKILLed at random moments and restarted. At the end every
published record is exactly one execution, completed with one StepSucceeded per step, like
every webhook delivery (tests/e2e/kill_loop.py).

Each restart rejoins the consumer group, which waits for the killed member's session to expire,
so this variant kills fewer times: ``ORCHESTRATOR_KILL_LOOP_KAFKA_ROUNDS`` (default 4).
"""

from __future__ import annotations

import copy
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from orchestrator.runtime import execution_id_for
from tests.e2e.kill_loop import SEED, WORKFLOW, Extra, run_kill_loop, summary

pytestmark = pytest.mark.integration
ROUNDS = int(os.environ.get("ORCHESTRATOR_KILL_LOOP_KAFKA_ROUNDS", "4"))
TRIGGER = "feed"


@pytest.fixture
async def producer(kafka_url: str) -> AsyncIterator[AIOKafkaProducer]:
    servers = kafka_url.removeprefix("kafka://").split("?", 1)[0].split(",")
    started = AIOKafkaProducer(bootstrap_servers=servers, acks="all", enable_idempotence=True)
    await started.start()
    yield started
    await started.stop()


def kafka_workflow(topic: str) -> dict[str, Any]:
    definition = copy.deepcopy(WORKFLOW)
    definition["name"] = "mixed_kafka"
    definition["triggers"] = [
        {"type": "kafka", "name": TRIGGER, "topics": [topic], "start_from": "earliest", "message_id": "data.key"}
    ]
    return definition


async def test_sigkill_with_a_kafka_trigger_starts_each_record_once_and_completes_it(
    tmp_path: Path, kafka_url: str, producer: AIOKafkaProducer
) -> None:
    topic = f"kl.{uuid.uuid4().hex[:10]}.feed"

    async def publish(inputs: list[dict[str, Any]]) -> None:
        sent = [await producer.send(topic, json.dumps(value).encode()) for value in inputs]
        for delivery in sent:
            await delivery  # acknowledged by the broker (acks=all)

    extra = Extra(
        definition=kafka_workflow(topic),
        env={"ORCHESTRATOR_CONNECTION_KAFKA": f"{kafka_url}?partitions=3"},
        publish=publish,
        execution_id=lambda key: execution_id_for("default", "mixed_kafka", f"kafka:{TRIGGER}:id:{key}"),
    )
    began = time.monotonic()
    print(f"kafka kill loop: {ROUNDS} rounds, seed {SEED}")
    world = await run_kill_loop(tmp_path, ROUNDS, SEED, extra)
    print(summary(world, ROUNDS, time.monotonic() - began))
    assert world.published and world.accepted
