"""The open-loop rows name their mode and put the right raw limit beside the sustained rate."""

from __future__ import annotations

from bench.open_loop import OpenLoopResult, Step, open_loop_rows


def result(mode: str) -> OpenLoopResult:
    best = Step(100.0, 1000, 1000, 98.0, 2156.0, 20.0, 50.0, 80.0, True)
    return OpenLoopResult("n/a", 10.0, 5.0, 10.0, 120.0, 22, [best], best, {"25%": best}, mode)


def test_embedded_rows_compare_with_one_row_commits() -> None:
    rows = open_loop_rows(result("embedded"), commit_us=200.0)
    assert rows[0].startswith("| open loop, max sustained offered start rate")
    assert "one-row SQLite commits 5,000/s" in rows[0] and "0.43x of one-row SQLite commits" in rows[0]


def test_distributed_rows_name_the_mode_and_their_raw_limit() -> None:
    rows = open_loop_rows(result("Kafka + Cassandra"), raw_limit=("pipelined Cassandra inserts", 10_780.0))
    assert all(row.startswith("| open loop (Kafka + Cassandra)") for row in rows)
    assert "0.20x of pipelined Cassandra inserts" in rows[0]
    assert rows[-1].startswith("| open loop (Kafka + Cassandra) at 25% of max")


def test_no_sustained_step_is_said_plainly() -> None:
    empty = OpenLoopResult("full", 1.0, 5.0, 10.0, 120.0, 22, mode="embedded")
    assert open_loop_rows(empty) == [
        "| open loop: no step was sustained (p99 ≤ 10x unloaded (100 ms), completing ≥ 90% of the offered rate) | | | | |"
    ]
