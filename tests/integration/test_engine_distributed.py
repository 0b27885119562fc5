"""The engine suite on Kafka + Cassandra: the same tests as on the embedded backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from connectors.base import Connectors
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.engine_suite import EngineSuite
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration


def distributed_settings(kafka_url: str, keyspace: TestKeyspace) -> Settings:
    """Fresh topics and consumer groups for one test, one migrated keyspace per module."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    transport = (
        f"{kafka_url}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}"
        "&partitions=4&replication=1"
    )
    return Settings(event_log_url=keyspace.url, transport_url=transport)


class TestEngineDistributed(EngineSuite):
    @pytest.fixture
    def make_runtime(
        self, kafka_url: str, cassandra_keyspace: TestKeyspace, tmp_path: Path
    ) -> Callable[[Connectors], AbstractAsyncContextManager[Runtime]]:
        settings = distributed_settings(kafka_url, cassandra_keyspace)

        @asynccontextmanager
        async def make(connectors: Connectors) -> AsyncIterator[Runtime]:
            await cassandra_keyspace.empty_once(tmp_path)
            async with Runtime(settings, connectors=connectors) as runtime:
                yield runtime

        return make
