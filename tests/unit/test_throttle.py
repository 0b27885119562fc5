"""Per-connector rate limits: GCRA spreads calls at the rate, allows bursts, delays (never drops)."""

from __future__ import annotations

import pytest

from orchestrator.engine.throttle import Cell, RateLimit, Throttles, parse_rate_limits


def test_calls_are_spread_at_the_rate() -> None:
    cell = Cell(RateLimit(10))
    delays = [cell.reserve(0.0) for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_a_burst_goes_at_once_then_the_rate_applies() -> None:
    cell = Cell(RateLimit(10, burst=3))
    assert [round(cell.reserve(0.0), 3) for _ in range(5)] == [0.0, 0.0, 0.0, 0.1, 0.2]


def test_an_idle_key_does_not_save_up_more_than_its_burst() -> None:
    cell = Cell(RateLimit(10, burst=2))
    cell.reserve(0.0)
    later = [round(cell.reserve(100.0), 3) for _ in range(4)]
    assert later == [0.0, 0.0, 0.1, 0.2]


async def test_throttles_sleep_for_the_longest_key_and_ignore_unlimited_ones() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    throttles = Throttles({"http": RateLimit(2), "api": RateLimit(1)}, clock=lambda: 0.0, sleep=sleep)
    assert await throttles.wait(["http", "api"]) == 0.0
    assert await throttles.wait(["http", "api"]) == pytest.approx(1.0)  # api's slot is the later
    assert await throttles.wait(["python"]) == 0.0  # no limit
    assert slept == [pytest.approx(1.0)] and throttles.waited == pytest.approx(1.0)
    assert not Throttles({}, clock=lambda: 0.0)


def test_parsing_the_setting() -> None:
    assert parse_rate_limits("http=50, payments-api=20/5") == {
        "http": RateLimit(50), "payments-api": RateLimit(20, 5)
    }
    assert parse_rate_limits(None) == {} and parse_rate_limits("") == {}
    for bad in ("http", "http=0", "http=-1", "=5", "http=x", "http=5/0", "http=inf"):
        with pytest.raises(ValueError):
            parse_rate_limits(bad)
