"""The windowed trigger's decisions, kept pure: which windows an event lands in, when a key fires,
with which dedup key and input. No faust, no asyncio, no clock: ``triggers.window_source`` feeds
it the state it read from its faust tables and writes back what it returns.

Windows are hopping windows of ``size = window_seconds`` that start every ``step`` seconds
(:func:`hop_step`: about a tenth of the window, whole seconds). An event at time ``t`` lies in every
window ``[start, start + size)`` with ``t - size < start <= t`` on that grid, so N events that
span less than ``size - step`` always share a window; events spanning up to ``size`` may; events
further apart than ``size`` never do.

A window's state is the list of distinct message identities counted in it, capped at the
threshold, so a replayed message is never counted twice. A key's state is ``quiet_until``: after
a window fires, windows of that key starting before its end never fire, so one burst (and the
failures that go on while the workflow runs) starts one execution per ``window_seconds``. Of the
overlapping windows that reach the threshold together, the one starting last fires (its start is
the grid point at or before the first counted message). The
decision looks only at the state, not at whether the event was new, so replaying an event after a
crash repeats the same decision (and the same dedup key) instead of losing or doubling it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.timefmt import rfc3339
from schemas.expressions import evaluate

__all__ = [
    "Decision",
    "Range",
    "decide",
    "dedup_key",
    "group_key",
    "hop_step",
    "window_input",
]

Range = tuple[float, float]  # faust's window range: (start, start + size - 0.1)
MAX_KEY_LENGTH = 512  # as in triggers.inbound: longer dedup keys are hashed


def hop_step(window_seconds: float) -> int:
    """The hop between window starts: a tenth of the window, in whole seconds (faust's hopping
    windows step by whole seconds), so each event updates at most ~10 windows."""
    if window_seconds < 1:
        raise ValueError(f"window_seconds must be at least 1 for a kafka_window trigger, not {window_seconds:g}")
    return max(1, math.floor(window_seconds / 10))


def group_key(value: Any) -> str | None:
    """The group a message counts in: the key expression's value as text (JSON for non-strings),
    None when it is missing or empty."""
    if value is None or value == "" or value == [] or value == {}:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do for one event: start for ``fire`` (or nothing), then write the state back."""

    updates: dict[Range, list[str]] = field(default_factory=dict)  # windows whose identities changed
    fire: Range | None = None
    count: int = 0  # messages counted in the window that fires
    quiet_until: float | None = None  # the key's new quiet_until, when it changes
    forget: bool = False  # the stored quiet_until no longer matters: drop it


def decide(
    windows: Mapping[Range, Sequence[str]],
    identity: str,
    threshold: int,
    window_seconds: float,
    quiet_until: float | None,
) -> Decision:
    """Count ``identity`` in ``windows`` (every window of the event, with its current identities)
    and decide whether the key fires: of the windows that hold ``threshold`` messages and start at
    or after ``quiet_until``, the latest (the one starting closest to the burst, so the quiet
    period that follows covers the burst)."""
    updates: dict[Range, list[str]] = {}
    eligible: list[tuple[Range, int]] = []
    for window, ids in sorted(windows.items()):
        if quiet_until is not None and window[0] < quiet_until:
            continue  # can never fire again: not worth a changelog write
        current = list(ids)
        if identity not in current and len(current) < threshold:
            current.append(identity)
            updates[window] = current
        if len(current) >= threshold:
            eligible.append((window, len(current)))
    if eligible:
        fired, count = eligible[-1]
        return Decision(updates, fired, count, quiet_until=fired[0] + window_seconds)
    earliest = min((window[0] for window in windows), default=None)
    stale = quiet_until is not None and earliest is not None and quiet_until + window_seconds <= earliest
    return Decision(updates, forget=stale)


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def dedup_key(trigger_name: str, key: str, window_start: float) -> str:
    """``kafka_window:<trigger>:<window start, epoch seconds>:<key>``: one execution per window
    (the runtime derives the execution id from it, with the workflow and tenant)."""
    value = f"kafka_window:{trigger_name}:{_seconds(window_start)}:{key}"
    if len(value) > MAX_KEY_LENGTH:
        digest = hashlib.sha256(key.encode()).hexdigest()
        value = f"kafka_window:{trigger_name}:{_seconds(window_start)}:sha256:{digest}"
    return value


def window_event(
    key: str, count: int, window_start: float, window_seconds: float, message: Mapping[str, Any]
) -> dict[str, Any]:
    """What the ``input`` expression sees (and the input itself when there is none)."""
    return {
        "key": key,
        "count": count,
        "window_start": rfc3339(window_start, "milliseconds"),
        "window_end": rfc3339(window_start + window_seconds, "milliseconds"),
        "message": dict(message),
    }


def window_input(expression: str | None, event: Mapping[str, Any]) -> Any:
    """The execution's input: ``expression`` over the window event, else the whole of it.
    Raises ``ExpressionError``."""
    return evaluate(expression, dict(event)) if expression else dict(event)
