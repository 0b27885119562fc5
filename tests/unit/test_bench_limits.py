"""The resource-limit benchmarks' tables: each figure beside the raw limit of the same run."""

from __future__ import annotations

from bench.limits_overhead import LimitsOverhead, limits_table
from bench.overload import OverloadResult, overload_table


def test_the_limits_table_gives_the_ratio_to_the_raw_limit() -> None:
    lines = limits_table([LimitsOverhead("sqlite", 100, 3, 2000.0, 1900.0)])
    assert any("2,000/s" in line and "1,900/s" in line and "0.95x" in line for line in lines)


def test_the_overload_table_reports_memory_answers_and_completion() -> None:
    result = OverloadResult(100.0, 1000.0, 5.0, accepted_before=50, sent=500, accepted=400, refused_429=100)
    result.rss_mib = [80.0, 95.0, 90.0]
    result.completed = 450
    text = "\n".join(overload_table(result))
    assert "80 / 95 / 90 MiB" in text and "100 x 429" in text and "450 of 450" in text
