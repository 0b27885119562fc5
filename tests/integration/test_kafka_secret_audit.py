"""The worker's secret resolutions are audited in Kafka mode too: the task travels through the
tasks topic and the worker that resolves the reference writes exactly one ``secrets:resolve``
record, by ``execution:<id>``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from orchestrator.runtime import Runtime
from orchestrator.secrets.sealing import new_key
from orchestrator.settings import Settings
from tests.secret_audit_kit import VALUE, resolve_records, run_with_secret

pytestmark = pytest.mark.integration


@pytest.fixture
async def prefix(kafka_url: str) -> AsyncIterator[str]:
    name = f"test-secaudit-{uuid.uuid4().hex[:10]}"
    yield name
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_url.removeprefix("kafka://").split(","))
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(name)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def test_a_kafka_worker_records_one_resolution(kafka_url: str, prefix: str, tmp_path: Path) -> None:
    transport = f"{kafka_url}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}&partitions=1&grace=1"
    settings = Settings(
        auth=False,
        event_log_url=f"sqlite:///{tmp_path}/events.db",
        transport_url=transport,
        retention_interval=0,
        secrets_key=new_key(),
    )
    async with Runtime(settings) as runtime:
        assert runtime.transport.durable
        await runtime.secrets.put("acme", "TOKEN", VALUE)
        execution_id, status = await run_with_secret(runtime)
        assert status == "succeeded"
        records = await resolve_records(runtime)
    assert [(r["actor"]["kind"], r["actor"]["subject"], r["resource"]["id"], r["tenant"]) for r in records] == [
        ("execution", execution_id, "TOKEN", "acme")
    ]
