"""Pure parts of the trigger dead-letter queues: the id of a RabbitMQ letter, which kinds park."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestrator.ports import NoDeadLetters
from schemas.definition import WebhookTrigger
from triggers.dead_letter_queues import PREVIEW_BYTES, ParkedMessage, amqp_letter_id, dead_letter_queue


def test_a_letter_without_a_message_id_is_named_by_its_content() -> None:
    one = SimpleNamespace(message_id=None, headers={"b": 1, "a": "x"}, body=b"payload")
    same = SimpleNamespace(message_id=None, headers={"a": "x", "b": 1}, body=b"payload")
    other = SimpleNamespace(message_id=None, headers={"a": "x", "b": 1}, body=b"payloaD")
    assert amqp_letter_id(one) == amqp_letter_id(same) != amqp_letter_id(other)
    assert amqp_letter_id(one).startswith("sha256:")
    assert amqp_letter_id(SimpleNamespace(message_id="m-1", headers={}, body=b"")) == "m-1"


def test_a_webhook_parks_nothing() -> None:
    with pytest.raises(NoDeadLetters, match="webhook"):
        dead_letter_queue(WebhookTrigger(name="hook"), "")


def test_a_long_body_says_it_is_cut() -> None:
    letter = ParkedMessage("0:1", "bad", "t/0/1", None, None, value="x" * PREVIEW_BYTES, size=PREVIEW_BYTES + 1)
    assert letter.to_dict()["truncated"] is True
    assert ParkedMessage("0:2", "bad", "t/0/2", None, None, value="x", size=1).to_dict()["truncated"] is False
