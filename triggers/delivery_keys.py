"""Which execution a webhook delivery starts: its dedup key. Pure: no I/O, the clock is an argument.

The execution id is derived from the key, so a delivery with the key of an earlier one starts
nothing. On an **unsigned** hook the sender picks the key: the ``Idempotency-Key`` header, else the
hook's ``idempotency_header``, else its ``idempotency_field`` (a body field), else the CloudEvent's
``source`` + ``id``.

On a **signed** hook only what the signature covers may pick the key: headers are not signed by
any preset, so anyone holding one signed delivery could otherwise replay it with a new
``Idempotency-Key`` or ``X-GitHub-Delivery`` and start it again. In order:

1. the ``idempotency_field`` (a body field: signed);
2. a structured CloudEvent's ``source`` + ``id`` (in the body: signed);
3. with a signed timestamp (``stripe``, ``generic`` with ``timestamp_header``): the digest of the
   signed content ``"<t>.<body>"``. A replay must reuse ``t``, which is refused once it is further
   than ``tolerance_seconds`` from now, and is a duplicate until then;
4. otherwise (``github``, ``generic`` without a timestamp) nothing signed tells two sends of the
   same body apart: a delivery whose body was accepted within ``replay_window_seconds`` is a
   duplicate. The key is the body's digest and the window's number (``now // window``); a
   delivery also duplicates the execution of the previous window's key when that one started
   less than a window ago, so the window is exact, at the cost of one summary read;
5. ``replay_window_seconds: 0`` turns 4 off: the unsigned chain of an unsigned hook applies.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.api.requests import MAX_KEY_LENGTH
from schemas import cloudevents
from schemas.definition import WebhookTrigger
from schemas.expressions import ExpressionError, evaluate
from triggers.signatures import signed_content

__all__ = ["IDEMPOTENCY_HEADER", "DeliveryKey", "delivery_key"]

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class DeliveryKey:
    """``key`` starts (or finds) the execution. With ``previous``, the delivery is a duplicate of
    the execution that key started, if it started at or after ``since`` (epoch seconds)."""

    key: str | None
    previous: str | None = None
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the key may be taken from; ``signed_at`` is the verified signed timestamp."""

    headers: Mapping[str, str]
    body: bytes
    payload: Any
    event: dict[str, Any] | None = None
    binary_event: bool = False
    signed_at: int | None = None


def delivery_key(config: WebhookTrigger, delivery: Delivery, now: float) -> DeliveryKey:
    """The key of one verified delivery (see the module docstring). ValueError: a key that
    cannot be read or is longer than MAX_KEY_LENGTH."""
    signature = config.signature
    if signature is None:
        return DeliveryKey(_unsigned(config, delivery))
    field = _field(config, delivery.payload)
    if field is not None:
        return DeliveryKey(field)
    if delivery.event is not None and not delivery.binary_event:
        return DeliveryKey(_cloudevent(delivery.event))
    digest = hashlib.sha256(signed_content(delivery.body, delivery.signed_at)).hexdigest()
    if delivery.signed_at is not None:
        return DeliveryKey(f"sig:{digest}")
    window = signature.replay_window_seconds
    if window == 0:
        return DeliveryKey(_unsigned(config, delivery))
    number = int(now // window)
    return DeliveryKey(f"sig:{digest}:{number}", previous=f"sig:{digest}:{number - 1}", since=now - window)


def _unsigned(config: WebhookTrigger, delivery: Delivery) -> str | None:
    """Idempotency-Key header, else the configured header, else the configured body field, else
    the CloudEvent's source + id (hashed when longer than MAX_KEY_LENGTH)."""
    for header in (IDEMPOTENCY_HEADER, config.idempotency_header):
        if header and delivery.headers.get(header):
            return _bounded(delivery.headers[header], header)
    key = _field(config, delivery.payload)
    if key is None and delivery.event is not None:
        key = _cloudevent(delivery.event)
    return key


def _field(config: WebhookTrigger, payload: Any) -> str | None:
    if not config.idempotency_field:
        return None
    try:
        value = evaluate(config.idempotency_field, payload)
    except ExpressionError as exc:
        raise ValueError(f"cannot read the idempotency field: {exc}") from None
    return None if value is None else _bounded(_key_text(value), f"body field {config.idempotency_field!r}")


def _cloudevent(event: dict[str, Any]) -> str:
    key = "ce:" + cloudevents.identity(event)
    return key if len(key) <= MAX_KEY_LENGTH else "ce:sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _bounded(key: str | None, source: str) -> str | None:
    if key is not None and len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"the idempotency key from {source} is longer than {MAX_KEY_LENGTH} characters")
    return key


def _key_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
