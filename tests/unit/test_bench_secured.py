"""bench/secured.py: the table it prints (both sides, the ratio, the raw limit beside them), and
one tiny secured round through the API (a key, the keyring) that completes."""

from __future__ import annotations

from pathlib import Path

from bench.secured import SecuredResult, as_dict, secured_rows, transitions_per_s


def test_the_rows_show_both_sides_the_ratio_and_the_raw_limit() -> None:
    result = SecuredResult(3, 1000, 1000.0, 900.0, 2000.0, 400.0, 380.0, 2500.0)
    rows = secured_rows(result)
    assert "| 1,000 | 900 | 0.90x | 1 commit per transition: 500/s | ≥ 0.85x |" in rows[4]
    assert "400/s | 380/s | 0.95x | bare aiohttp POST → 202: 2,500/s" in rows[5]
    assert as_dict(result)["webhook_ratio"] == 0.95
    assert SecuredResult(1, 1, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0).transitions_ratio == 0.0


async def test_a_secured_round_runs_through_the_api(tmp_path: Path) -> None:
    assert await transitions_per_s(tmp_path, True, 3) > 0
