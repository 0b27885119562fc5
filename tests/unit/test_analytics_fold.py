"""The analytics fold and queries on generated histories with known answers; the sketch's bound."""

from __future__ import annotations

import math
import random

import pytest

from orchestrator.analytics import queries
from orchestrator.analytics.cells import Cell, CellKey, day_of, from_row, is_daily, to_row
from orchestrator.analytics.cost import Prices, PricesInvalid, cost
from orchestrator.analytics.fold import Aggregates
from orchestrator.analytics.sketch import RELATIVE_ERROR, Histogram
from schemas.envelope import Envelope
from tests.analytics_histories import StepPlan, history

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@pytest.mark.parametrize("seed", range(5))
def test_histogram_percentiles_are_within_the_stated_bound(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(0, 2) for _ in range(5000)]
    parts = [Histogram(), Histogram()]
    for i, value in enumerate(values):
        parts[i % 2].add(value)
    merged = Histogram()
    for part in parts:
        merged.merge(Histogram.from_json(part.to_json()))  # stored and merged, as the queries do
    for q in (0.5, 0.95, 0.99):
        exact = nearest_rank(values, q)
        assert abs((merged.quantile(q) or 0) - exact) <= RELATIVE_ERROR * exact + 0.0005


def test_a_tighter_bound_than_the_bucket_width_would_fail() -> None:
    """The bound is not vacuous: some quantile is off by more than a tenth of it."""
    rng = random.Random(1)
    values = [rng.uniform(1, 100) for _ in range(2000)]
    h = Histogram()
    for value in values:
        h.add(value)
    errors = [abs((h.quantile(q) or 0) - nearest_rank(values, q)) / nearest_rank(values, q) for q in (0.1, 0.3, 0.5, 0.7, 0.9)]
    assert max(errors) > RELATIVE_ERROR / 10


def fold(events: list[tuple[int, Envelope]]) -> list[tuple[CellKey, Cell]]:
    aggregates = Aggregates()
    for position, envelope in events:
        aggregates.apply(position, envelope)
    return list(aggregates.cells.items())


def interleaved(histories: list[list[Envelope]]) -> list[tuple[int, Envelope]]:
    """The events in commit (time) order, numbered as a feed would."""
    ordered = sorted((e for h in histories for e in h), key=lambda e: (e.time, e.subject, e.sequence))
    return list(enumerate(ordered, start=1))


def known_workload() -> list[list[Envelope]]:
    """10 orders: charge runs 1..10 s after 0.5 s in the queue; ship fails with http.503 once in
    orders 0-2 (retried), and order 9 fails finally at ship with http.400."""
    histories = []
    for i in range(10):
        steps = [
            StepPlan("charge", queue=0.5, run=float(i + 1)),
            StepPlan("ship", queue=0.1, run=0.2, retried=("http.503",) if i < 3 else (), fails="http.400" if i == 9 else None),
        ]
        histories.append(history(f"order-{i}", "order", T0 + 60 * i, steps))
    return histories


def test_outcomes_durations_and_failures_of_a_known_workload() -> None:
    cells = fold(interleaved(known_workload()))
    overview = queries.overview(cells)
    assert (overview["started"], overview["succeeded"], overview["failed"]) == (10, 9, 1)
    assert overview["failure_rate"] == 0.1
    # end to end: 0.5 + (i+1) + 0.3 (+0.3 per retry of ship)
    ends = [0.5 + (i + 1) + 0.3 + (0.3 if i < 3 else 0) for i in range(10)]
    assert overview["duration"]["count"] == 10
    assert overview["duration"]["p50"] == pytest.approx(nearest_rank(ends, 0.5), rel=RELATIVE_ERROR)

    steps = {row["step"]: row for row in queries.steps(cells)}
    charge = steps["charge"]
    assert (charge["attempts"], charge["succeeded"], charge["retries"]) == (10, 10, 0)
    runs = [float(i + 1) for i in range(10)]
    for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        assert charge["run"][name] == pytest.approx(nearest_rank(runs, q), rel=RELATIVE_ERROR)
        assert charge["queue"][name] == pytest.approx(0.5, rel=RELATIVE_ERROR)
        assert charge["duration"][name] == pytest.approx(nearest_rank(runs, q) + 0.5, rel=RELATIVE_ERROR)
    ship = steps["ship"]
    assert (ship["attempts"], ship["succeeded"], ship["failed"], ship["retries"]) == (13, 9, 1, 3)
    assert ship["elapsed"]["max"] == pytest.approx(0.6)  # a retried ship: two attempts

    failures = queries.failures(cells)
    assert failures["executions_failed"] == 1
    assert failures["by_type"] == {"http.400": 1}
    assert failures["by_failed_step"] == {"ship": 1}
    assert failures["steps"] == [{"workflow": "order", "step": "ship", "type": "http.400", "count": 1}]
    attempts = {(r["step"], r["type"]): r["count"] for r in failures["attempts"]}
    assert attempts == {("ship", "http.503"): 3, ("ship", "http.400"): 1}

    hot = queries.retries(cells)
    assert [(r["step"], r["retries"], r["errors"]) for r in hot] == [("ship", 3, {"http.503": 3, "http.400": 1})]


def test_rates_over_time_bucket_by_the_hour_the_execution_ended() -> None:
    histories = [history(f"e{i}", "w", T0 + 1800 * i, [StepPlan("a", fails="boom" if i % 2 else None)]) for i in range(6)]
    periods = queries.rates(fold(interleaved(histories)), 3600)
    assert [(p["start"] - T0, p["started"], p["succeeded"], p["failed"]) for p in periods] == [
        (0, 2, 1, 1), (3600, 2, 1, 1), (7200, 2, 1, 1),
    ]  # fmt: skip
    daily = queries.rates(fold(interleaved(histories)), 86400)
    assert [(p["started"], p["failure_rate"]) for p in daily] == [(6, 0.5)]


def test_an_event_served_twice_is_counted_once() -> None:
    feed = interleaved(known_workload())
    once = fold(feed)
    again = fold([*feed[:40], *feed[30:], *feed[-5:]])  # a repeated stretch, as Cassandra may serve
    assert queries.steps(again) == queries.steps(once)
    assert queries.overview(again) == queries.overview(once)


def test_replaying_after_a_save_counts_nothing_twice() -> None:
    """Cells saved at a flush, then the feed replayed from an earlier checkpoint (a crash between
    the save and the checkpoint) give the same figures: ``through`` fences each cell."""
    feed = interleaved(known_workload())
    first = Aggregates()
    for position, envelope in feed[:50]:
        first.apply(position, envelope)
    cells, tracks = first.drain()
    stored = dict(from_row(to_row(key, cell)) for key, cell in cells)
    restarted = Aggregates()
    restarted.load(stored, {k: t for k, t in tracks})
    restarted.tracks = {}  # the tracks' save was lost: only the cells' fence guards
    for position, envelope in feed[20:]:  # the checkpoint was at 20
        restarted.apply(position, envelope)
    assert queries.overview(list(restarted.cells.items())) == queries.overview(fold(feed))
    assert queries.failures(list(restarted.cells.items())) == queries.failures(fold(feed))


def test_without_the_fence_a_replay_would_count_twice() -> None:
    feed = interleaved(known_workload())
    first = Aggregates()
    for position, envelope in feed[:50]:
        first.apply(position, envelope)
    cells, _ = first.drain()
    for _, cell in cells:
        cell.through = 0  # no fence
    restarted = Aggregates()
    restarted.load(dict(cells), {})
    for position, envelope in feed[20:]:
        restarted.apply(position, envelope)
    assert queries.overview(list(restarted.cells.items()))["started"] > 10


def test_cost_prices_wall_seconds_and_calls() -> None:


    cells = fold(interleaved(known_workload()))
    prices = Prices(wall_second=0.01, call=1.0, calls=Prices.parse_calls("python=0.001"))
    answer = cost(cells, prices)
    [order] = answer["workflows"]
    steps = {s["step"]: s for s in order["steps"]}
    assert steps["charge"]["wall_seconds"] == pytest.approx(sum(range(1, 11)))  # run time, not queue
    assert steps["ship"]["wall_seconds"] == pytest.approx(13 * 0.2)
    assert steps["charge"]["calls"] == {"python": 10} and steps["ship"]["calls"] == {"python": 13}
    expected = (55 + 2.6) * 0.01 + 23 * 0.001
    assert answer["cost"] == pytest.approx(expected) == order["cost"]
    assert order["cost_per_execution"] == pytest.approx(expected / 10)
    assert cost(cells, Prices(call=1.0))["cost"] == 23  # the default price of a call
    assert cost(cells, Prices(cpu_second=1.0))["cost"] == pytest.approx((55 + 2.6) / 2)  # CPU: half the run
    assert steps["charge"]["cpu_seconds"] == pytest.approx(27.5)
    for bad in ("python", "python=-1", "=1", "python=x", "python=inf"):
        with pytest.raises(PricesInvalid):
            Prices.parse_calls(bad)


def test_resources_used_per_step() -> None:
    charge = {row["step"]: row for row in queries.steps(fold(interleaved(known_workload())))}["charge"]
    used = charge["resources"]
    assert used["wall_seconds"] == pytest.approx(55) and used["cpu_seconds"] == pytest.approx(27.5)
    assert used["memory_mib"]["max"] == 64 and used["memory_mib"]["count"] == 10
    assert (used["bytes_in"], used["bytes_out"], used["cpu_measured_attempts"]) == (100, 200, 10)


def test_a_roll_up_older_than_its_hours_is_rolled_up_again_after_a_restart() -> None:
    """Cassandra saves cells one by one: an hour saved after its day's roll-up (a save that did
    not land whole) makes the roll-up stale, and the next start writes it again."""
    feed = [(n, e) for n, e in enumerate(history("a", "w", T0 + 60, [StepPlan("s", run=1.0)]), 1)]
    later = [(n + 10, e) for n, e in enumerate(history("b", "w", T0 + 86400 + 60, [StepPlan("s", run=1.0)]), 1)]
    first = Aggregates()
    for position, envelope in feed + later:
        first.apply(position, envelope)
    cells, _ = first.drain()
    rolled = {key: cell for key, cell in cells if is_daily(key.bucket)}
    assert {day_of(key.bucket) for key in rolled} == {int(T0)}  # the first day closed; the second is open
    stored = dict(cells)
    for key in rolled:  # the roll-up from an earlier save: behind its hours
        stale = Cell(through=1)
        stale.count("started")
        stored[key] = stale
    again = Aggregates()
    again.load(stored, {})
    assert set(again.cells) == {key for key in stored if not is_daily(key.bucket)}  # roll-ups are not folded into
    redone = {key: cell for key, cell in again.drain()[0] if is_daily(key.bucket)}
    assert set(redone) == set(rolled) and all(redone[k].counts == rolled[k].counts for k in rolled)
    fresh = Aggregates()
    fresh.load(dict(cells), {})
    assert fresh.drain()[0] == []  # up to date: nothing to write
