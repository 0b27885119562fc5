"""The metrics overhead benchmark runs both sides and reports what it measured."""

from __future__ import annotations

from bench.metrics_overhead import compare, table


async def test_both_sides_run_and_the_table_shows_them() -> None:
    result = await compare("memory", rounds=1, sequential=2, concurrent=5)
    assert result.off.transitions_per_s > 0 and result.on.transitions_per_s > 0
    assert result.off.step_p50_us > 0 and result.on.step_p50_us > 0
    assert result.scrape_bytes > 1000  # the "on" runtime's registry, after a run
    lines = table([result])
    assert lines[2].startswith("| memory | transitions/s, 5 concurrent |") and "%" in lines[2]
