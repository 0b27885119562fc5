"""Degradation: a recent window against the baseline before it, per step, with stated tests.

- **Duration** (each step's ``duration``, and the executions' end-to-end one): a one-sided
  Mann-Whitney U test that recent durations are larger, computed from the two histograms (values
  in one bucket count as ties, which only makes the test more cautious), with the normal
  approximation and the tie correction. Flagged when p < ``alpha``, both sides hold at least
  ``min_samples`` and the recent median is at least ``min_ratio`` times the baseline's.
- **Failure rate** (each step's final failures over its outcomes, and the executions' failures
  over those that ended): a one-sided two-proportion z-test (pooled) that the recent rate is
  higher, flagged when p < ``alpha`` and both sides hold at least ``min_samples`` outcomes.

Pure: cells in, findings out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from orchestrator.analytics.queries import DURATION, Cells, by
from orchestrator.analytics.sketch import Histogram


@dataclass(frozen=True, slots=True)
class Thresholds:
    alpha: float = 0.01
    min_samples: int = 10
    min_ratio: float = 1.1


def upper_p(z: float) -> float:
    """P(Z >= z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def mann_whitney(recent: Histogram, baseline: Histogram) -> tuple[float, float]:
    """(z, one-sided p) that ``recent`` tends to be larger, from the binned samples."""
    n1, n2 = recent.n, baseline.n
    n = n1 + n2
    below = 0  # baseline samples in lower buckets
    u = 0.0
    ties = 0.0
    for bucket in sorted(set(recent.counts) | set(baseline.counts)):
        a, b = recent.counts.get(bucket, 0), baseline.counts.get(bucket, 0)
        u += a * (below + 0.5 * b)
        below += b
        t = a + b
        ties += t**3 - t
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 0.0, 1.0
    z = (u - n1 * n2 / 2) / math.sqrt(variance)
    return z, upper_p(z)


def two_proportions(failed1: int, n1: int, failed2: int, n2: int) -> tuple[float, float]:
    """(z, one-sided p) that the first rate is higher than the second (pooled z-test)."""
    pooled = (failed1 + failed2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 0.0, 1.0
    z = (failed1 / n1 - failed2 / n2) / spread
    return z, upper_p(z)


def _duration(workflow: str, step: str, recent: Histogram, baseline: Histogram, t: Thresholds) -> dict[str, Any] | None:
    if recent.n < t.min_samples or baseline.n < t.min_samples:
        return None
    z, p = mann_whitney(recent, baseline)
    now, before = recent.quantile(0.5) or 0.0, baseline.quantile(0.5) or 0.0
    flagged = p < t.alpha and now >= t.min_ratio * before
    return {"workflow": workflow, "step": step or None, "kind": "duration", "test": "mann-whitney-u",
            "recent": {"n": recent.n, "p50": round(now, 6)}, "baseline": {"n": baseline.n, "p50": round(before, 6)},
            "z": round(z, 3), "p_value": p, "flagged": flagged}  # fmt: skip


def _failures(workflow: str, step: str, recent: tuple[int, int], baseline: tuple[int, int], t: Thresholds) -> dict[str, Any] | None:
    (f1, n1), (f2, n2) = recent, baseline
    if n1 < t.min_samples or n2 < t.min_samples:
        return None
    z, p = two_proportions(f1, n1, f2, n2)
    return {"workflow": workflow, "step": step or None, "kind": "failure_rate", "test": "two-proportion-z",
            "recent": {"n": n1, "rate": round(f1 / n1, 6)}, "baseline": {"n": n2, "rate": round(f2 / n2, 6)},
            "z": round(z, 3), "p_value": p, "flagged": p < t.alpha and f1 / n1 > f2 / n2}  # fmt: skip


def _outcomes(counts: dict[str, int], step: str) -> tuple[int, int]:
    if step:
        return counts.get("failed", 0), counts.get("succeeded", 0) + counts.get("failed", 0)
    ended = sum(counts.get(s, 0) for s in ("succeeded", "failed", "cancelled"))
    return counts.get("failed", 0), ended


def degradations(recent: Cells, baseline: Cells, thresholds: Thresholds = Thresholds()) -> list[dict[str, Any]]:
    """Every test that had enough samples, flagged ones first (then by p-value)."""
    now = by(recent, "workflow", "step", histograms=DURATION)
    before = by(baseline, "workflow", "step", histograms=DURATION)
    found = []
    for key in sorted(set(now) & set(before)):
        workflow, step = key
        a, b = now[key], before[key]
        for result in (
            _duration(workflow, step, a.histogram("duration"), b.histogram("duration"), thresholds),
            _failures(workflow, step, _outcomes(a.counts, step), _outcomes(b.counts, step), thresholds),
        ):
            if result is not None:
                found.append(result)
    found.sort(key=lambda r: (not r["flagged"], r["p_value"], r["workflow"], r["step"] or "", r["kind"]))
    return found
