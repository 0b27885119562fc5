"""Holt-Winters on a series with a daily season and a trend beats the seasonal-naive forecast on
held-out hours; Little's law sizes the slots."""

from __future__ import annotations

import math
import random

from orchestrator.analytics.forecast import capacity, fit, starts_forecast


def seasonal(hours: int, seed: int = 5) -> list[float]:
    rng = random.Random(seed)
    return [max(0.0, 50 + 30 * math.sin(2 * math.pi * h / 24) + 0.5 * h + rng.gauss(0, 5)) for h in range(hours)]


def test_the_forecast_beats_the_seasonal_naive_one_on_held_out_hours() -> None:
    answer = starts_forecast(seasonal(24 * 10), horizon=12)
    holdout = answer["holdout"]
    assert holdout["hours"] == 24
    assert holdout["holt_winters"]["mae"] < 0.8 * holdout["seasonal_naive"]["mae"]
    assert len(answer["forecast"]) == 12 and answer["method"].startswith("additive Holt-Winters")
    expected = [50 + 30 * math.sin(2 * math.pi * h / 24) + 0.5 * h for h in range(240, 252)]
    assert max(abs(a - b) for a, b in zip(answer["forecast"], expected, strict=True)) < 20


def test_a_noiseless_season_is_learnt_exactly() -> None:
    series = [10.0 + (h % 24) for h in range(24 * 5)]
    model = fit(series)
    assert all(abs(a - b) < 1e-6 for a, b in zip(model.forecast(24), [10.0 + h for h in range(24)], strict=True))


def test_short_histories_fall_back_to_the_mean() -> None:
    answer = starts_forecast([2.0, 4.0], horizon=3)
    assert answer["forecast"] == [3.0, 3.0, 3.0] and answer["holdout"] is None


def test_capacity_by_littles_law() -> None:
    plan = capacity(3600, 2.0, utilisation=0.5, slots_per_worker=3)  # 1 start/s x 2 s = 2 busy
    assert (plan["busy_slots"], plan["slots"], plan["workers"]) == (2.0, 4, 2)
    assert capacity(0, 2.0, utilisation=0.5, slots_per_worker=3)["workers"] == 0
