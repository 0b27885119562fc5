"""Concurrency slots read back from recorded histories (the limit tests' assertions)."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.core import events as ev
from schemas.envelope import Envelope


def most_held(histories: Sequence[Sequence[Envelope]]) -> int:
    """The most executions holding a slot at once: +1 at each ``ExecutionAdmitted``, -1 at each
    end, in recorded time (an end before a grant at one instant)."""
    moments = []
    for history in histories:
        for envelope in history:
            if envelope.type == ev.EXECUTION_ADMITTED:
                moments.append((envelope.time, 1))
            elif envelope.type in ev.TERMINAL_TYPES:
                moments.append((envelope.time, -1))
    held = most = 0
    for _, change in sorted(moments):
        held += change
        most = max(most, held)
    return most


def admissions(history: Sequence[Envelope]) -> int:
    return sum(envelope.type == ev.EXECUTION_ADMITTED for envelope in history)
