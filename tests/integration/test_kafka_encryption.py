"""Encryption at rest on Kafka: ``kcat`` finds no plaintext payload in the command, task and
transition topics while executions run through them; the plaintext option publishes the
transition stream in the clear for a trusted consumer; a tampered command record is parked."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.encryption_kit import MARK, key_text, run_marked

pytestmark = pytest.mark.integration
WAIT = 30.0


def servers(kafka_url: str) -> list[str]:
    return kafka_url.removeprefix("kafka://").split(",")


@pytest.fixture
async def prefix(kafka_url: str) -> AsyncIterator[str]:
    name = f"test-enc-{uuid.uuid4().hex[:10]}"
    yield name
    admin = AIOKafkaAdminClient(bootstrap_servers=servers(kafka_url))
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(name)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def kcat_values(kafka_url: str, topic: str) -> list[bytes]:
    """Every record value of ``topic``, raw, as ``kcat`` prints them (one per line, hex-free)."""
    assert shutil.which("kcat"), "kcat is not installed"
    command = ["kcat", "-b", servers(kafka_url)[0], "-C", "-t", topic, "-e", "-o", "beginning", "-q", "-f", "%s\\n--END--\\n"]
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [v.strip(b"\n") for v in done.stdout.split(b"--END--") if v.strip(b"\n")]


def settings(tmp_path: Path, kafka_url: str, prefix: str, **more: object) -> Settings:
    transport = f"{kafka_url}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}&partitions=1&grace=1"
    return Settings(
        event_log_url=f"sqlite:///{tmp_path}/events.db",
        transport_url=transport,
        transitions_url=f"{kafka_url}?topic={prefix}.transitions&partitions=1",
        retention_interval=0,
        encryption_keys=key_text("k1"),
        **more,  # type: ignore[arg-type]
    )


async def test_kcat_finds_no_plaintext_on_the_topics(kafka_url: str, prefix: str, tmp_path: Path) -> None:
    async with Runtime(settings(tmp_path, kafka_url, prefix)) as runtime:
        (execution_id,) = await run_marked(runtime)  # it ran: every record decrypted
        assert MARK in json.dumps((await runtime.state(execution_id)).output)
        await runtime.transitions.exported(execution_id, 4, WAIT)  # type: ignore[union-attr]
    for topic in ("commands", "tasks", "transitions"):
        values = kcat_values(kafka_url, f"{prefix}.{topic}")
        assert values, topic
        assert not any(MARK.encode() in v for v in values), topic
    transitions = [json.loads(v) for v in kcat_values(kafka_url, f"{prefix}.transitions")]
    assert {t["codec"] for t in transitions} == {"aes256gcm"} and all("data_base64" in t for t in transitions)


async def test_the_transition_stream_can_be_plaintext_for_a_trusted_consumer(
    kafka_url: str, prefix: str, tmp_path: Path
) -> None:
    async with Runtime(settings(tmp_path, kafka_url, prefix, transitions_plaintext=True)) as runtime:
        (execution_id,) = await run_marked(runtime)
        await runtime.transitions.exported(execution_id, 4, WAIT)  # type: ignore[union-attr]
    assert any(MARK.encode() in v for v in kcat_values(kafka_url, f"{prefix}.transitions"))
    assert not any(MARK.encode() in v for v in kcat_values(kafka_url, f"{prefix}.tasks"))


async def test_a_tampered_command_record_is_parked_not_run(kafka_url: str, prefix: str, tmp_path: Path) -> None:
    async with Runtime(settings(tmp_path, kafka_url, prefix)) as runtime:
        await run_marked(runtime)
        sealed = kcat_values(kafka_url, f"{prefix}.commands")[0]
        tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
        producer = AIOKafkaProducer(bootstrap_servers=servers(kafka_url))
        await producer.start()
        try:
            await producer.send_and_wait(f"{prefix}.commands", tampered, key=b"tampered")
        finally:
            await producer.stop()
        for _ in range(int(WAIT * 10)):
            letters = (await runtime.dead_letters.list()).items
            if letters:
                break
            await asyncio.sleep(0.1)
        (letter,) = letters
        assert letter.error_type == "CodecError" and "does not verify" in letter.error_message
