"""Functions of the order flow example (``examples/order_flow.yaml``); plain sync Python."""

from __future__ import annotations

import hashlib
from typing import Any

from connectors.base import ConnectorError, StepCall

DEFAULT_REVIEW_THRESHOLD = 1000.0


def validate_order(order: dict[str, Any]) -> dict[str, Any]:
    """Check the order and compute its total; a bad order is not worth retrying."""
    items = order.get("items") or []
    if not items:
        raise ConnectorError("order.invalid", "an order needs at least one item", retryable=False)
    for item in items:
        if item.get("quantity", 0) <= 0:
            raise ConnectorError("order.invalid", f"bad quantity for {item.get('sku')}", retryable=False)
    total = round(sum(item["quantity"] * item["price"] for item in items), 2)
    return {
        "order_id": order["order_id"],
        "customer": order.get("customer", "anonymous"),
        "total": total,
        "review_threshold": order.get("review_threshold", DEFAULT_REVIEW_THRESHOLD),
        "items": items,
    }


def charge_payment(order_id: str, amount: float, idempotency_key: str, call: StepCall) -> dict[str, Any]:
    """Charge the customer. The gateway 'times out' on the first attempt to show retries.

    The idempotency key is the same for every attempt of this step, so a real gateway would
    charge once however often the step runs.
    """
    if call.attempt == 1:
        raise ConnectionError("payment gateway did not answer (simulated)")
    payment_id = "pay_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:12]
    return {"payment_id": payment_id, "order_id": order_id, "amount": amount, "attempt": call.attempt}


def reserve_inventory(order_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Reserve stock for every line of the order."""
    reserved = [{"sku": item["sku"], "quantity": item["quantity"]} for item in items]
    return {"reservation_id": f"res_{order_id}", "lines": reserved}


def ship(order_id: str, customer: str, reservation: dict[str, Any]) -> dict[str, Any]:
    """Hand the order to the carrier."""
    tracking = "TRK" + hashlib.sha256(order_id.encode()).hexdigest()[:10].upper()
    return {
        "order_id": order_id,
        "customer": customer,
        "tracking": tracking,
        "reservation_id": reservation["reservation_id"],
    }
