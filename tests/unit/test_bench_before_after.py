"""The before/after benchmark's pure parts: medians, rows, the import-root check, baseline errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import orchestrator
from bench.before_after import (
    BASELINE,
    FIGURES,
    HEADING,
    BaselineError,
    BeforeAfterResult,
    Commit,
    WrongRootError,
    before_after_rows,
    change,
    check_root,
    child_main,
    materialise,
    resolve_commit,
    run_before_after,
)

FIGURE = {f.key: f for f in FIGURES}


def result(samples: dict[str, dict[str, list[float]]]) -> BeforeAfterResult:
    return BeforeAfterResult(
        baseline=Commit("a" * 40, "aaaaaaa", "fix: something slow"),
        tree="HEAD bbbbbbb + uncommitted changes",
        quick=False,
        rounds=3,
        sizes={"embedded_concurrent": 2000, "embedded_sequential": 100, "memory_concurrent": 4000},
        seconds=12.0,
        samples=samples,
    )


def test_medians_per_side() -> None:
    r = result(
        {"before": {"embedded_p50_us": [300.0, 100.0, 200.0]}, "after": {"embedded_p50_us": [50.0, 70.0]}}
    )
    assert r.median("before", "embedded_p50_us") == 200.0
    assert r.median("after", "embedded_p50_us") == 60.0
    assert r.median("after", "memory_p50_us") is None
    assert r.before == {"embedded_p50_us": 200.0}


def test_change_knows_which_way_is_better() -> None:
    assert change(FIGURE["embedded_p50_us"], 200.0, 150.0) == "-25.0% (better)"
    assert change(FIGURE["embedded_transitions_per_s"], 1000.0, 900.0) == "-10.0% (worse)"
    assert change(FIGURE["embedded_transitions_per_s"], 1000.0, 1002.0) == "+0.2%"
    assert "drift" in change(FIGURE["sqlite_commit_us"], 100.0, 120.0)
    assert change(FIGURE["embedded_p50_us"], 0.0, 1.0) == "n/a"


def test_rows() -> None:
    r = result(
        {
            "before": {
                "embedded_p50_us": [500.0],
                "embedded_transitions_per_s": [8000.0],
                "webhook_park_per_s": [900.0],
            },
            "after": {"embedded_p50_us": [400.0], "embedded_transitions_per_s": [10000.0]},
        }
    )
    rows = before_after_rows(r)
    assert rows[0] == HEADING
    assert "`aaaaaaa` (fix: something slow)" in rows[2]
    assert rows[4] == "| figure | before (aaaaaaa) | after (this tree) | change |"
    body = rows[6:]
    assert body == [
        "| per-step overhead p50, embedded (SQLite synchronous=full), unloaded | 500 µs | 400 µs | -20.0% (better) |",
        "| transitions/s, embedded, 2000 concurrent | 8,000/s | 10,000/s | +25.0% (better) |",
    ]  # a figure measured on one side only is left out


def test_wrong_root_is_refused(tmp_path: Path) -> None:
    check_root("orchestrator", str(tmp_path / "orchestrator" / "__init__.py"), tmp_path)
    with pytest.raises(WrongRootError, match="not from under"):
        check_root("orchestrator", "/elsewhere/orchestrator/__init__.py", tmp_path)
    with pytest.raises(WrongRootError):
        check_root("orchestrator", None, tmp_path)
    with pytest.raises(WrongRootError, match="orchestrator was imported from"):
        child_main("embedded", tmp_path, {})  # this process imported orchestrator from the repo
    assert orchestrator.__file__ is not None


def test_a_ref_that_does_not_exist_says_how_to_fix_it() -> None:
    with pytest.raises(BaselineError, match="--baseline REF"):
        resolve_commit("no-such-ref-for-the-bench")
    with pytest.raises(BaselineError, match="no-such-ref-for-the-bench"):
        run_before_after(quick=True, baseline="no-such-ref-for-the-bench")


def test_the_baseline_is_extracted_without_touching_the_tree(tmp_path: Path) -> None:
    try:
        commit = resolve_commit(BASELINE)
    except BaselineError:
        pytest.skip("the baseline commit is not in this clone")
    assert commit.full == BASELINE
    root = materialise(commit, tmp_path)
    assert (root / "orchestrator" / "engine.py").is_file()
    assert (root / "schemas" / "__init__.py").is_file()
    assert (root / "bench" / "before_after.py").is_file()
    assert not (root / "bench" / "results").exists()
