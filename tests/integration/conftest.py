"""Fixtures for the real services started by ``scripts/services start``.

A service that does not answer FAILS the tests that need it (never a skip): the message says how
to start it. Override where a service is with environment variables:

- ``ORCHESTRATOR_TEST_CASSANDRA``: ``host[:port][,host2...]`` of the CQL endpoint
  [127.0.0.1:9042]
- ``ORCHESTRATOR_TEST_KAFKA``: ``kafka://host:port[,host2:port]`` of the Kafka brokers
  [kafka://127.0.0.1:9092]
- ``ORCHESTRATOR_TEST_AMQP``: ``amqp://user:password@host:port/`` of RabbitMQ
  [amqp://guest:guest@127.0.0.1:5672/]
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.policies import ConstantReconnectionPolicy, RoundRobinPolicy

from orchestrator.backends.cassandra.event_log import migrate

START_HINT = "start the test services with `scripts/services start` (or `start cassandra`)"


def admin_cluster(url: str, timeout: float = 10.0) -> Cluster:
    """A plain driver Cluster for ``cassandra://host[:port][,host2...]`` (no keyspace)."""
    hosts = url.removeprefix("cassandra://").split("/", 1)[0].split(",")
    ports = {int(h.rpartition(":")[2]) for h in hosts if ":" in h} or {9042}
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=60)
    return Cluster(
        [h.partition(":")[0] for h in hosts],
        port=ports.pop(),
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=timeout,
        control_connection_timeout=timeout,
        reconnection_policy=ConstantReconnectionPolicy(1.0),  # back soon after an outage test
    )


@pytest.fixture(scope="session")
def cassandra_url() -> str:
    """``cassandra://host:port`` (no keyspace) of a reachable Cassandra, or the test fails."""
    hosts = os.environ.get("ORCHESTRATOR_TEST_CASSANDRA", "127.0.0.1:9042")
    url = "cassandra://" + hosts.removeprefix("cassandra://").split("/", 1)[0]
    cluster = admin_cluster(url, timeout=5)
    try:
        cluster.connect().execute("SELECT release_version FROM system.local")
    except (NoHostAvailable, OSError) as exc:
        pytest.fail(f"Cassandra is not reachable at {url} ({exc}); {START_HINT}", pytrace=False)
    finally:
        cluster.shutdown()
    return url


@pytest.fixture(scope="session")
def cassandra_admin(cassandra_url: str) -> Iterator[Session]:
    """A plain driver session for test set-up (keyspaces, truncation, index surgery)."""
    cluster = admin_cluster(cassandra_url)
    session = cluster.connect()
    yield session
    cluster.shutdown()


class TestKeyspace:
    """A migrated keyspace of its own for one test module; emptied for each test that asks."""

    __test__ = False

    def __init__(self, admin: Session, base_url: str, name: str) -> None:
        self.admin = admin
        self.name = name
        self.url = f"{base_url}/{name}"
        self._fresh_for: set[Path] = set()

    def tables(self) -> list[str]:
        rows = self.admin.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (self.name,)
        )
        return sorted(row.table_name for row in rows if row.table_name != "schema_migrations")

    async def empty_once(self, key: Path) -> None:
        """Truncate every table the first time ``key`` (a test's tmp_path) asks."""
        if key in self._fresh_for:
            return
        self._fresh_for.add(key)

        def truncate() -> None:
            for table in self.tables():
                self.admin.execute(f"TRUNCATE {self.name}.{table}")

        await asyncio.to_thread(truncate)


@pytest.fixture(scope="module")
def cassandra_keyspace(cassandra_admin: Session, cassandra_url: str) -> Iterator[TestKeyspace]:
    """A fresh, migrated, randomly named keyspace for the module, dropped at its end."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    keyspace = TestKeyspace(cassandra_admin, cassandra_url, name)
    asyncio.run(migrate(keyspace.url))
    try:
        yield keyspace
    finally:
        for attempt in range(30):  # the admin session may be reconnecting after an outage test
            try:
                cassandra_admin.execute(f"DROP KEYSPACE IF EXISTS {name}")
                break
            except NoHostAvailable:
                if attempt == 29:
                    raise
                time.sleep(1)


@pytest.fixture(scope="session")
def kafka_url() -> str:
    """``kafka://host:port`` of a reachable Kafka (a metadata request answered), or the test fails."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.errors import KafkaError

    url = os.environ.get("ORCHESTRATOR_TEST_KAFKA", "kafka://127.0.0.1:9092")
    servers = url.removeprefix("kafka://").split("?", 1)[0].split(",")

    async def probe() -> None:
        client = AIOKafkaClient(bootstrap_servers=servers, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(client.bootstrap(), 10)
        finally:
            await client.close()

    try:
        asyncio.run(probe())
    except (KafkaError, OSError, TimeoutError) as exc:
        hint = START_HINT.replace("start cassandra", "start kafka")
        pytest.fail(f"Kafka is not reachable at {url} ({exc!r}); {hint}", pytrace=False)
    return url.split("?", 1)[0]


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """``amqp://...`` of a reachable RabbitMQ (a connection opened), or the test fails."""
    import aio_pika

    url = os.environ.get("ORCHESTRATOR_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")

    async def probe() -> None:
        connection = await asyncio.wait_for(aio_pika.connect(url, timeout=5), 10)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        hint = START_HINT.replace("start cassandra", "start rabbitmq")
        pytest.fail(f"RabbitMQ is not reachable at {url} ({exc!r}); {hint}", pytrace=False)
    return url
