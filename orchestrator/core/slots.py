"""Concurrency slots: the keys a start asks for and its priority, from the definition's limits.

Pure: the keys are evaluated over the execution context at the start and recorded on its
``ExecutionQueued`` event, so the admission (outside the core) never evaluates anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from schemas.definition import ConcurrencyLimit
from schemas.expressions import ExpressionError, evaluate

MAX_KEY_VALUE = 256  # characters of a key's value


def key_text(value: Any) -> str:
    """A key's value as text: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)


def slot_key(scope: str, tenant: str, workflow: str, expression: str, value: str) -> str:
    """The identity of a pool: who shares it depends on the scope (docs/resources.md)."""
    if scope == "global":
        parts = ["global", value]
    elif scope == "tenant":
        parts = ["tenant", tenant, value]
    else:  # one workflow's executions in one tenant; the expression tells two limits apart
        parts = ["workflow", tenant, workflow, expression, value]
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=False)


def slots_for(
    limits: Sequence[ConcurrencyLimit], context: dict[str, Any], tenant: str, workflow: str
) -> list[dict[str, Any]]:
    """One slot per limit: its pool's key, size and what happens when it is full."""
    slots = []
    for index, limit in enumerate(limits):
        value = key_text(evaluate(limit.key, context))
        if len(value) > MAX_KEY_VALUE:
            raise ExpressionError(
                f"concurrency[{index}].key {limit.key!r} gives {len(value)} characters (at most {MAX_KEY_VALUE})"
            )
        slots.append(
            {
                "key": slot_key(limit.scope, tenant, workflow, limit.key, value),
                "expression": limit.key,
                "value": value,
                "scope": limit.scope,
                "limit": limit.limit,
                "on_limit": limit.on_limit,
                "release_while_waiting": limit.release_while_waiting,
            }
        )
    return slots


def priority_of(expression: str | None, context: dict[str, Any]) -> float:
    """The definition's ``priority`` over the context: a number (none or null: 0)."""
    if expression is None:
        return 0
    value = evaluate(expression, context)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExpressionError(f"priority {expression!r} must give a number, got {key_text(value)[:100]}")
    return value
