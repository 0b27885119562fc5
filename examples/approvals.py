"""Functions of the approval example (``examples/approval.yaml``)."""

from __future__ import annotations

from typing import Any


def request_approval(request_id: str, requester: str, amount: float) -> dict[str, Any]:
    """Ask an approver; a real version would send an email or a chat message with a link."""
    approver = "finance-lead" if amount >= 1000 else "team-lead"
    return {
        "request_id": request_id,
        "approver": approver,
        "message": f"{requester} asks for {amount:.2f}; send event 'approval' with key {request_id}",
    }


def escalate(request_id: str, approver: str) -> dict[str, Any]:
    """Nobody answered in time: hand the request to the next level."""
    return {"request_id": request_id, "escalated_from": approver, "escalated_to": "head-of-finance"}
