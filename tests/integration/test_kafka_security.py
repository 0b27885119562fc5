"""The Kafka URL's security options reach the real clients: PLAINTEXT said out loud works against
the test broker, while TLS or SASL against that plaintext listener fail to start with one clear
error that never shows the password."""

from __future__ import annotations

import time
import uuid

import pytest

from orchestrator.backends.kafka.client import KafkaOptions, ensure_topics, idempotent_producer
from orchestrator.backends.kafka.transport import KafkaTransport
from orchestrator.ports import BackendUnavailable
from tests.integration.test_kafka_transport import Recorder

pytestmark = pytest.mark.integration


async def test_explicit_plaintext_reaches_the_broker(kafka_url: str) -> None:
    topic = f"security-{uuid.uuid4().hex[:8]}"
    options = KafkaOptions.from_url(f"{kafka_url}?security_protocol=PLAINTEXT")
    await ensure_topics(options.bootstrap, [topic], 1, 1, security=options.security)
    producer = idempotent_producer(options.bootstrap, "security-test", linger_ms=0, send_timeout=10, security=options.security)
    await producer.start()
    try:
        metadata = await (await producer.send(topic, b"v", key=b"k"))
        assert metadata.topic == topic
    finally:
        await producer.stop()


@pytest.mark.parametrize(
    "query",
    [
        "security_protocol=SSL&ssl_verify=false",
        "security_protocol=SASL_PLAINTEXT&sasl_mechanism=SCRAM-SHA-256&sasl_username=u&sasl_password=hunter2",
    ],
)
async def test_tls_or_sasl_against_a_plaintext_listener_is_one_clear_error(kafka_url: str, query: str) -> None:
    prefix = f"sec{uuid.uuid4().hex[:8]}"
    transport = KafkaTransport.from_url(
        f"{kafka_url}?{query}&start_timeout=3&commands={prefix}.c&tasks={prefix}.t&group={prefix}"
    )
    began = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        await transport.start(Recorder().on_command, Recorder().on_task)
    assert time.monotonic() - began < 15
    assert "hunter2" not in str(caught.value)
