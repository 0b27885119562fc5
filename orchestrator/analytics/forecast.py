"""Forecasting starts per hour (additive Holt-Winters) and a capacity recommendation (Little's law).

**Forecast.** Starts per hour of a tenant (or one workflow) form a series with a daily season.
Additive Holt-Winters (level, trend, a season of ``SEASON`` hours) is fitted by a grid search of
alpha, beta and gamma minimising the one-step-ahead squared error, on all hours but the last
``holdout``; those are then forecast and the error reported (MAE, RMSE) beside the seasonal-naive
forecast (the same hour a day before), so the method's worth is visible. The model is refitted on
every hour to forecast the next ``horizon``. With fewer than two seasons of history the forecast
is the mean rate (stated as the method).

**Capacity.** Little's law, L = lambda x W: the task slots busy on average are the start rate
times the worker seconds one execution uses (its attempts' wall seconds). For the forecast peak
rate at a target utilisation rho (queueing delay grows without bound as rho -> 1), slots =
lambda_peak x W / rho, and workers = slots / the slots one worker runs at once. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SEASON = 24
GRID = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7)
TREND_GRID = (0.0, 0.01, 0.05, 0.1, 0.2)


@dataclass(frozen=True, slots=True)
class Fit:
    alpha: float
    beta: float
    gamma: float
    sse: float
    level: float
    trend: float
    season: tuple[float, ...]

    def forecast(self, steps: int) -> list[float]:
        """The next ``steps`` values (never below zero)."""
        m = len(self.season)
        return [max(0.0, self.level + (h + 1) * self.trend + self.season[h % m]) for h in range(steps)]


def _run(series: Sequence[float], alpha: float, beta: float, gamma: float, m: int) -> Fit:
    level = sum(series[:m]) / m
    trend = (sum(series[m : 2 * m]) - sum(series[:m])) / (m * m)
    season = [series[i] - level for i in range(m)]
    sse = 0.0
    for t in range(m, len(series)):
        s = season[t % m]
        predicted = level + trend + s
        sse += (series[t] - predicted) ** 2
        previous = level
        level = alpha * (series[t] - s) + (1 - alpha) * (level + trend)
        trend = beta * (level - previous) + (1 - beta) * trend
        season[t % m] = gamma * (series[t] - level) + (1 - gamma) * s
    n = len(series)
    rotated = tuple(season[(n + i) % m] for i in range(m))  # rotated[0]: the season of hour n
    return Fit(alpha, beta, gamma, sse, level, trend, rotated)


def fit(series: Sequence[float], m: int = SEASON) -> Fit:
    """The best additive Holt-Winters fit on the grid; needs at least two seasons."""
    best: Fit | None = None
    for alpha in GRID:
        for beta in TREND_GRID:
            for gamma in GRID:
                candidate = _run(series, alpha, beta, gamma, m)
                if best is None or candidate.sse < best.sse:
                    best = candidate
    assert best is not None
    return best


def _errors(actual: Sequence[float], predicted: Sequence[float]) -> dict[str, float]:
    n = len(actual)
    diffs = [a - p for a, p in zip(actual, predicted, strict=True)]
    return {"mae": round(sum(abs(d) for d in diffs) / n, 4), "rmse": round(math.sqrt(sum(d * d for d in diffs) / n), 4)}


def starts_forecast(series: Sequence[float], horizon: int = 24, holdout: int = 24) -> dict[str, Any]:
    """Forecast of starts per hour for the next ``horizon`` hours and its held-out error."""
    if len(series) < 2 * SEASON + holdout:
        mean = sum(series) / len(series) if series else 0.0
        return {"method": "mean (fewer than two days of history before the held-out day)",
                "history_hours": len(series), "forecast": [round(mean, 4)] * horizon, "holdout": None}  # fmt: skip
    train, test = series[:-holdout], series[-holdout:]
    model = fit(train)
    predicted = model.forecast(holdout)
    naive = [train[len(train) - SEASON + (h % SEASON)] for h in range(holdout)]
    final = fit(series)
    return {
        "method": "additive Holt-Winters, season 24 h, parameters by grid search on one-step errors",
        "history_hours": len(series),
        "parameters": {"alpha": final.alpha, "beta": final.beta, "gamma": final.gamma},
        "forecast": [round(v, 4) for v in final.forecast(horizon)],
        "holdout": {"hours": holdout, "holt_winters": _errors(test, predicted), "seasonal_naive": _errors(test, naive)},
    }


def capacity(
    peak_starts_per_hour: float, worker_seconds_per_execution: float, *, utilisation: float, slots_per_worker: int
) -> dict[str, Any]:
    """Task slots and workers for the peak rate at the target utilisation (Little's law)."""
    rate = peak_starts_per_hour / 3600
    busy = rate * worker_seconds_per_execution  # L = lambda x W
    slots = busy / utilisation
    return {
        "method": "Little's law: slots = peak starts/s x worker seconds per execution / utilisation",
        "peak_starts_per_hour": round(peak_starts_per_hour, 4),
        "worker_seconds_per_execution": round(worker_seconds_per_execution, 6),
        "busy_slots": round(busy, 4),
        "utilisation": utilisation,
        "slots": math.ceil(slots) if slots > 0 else 0,
        "slots_per_worker": slots_per_worker,
        "workers": max(1, math.ceil(slots / slots_per_worker)) if slots > 0 else 0,
    }
