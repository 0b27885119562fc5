"""Poison commands on real Kafka: parked on the dead-letter topic, the partition keeps flowing, redrive.

One commands partition, handled strictly in order (``command_concurrency=1``): a command that
never succeeds would hold everything behind it. Two poisons on the commands topic: a record that
is not a command, and a start pinned to a version the registry does not have. A good execution
started after them completes; the API lists both; once the version exists, redriving the start
runs it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from orchestrator.core.commands import StartExecution
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration
WAIT = 30.0
LETTERS = "/api/v1/dead-letters/commands"
Client = TestClient[web.Request, web.Application]


def servers(kafka_url: str) -> list[str]:
    return kafka_url.removeprefix("kafka://").split(",")


@pytest.fixture
async def prefix(kafka_url: str) -> AsyncIterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    admin = AIOKafkaAdminClient(bootstrap_servers=servers(kafka_url))
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(name)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def work(version: int | None = None) -> Workflow:
    return Workflow("work", version=version, description=f"v{version}").task("step", "noop")


async def answer(response: Any, status: int) -> Any:
    text = await response.text()
    assert response.status == status, text
    return json.loads(text)


async def until_finished(runtime: Runtime, execution_id: str) -> str:
    """The final status, once the execution exists (a redriven start goes through Kafka first)."""
    for _ in range(int(WAIT * 10)):
        if await runtime.log.summary(execution_id) is not None:
            break
        await asyncio.sleep(0.1)
    return (await runtime.wait(execution_id, timeout=WAIT)).status


async def test_poison_commands_are_parked_and_the_partition_moves_on(
    kafka_url: str, prefix: str, cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    commands = f"{prefix}.commands"
    transport = f"{kafka_url}?commands={commands}&tasks={prefix}.tasks&group={prefix}&partitions=1&command_concurrency=1"
    settings = Settings(auth=False, event_log_url=cassandra_keyspace.url, transport_url=transport, command_attempts=3)
    producer = AIOKafkaProducer(bootstrap_servers=servers(kafka_url))
    async with Runtime(settings) as runtime:
        await runtime.register(work().build())
        await runtime.register(Workflow("good").task("a", "noop").task("b", "noop").build())
        await producer.start()
        try:
            await producer.send_and_wait(commands, b"\x00not a command", key=b"junk")
        finally:
            await producer.stop()
        poison_id = str(uuid.uuid4())
        start = StartExecution(execution_id=poison_id, now=runtime.clock(), workflow="work", version=9)
        await runtime.transport.submit(start)  # a record on the commands topic, like a child's start
        acme_id = str(uuid.uuid4())
        acme = StartExecution(execution_id=acme_id, now=runtime.clock(), workflow="work", version=9, tenant="acme")
        await runtime.transport.submit(acme)  # parked in its own tenant
        good_id = (await runtime.start_execution("good")).execution_id
        assert await until_finished(runtime, good_id) == "succeeded"  # its answers passed both poisons

        async with TestClient(TestServer(build_app(runtime, settings))) as client:
            page: dict[str, Any] = {}
            for _ in range(int(WAIT * 10)):
                page = await answer(await client.get(LETTERS), 200)
                if len(page["items"]) == 2:
                    break
                await asyncio.sleep(0.1)
            theirs: dict[str, Any] = {}
            for _ in range(int(WAIT * 10)):
                theirs = await answer(await client.get(LETTERS, headers={"X-Orchestrator-Tenant": "acme"}), 200)
                if theirs["items"]:
                    break
                await asyncio.sleep(0.1)
            assert [(x["execution_id"], x["tenant"]) for x in theirs["items"]] == [(acme_id, "acme")]
            other = await answer(await client.post(f"{LETTERS}/{theirs['items'][0]['id']}/redrive"), 404)
            assert other["error"]["code"] == "unknown_dead_letter"  # not the default tenant's to redrive
            junk, start = sorted(page["items"], key=lambda x: x["command_type"])
            assert (junk["tenant"], start["tenant"]) == ("default", "default")
            assert (junk["command_type"], junk["error_type"], junk["attempts"], junk["execution_id"]) == (
                "", "CodecError", 1, "junk",
            )  # fmt: skip
            assert junk["origin"].startswith(f"{commands}/0/")
            assert (start["command_type"], start["error_type"], start["attempts"]) == (
                "StartExecution", "UnknownWorkflow", 3,
            )  # fmt: skip
            assert "no version 9" in start["error_message"] and start["execution_id"] == poison_id
            assert await runtime.log.summary(poison_id) is None  # nothing was appended

            await runtime.register(work(9).build())
            redriven = await answer(await client.post(f"{LETTERS}/{start['id']}/redrive"), 200)
            assert redriven["redriven"] is True and redriven["execution_id"] == poison_id
            assert await until_finished(runtime, poison_id) == "succeeded"

            await answer(await client.post(f"{LETTERS}/{junk['id']}/redrive"), 200)  # still not a command
            for _ in range(int(WAIT * 10)):
                page = await answer(await client.get(LETTERS, params={"limit": "2"}), 200)
                if page["next_cursor"] is not None:
                    break
                await asyncio.sleep(0.1)
            rest = await answer(await client.get(LETTERS, params={"cursor": page["next_cursor"]}), 200)
            assert [x["error_type"] for x in rest["items"]] == ["CodecError"]  # parked again, as a new one
            assert (await answer(await client.post(f"{LETTERS}/999/redrive"), 404))["error"]["code"] == (
                "unknown_dead_letter"
            )
    await assert_dead_letter_record(kafka_url, f"{commands}.dead", junk["id"])
    await assert_all_committed(kafka_url, commands, f"{prefix}.commands")


async def assert_dead_letter_record(kafka_url: str, topic: str, offset: str) -> None:
    """The parked record is a binary-mode CloudEvent holding the original bytes as they were."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers(kafka_url), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, int(offset))
        record: Any = None
        async with asyncio.timeout(WAIT):
            while record is None:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
                record = next(iter(batch.get(tp, [])), None)
    finally:
        await consumer.stop()
    headers = {name: value.decode() for name, value in record.headers}
    assert record.value == b"\x00not a command" and record.key == b"junk"
    assert headers["ce_specversion"] == "1.0" and headers["ce_type"] == "io.orchestrator.deadletter.command"
    assert (headers["ce_subject"], headers["ce_errortype"], headers["ce_attempts"]) == (
        "junk",
        "CodecError",
        "1",
    )
    assert headers["ce_errormessage"].startswith("not JSON")
    assert headers["ce_tenant"] == "default"  # an undecodable record's tenant is not known


async def assert_all_committed(kafka_url: str, topic: str, group: str) -> None:
    """Nothing holds the partition's commit point: the group committed up to the end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers(kafka_url), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        end = (await consumer.end_offsets([tp]))[tp]
        assert await consumer.committed(tp) == end
    finally:
        await consumer.stop()
