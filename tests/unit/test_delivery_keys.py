"""Which execution a webhook delivery starts (triggers/delivery_keys.py): on a signed hook only
signed content picks the key, so changing an unsigned header never starts a replay again."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from schemas.definition import WebhookTrigger
from triggers.delivery_keys import Delivery, DeliveryKey, delivery_key

NOW = 1_700_000_050.0
BODY = b'{"id": "evt_1", "n": 1}'
PAYLOAD = {"id": "evt_1", "n": 1}
DIGEST = hashlib.sha256(BODY).hexdigest()
EVENT = {"specversion": "1.0", "id": "e-1", "source": "/shop", "type": "order"}
UNSIGNED = {"Idempotency-Key": "client-key", "X-Delivery": "provider-id"}


def hook(preset: str | None = None, **fields: Any) -> WebhookTrigger:
    signature = None
    if preset is not None:
        signature = {"preset": preset, "secret": "S", "header": "X-Sig" if preset == "generic" else None}
        signature |= fields.pop("signature", {})
    return WebhookTrigger.model_validate({"name": "h", "signature": signature, **fields})


def key(config: WebhookTrigger, headers: dict[str, str] | None = None, **fields: Any) -> DeliveryKey:
    delivery = Delivery(headers or {}, BODY, fields.pop("payload", PAYLOAD), **fields)
    return delivery_key(config, delivery, NOW)


# -- unsigned hooks: the sender picks the key -------------------------------------------------------


def test_an_unsigned_hook_takes_idempotency_key_then_header_then_field_then_cloudevent() -> None:
    config = hook(idempotency_header="X-Delivery", idempotency_field="id")
    assert key(config, UNSIGNED, event=EVENT) == DeliveryKey("client-key")
    assert key(config, {"X-Delivery": "provider-id"}, event=EVENT) == DeliveryKey("provider-id")
    assert key(config, event=EVENT) == DeliveryKey("evt_1")
    assert key(config, payload={}, event=EVENT) == DeliveryKey("ce:/shop/e-1")
    assert key(hook(), payload={}) == DeliveryKey(None)


# -- signed hooks: only what the signature covers -----------------------------------------------------


@pytest.mark.parametrize("preset", ["github", "stripe", "generic"])
def test_a_signed_body_field_wins_over_unsigned_headers(preset: str) -> None:
    config = hook(preset, idempotency_header="X-Delivery", idempotency_field="id")
    assert key(config, UNSIGNED, signed_at=123 if preset == "stripe" else None) == DeliveryKey("evt_1")


def test_a_structured_cloudevent_id_is_signed_a_binary_one_is_not() -> None:
    config = hook("github")
    assert key(config, UNSIGNED, event=EVENT) == DeliveryKey("ce:/shop/e-1")
    binary = key(config, UNSIGNED, event=EVENT, binary_event=True)
    assert binary.key is not None and binary.key.startswith(f"sig:{DIGEST}:")


def test_without_a_signed_id_the_body_digest_and_window_number_are_the_key() -> None:
    config = hook("github", idempotency_header="X-Delivery", signature={"replay_window_seconds": 100})
    number = int(NOW // 100)
    expected = DeliveryKey(f"sig:{DIGEST}:{number}", previous=f"sig:{DIGEST}:{number - 1}", since=NOW - 100)
    assert key(config, UNSIGNED) == expected
    assert key(config, {"Idempotency-Key": "another", "X-Delivery": "another"}) == expected  # headers change nothing


def test_the_replay_window_defaults_to_three_days() -> None:
    config = hook("generic")
    assert config.signature is not None and config.signature.replay_window_seconds == 3 * 24 * 3600
    assert key(config).since == NOW - 3 * 24 * 3600


def test_with_a_signed_timestamp_the_signed_content_is_the_key_for_good() -> None:
    for config in (hook("stripe"), hook("generic", signature={"timestamp_header": "X-Ts"})):
        stamped = key(config, UNSIGNED, signed_at=1_700_000_000)
        digest = hashlib.sha256(b"1700000000." + BODY).hexdigest()
        assert stamped == DeliveryKey(f"sig:{digest}")
        assert key(config, signed_at=1_700_000_001).key != stamped.key  # a new send is a new delivery


def test_a_zero_window_falls_back_to_the_unsigned_headers() -> None:
    config = hook("github", idempotency_header="X-Delivery", signature={"replay_window_seconds": 0})
    assert key(config, UNSIGNED) == DeliveryKey("client-key")
    assert key(config) == DeliveryKey(None)


def test_overlong_or_unreadable_keys_are_value_errors() -> None:
    with pytest.raises(ValueError, match="longer than"):
        key(hook(), {"Idempotency-Key": "k" * 300})
    with pytest.raises(ValueError, match="longer than"):
        key(hook("github", idempotency_field="id"), payload={"id": "x" * 300})
