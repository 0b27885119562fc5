"""Degradation detection: a planted slowdown and a planted failure-rate rise are flagged, steady
steps are not, and the binned Mann-Whitney U equals the exact one when no bucket holds a tie."""

from __future__ import annotations

import math
import random

from orchestrator.analytics.cells import Cell, CellKey
from orchestrator.analytics.degradation import degradations, mann_whitney, two_proportions
from orchestrator.analytics.fold import Aggregates
from orchestrator.analytics.sketch import Histogram
from tests.analytics_histories import StepPlan, history

T0 = 1_767_225_600.0
DAY = 86400


def exact_u_z(a: list[float], b: list[float]) -> float:
    ranked = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = {i: i + 1 for i in range(len(ranked))}
    rank_sum = sum(ranks[i] for i, (_, side) in enumerate(ranked) if side == 0)
    u = rank_sum - len(a) * (len(a) + 1) / 2
    n1, n2 = len(a), len(b)
    return (u - n1 * n2 / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)


def test_the_binned_u_is_the_exact_u_without_ties() -> None:
    values = [0.01 * 1.2**i for i in range(60)]  # one value per bucket (1.2 > the bucket ratio)
    rng = random.Random(3)
    rng.shuffle(values)
    a, b = values[:25], values[25:]
    ha, hb = Histogram(), Histogram()
    for v in a:
        ha.add(v)
    for v in b:
        hb.add(v)
    z, p = mann_whitney(ha, hb)
    assert math.isclose(z, exact_u_z(a, b), rel_tol=1e-9)
    assert math.isclose(p, 0.5 * math.erfc(z / math.sqrt(2)))


def test_two_proportions() -> None:
    z, p = two_proportions(20, 100, 5, 100)
    assert math.isclose(z, (0.2 - 0.05) / math.sqrt(0.125 * 0.875 * 0.02))
    assert p < 0.001
    assert two_proportions(5, 100, 5, 100)[1] == 0.5


def planted() -> tuple[list[tuple[CellKey, Cell]], list[tuple[CellKey, Cell]]]:
    """Seven days of baseline then one recent day: charge runs 1.5x slower in the recent day,
    ship fails 20 % of the time instead of 2 %, pack is unchanged."""
    rng = random.Random(11)
    aggregates = Aggregates()
    position = 0
    n = 800
    for i in range(n):
        start = T0 + 8 * DAY * i / n
        recent = start >= T0 + 7 * DAY
        slow = 1.5 if recent else 1.0
        fails = rng.random() < (0.2 if recent else 0.02)
        steps = [
            StepPlan("charge", run=slow * rng.lognormvariate(0, 0.3)),
            StepPlan("pack", run=rng.lognormvariate(-1, 0.3)),
            StepPlan("ship", run=0.2, fails="carrier.down" if fails else None),
        ]
        for envelope in history(f"o{i}", "order", start, steps):
            position += 1
            aggregates.apply(position, envelope)
    cells = list(aggregates.cells.items())
    cut = T0 + 7 * DAY
    return [kc for kc in cells if kc[0].bucket >= cut], [kc for kc in cells if kc[0].bucket < cut]


def test_a_planted_slowdown_and_failure_rise_are_flagged_and_steady_steps_are_not() -> None:
    recent, baseline = planted()
    found = degradations(recent, baseline)
    flagged = {(r["step"], r["kind"]) for r in found if r["flagged"]}
    assert ("charge", "duration") in flagged
    assert ("ship", "failure_rate") in flagged
    assert (None, "failure_rate") in flagged  # the executions fail more too
    assert ("pack", "duration") not in flagged and ("pack", "failure_rate") not in flagged
    assert ("charge", "failure_rate") not in flagged
    charge = next(r for r in found if (r["step"], r["kind"]) == ("charge", "duration"))
    assert charge["recent"]["p50"] > 1.3 * charge["baseline"]["p50"] and charge["p_value"] < 1e-6
    assert found[0]["flagged"]  # flagged first


def test_without_a_change_nothing_is_flagged() -> None:
    recent, baseline = planted()
    half = T0 + 3.5 * DAY
    later, earlier = [kc for kc in baseline if kc[0].bucket >= half], [kc for kc in baseline if kc[0].bucket < half]
    tested = degradations(later, earlier)
    assert len(tested) >= 6 and not any(r["flagged"] for r in tested)
    assert degradations(recent[:0], baseline) == []  # nothing recent: no test
