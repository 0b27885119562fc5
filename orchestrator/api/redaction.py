"""Answers without payloads, for callers who may read executions but not ``payloads:read``:
inputs, outputs, step results and event data are replaced by :data:`REDACTED` (statuses,
steps, times and errors stay). The authentication middleware decides (``request["payloads"]``);
without it (authentication off) everything is shown."""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

PAYLOADS_KEY = "payloads"  # set by orchestrator.auth.middleware
REDACTED = "[redacted: needs payloads:read]"


def payloads_visible(request: web.Request) -> bool:
    return bool(request.get(PAYLOADS_KEY, True))


def state(view: dict[str, Any]) -> dict[str, Any]:
    """An execution or state answer without input, output and step outputs (the names of the
    finished steps stay)."""
    hidden: dict[str, Any] = {name: REDACTED for name in ("input", "output") if name in view}
    if isinstance(view.get("steps"), dict):
        hidden["steps"] = dict.fromkeys(view["steps"], REDACTED)
    if isinstance(view.get("slots"), dict):  # concurrency keys and priority come from the input
        hidden["slots"] = {**view["slots"], **dict.fromkeys(("keys", "held", "queued", "priority"), REDACTED)}
    return {**view, **hidden}


def summary(view: dict[str, Any]) -> dict[str, Any]:
    """A listed execution without its correlation key (an expression over its input)."""
    return {**view, "correlation_key": REDACTED} if view.get("correlation_key") is not None else view


def limits(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Concurrency keys whose value comes from an execution's input, hidden (a constant key,
    a raw string in the definition, stays); a hidden key keeps a stable digest to tell rows apart."""
    shown = []
    for row in rows:
        expression = str(row.get("expression", ""))
        if len(expression) >= 2 and expression[0] == expression[-1] == "'":
            shown.append(row)
            continue
        digest = hashlib.sha256(str(row["key"]).encode()).hexdigest()[:16]
        shown.append({**row, "key": f"sha256:{digest}", "value": REDACTED})
    return shown


def event(cloudevent: dict[str, Any]) -> dict[str, Any]:
    """A CloudEvent without its data."""
    return {**cloudevent, "data": REDACTED} if "data" in cloudevent else cloudevent


def timeline(view: dict[str, Any]) -> dict[str, Any]:
    """A timeline whose rows keep type, step and attempt but not their detail."""
    rows = [{**row, "detail": REDACTED} if row.get("detail") else row for row in view.get("events", [])]
    return {**view, "events": rows}


def diff(view: Any) -> Any:
    """A diff that says where two executions differ (paths, kinds) but not the values."""
    if isinstance(view, dict):
        return {
            key: [_change(c) for c in value] if key == "changes" and isinstance(value, list) else diff(value)
            for key, value in view.items()
        }
    if isinstance(view, list):
        return [diff(item) for item in view]
    return view


def _change(change: Any) -> Any:
    if not isinstance(change, dict):
        return change
    return {key: REDACTED if key in ("a", "b") else value for key, value in change.items()}
