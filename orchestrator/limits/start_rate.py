"""Start rate limits declared in definitions (``rate_limit: {key, limit, period}``): the slot of each start.

GCRA per (tenant, workflow, key value): a burst of up to ``limit`` starts, then one every
``period / limit`` seconds. A start past that is not refused: its slot, a time in the future, goes
into its ``StartExecution`` (``not_before``), so the start is recorded at once and its first step
waits on a recorded timer until the slot. The state is per process and in memory: with several
API processes each throttles the starts it accepts, and a restarted process starts with a full
burst again (the starts it had delayed are recorded and keep their slots).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from schemas.definition import WorkflowDefinition
from schemas.expressions import ExpressionError, evaluate
from schemas.schedule_times import parse_duration

PRUNE_EVERY = 1024  # new keys between two sweeps of the keys whose bucket is empty again

Key = tuple[str, str, str]  # tenant, workflow, the key expression's value as JSON


def key_value(expression: str, value: Any) -> str:
    """The group of a start: the key expression over ``{"input": ...}`` as compact JSON."""
    try:
        result = evaluate(expression, {"input": value})
    except ExpressionError:
        result = None  # an input the key cannot be read from: the starts without a key share one group
    return json.dumps(result, separators=(",", ":"), sort_keys=True, default=str)


@dataclass
class StartRates:
    """The theoretical arrival time of each key's next start (GCRA)."""

    _tat: dict[Key, float] = field(default_factory=dict)
    _added: int = 0

    def slot(self, definition: WorkflowDefinition, value: Any, tenant: str, now: float) -> float | None:
        """When this start's first step may run; None: at once (within the rate, or no rate limit)."""
        limit = definition.rate_limit
        if limit is None:
            return None
        interval = parse_duration(limit.period, "period") / limit.limit
        tolerance = interval * (limit.limit - 1)  # the burst
        key = (tenant, definition.name, key_value(limit.key, value))
        if key not in self._tat:
            self._added += 1
            if self._added >= PRUNE_EVERY:
                self._prune(now)
        tat = max(self._tat.get(key, now), now)
        self._tat[key] = tat + interval
        slot = tat - tolerance
        return slot if slot > now else None

    def _prune(self, now: float) -> None:
        self._tat = {key: tat for key, tat in self._tat.items() if tat > now}
        self._added = 0

    def __len__(self) -> int:
        return len(self._tat)
