"""What every peer returns, and the arithmetic shared with bench/embedded.py."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bench.embedded import STEPS, percentile

__all__ = ["STEPS", "PeerResult", "gaps_us", "summarise"]


@dataclass
class PeerResult:
    """One peer on the 10-step no-op workload, in the shape of ``EmbeddedResult``'s figures.

    ``step_overhead_*``: the gap between one step returning and the next one starting (timestamps
    taken inside the steps), one workflow at a time, like ``EmbeddedResult.step_overhead_*``.
    ``workflows_per_s``: ``concurrent_executions`` workflows started at once, divided by the time
    from the first start to the last completion observed by the caller.
    """

    system: str
    version: str
    durability: str
    configuration: str
    step_overhead_p50_us: float
    step_overhead_p99_us: float
    workflows_per_s: float
    steps_per_s: float
    concurrent_executions: int
    completed: int
    sequential_executions: int
    seconds: float
    notes: list[str] = field(default_factory=list)


def gaps_us(marks: Iterable[Sequence[float]]) -> list[float]:
    """Gaps between one step's end and the next one's start, from ``(index, start, end)`` marks
    in seconds of one clock."""
    ordered = sorted(marks, key=lambda mark: mark[0])
    return [(ordered[i + 1][1] - ordered[i][2]) * 1e6 for i in range(len(ordered) - 1)]


def summarise(gaps: list[float]) -> tuple[float, float]:
    if not gaps:
        return float("nan"), float("nan")
    return statistics.median(gaps), percentile(gaps, 0.99)
