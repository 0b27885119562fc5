"""The RabbitMQ trigger's pure parts: a delivery -> InboundMessage (no broker needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.definition import AmqpTrigger
from triggers.amqp_source import AmqpTriggerSource, header_text
from triggers.inbound import BadMessage, content_identity
from triggers.sources import SourceSpec


def source(**trigger: Any) -> AmqpTriggerSource:
    settings = Settings(event_log_url="memory://", retention_interval=0)
    spec = SourceSpec("orders", 1, AmqpTrigger(name="t", queue="q", **trigger), Runtime(settings), settings)
    return AmqpTriggerSource(spec)


def delivery(body: bytes, **properties: Any) -> Any:
    fields = {
        "headers": {},
        "content_type": None,
        "message_id": None,
        "exchange": "",
        "routing_key": "q",
        "redelivered": False,
    }
    return SimpleNamespace(body=body, **{**fields, **properties})


def test_header_values_become_text() -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert header_text("a") == "a"
    assert header_text(b"caf\xc3\xa9") == "café"
    assert header_text(7) == "7"
    assert header_text(True) == "true"
    assert header_text(1.5) == "1.5"
    assert header_text(Decimal("2.50")) == "2.50"
    assert header_text(None) == ""
    assert header_text(when) == "2024-05-01T12:00:00+00:00"
    assert json.loads(header_text({"a": [1, "x"]})) == {"a": [1, "x"]}


def test_a_plain_json_message_with_a_message_id() -> None:
    message = delivery(
        b'{"order": 1}',
        message_id="m-1",
        headers={"tenant": b"acme", "n": 3},
        exchange="shop",
        routing_key="orders.eu",
        redelivered=True,
    )
    inbound = source().inbound(message)
    assert inbound.data == {"order": 1}
    assert inbound.identity == "amqp:m-1"
    assert inbound.message_id == "m-1"
    assert inbound.cloudevent is None
    assert inbound.headers == {"tenant": "acme", "n": "3"}
    assert inbound.where == {
        "queue": "q",
        "exchange": "shop",
        "routing_key": "orders.eu",
        "redelivered": True,
    }
    assert inbound.context()["routing_key"] == "orders.eu"


def test_without_a_message_id_the_body_hash_is_the_identity() -> None:
    inbound = source().inbound(delivery(b'{"order": 1}'))
    assert inbound.identity == content_identity("amqp", b'{"order": 1}')
    assert inbound.message_id is None


def test_a_binary_cloudevent() -> None:
    headers = {
        "cloudEvents_specversion": "1.0",
        "cloudEvents_id": "e-1",
        "cloudEvents_source": "/shop",
        "cloudEvents_type": "order.created",
    }
    inbound = source().inbound(delivery(b'{"order": 2}', headers=headers, content_type="application/json"))
    assert inbound.data == {"order": 2}
    assert inbound.cloudevent is not None
    assert (inbound.cloudevent["id"], inbound.cloudevent["source"]) == ("e-1", "/shop")


@pytest.mark.parametrize("body", [b"not json", b"{"])
def test_a_body_that_is_not_json_is_a_bad_message(body: bytes) -> None:
    with pytest.raises(BadMessage):
        source().inbound(delivery(body))


def test_the_dead_letter_names() -> None:
    assert (source().dead_letter_exchange, source().dead_letter_queue) == ("q.dlx", "q.dead")
    assert source(dead_letter_exchange="dlx").dead_letter_exchange == "dlx"
