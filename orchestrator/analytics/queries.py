"""The figures, computed from aggregate cells alone (pure; the store hands the cells in).

Every function takes the cells of one tenant and time range, ``(CellKey, Cell)`` pairs, and
returns JSON-ready dicts. Rates are fractions (0..1) of the executions or attempts that ended;
durations are seconds, percentiles within the histogram's error bound (``sketch.RELATIVE_ERROR``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from orchestrator.analytics.cells import EXECUTION, Cell, CellKey

Cells = Iterable[tuple[CellKey, Cell]]
ENDED = ("succeeded", "failed", "cancelled")


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _prefixed(cell: Cell, prefix: str) -> dict[str, int]:
    return {name[len(prefix) :]: n for name, n in cell.counts.items() if name.startswith(prefix)}


def _outcomes(cell: Cell) -> dict[str, Any]:
    ended = sum(cell.counts.get(status, 0) for status in ENDED)
    return {
        "started": cell.counts.get("started", 0),
        **{status: cell.counts.get(status, 0) for status in ENDED},
        "success_rate": _ratio(cell.counts.get("succeeded", 0), ended),
        "failure_rate": _ratio(cell.counts.get("failed", 0), ended),
    }


NONE: frozenset[str] = frozenset()
DURATION = frozenset({"duration"})


def by(cells: Cells, *fields: str, histograms: frozenset[str] | None = None) -> dict[tuple[Any, ...], Cell]:
    """Cells merged by the key fields named (e.g. ``"workflow", "step"``); only the histograms
    named when ``histograms`` is given (merging histograms is most of a query's work)."""
    groups: dict[tuple[Any, ...], Cell] = defaultdict(Cell)
    for key, cell in cells:
        groups[tuple(getattr(key, name) for name in fields)].merge(cell, histograms)
    return groups


def executions_only(cells: Cells) -> list[tuple[CellKey, Cell]]:
    return [(key, cell) for key, cell in cells if key.step == EXECUTION]


def steps_only(cells: Cells) -> list[tuple[CellKey, Cell]]:
    return [(key, cell) for key, cell in cells if key.step != EXECUTION]


def overview(cells: Cells) -> dict[str, Any]:
    """Executions started and ended, success and failure rates and end-to-end durations, per
    workflow and version and in total."""
    rows = executions_only(cells)
    total = by(rows).get((), Cell())
    per = by(rows, "workflow", "version")
    return {
        **_outcomes(total),
        "duration": total.histogram("duration").summary(),
        "workflows": [
            {"workflow": w, "version": v, **_outcomes(c), "duration": c.histogram("duration").summary()}
            for (w, v), c in sorted(per.items())
        ],
    }


def rates(cells: Cells, every: int) -> list[dict[str, Any]]:
    """Outcomes per period of ``every`` seconds (a multiple of the hour), oldest first."""
    periods: dict[int, Cell] = defaultdict(Cell)
    for key, cell in executions_only(cells):
        periods[key.bucket - key.bucket % every].merge(cell)
    return [{"start": start, **_outcomes(cell)} for start, cell in sorted(periods.items())]


def failures(cells: Cells) -> dict[str, Any]:
    """Final failures by error type and step, failed attempts (retried or not) by step and type,
    and failed executions by error type and the step they failed at."""
    pairs = list(cells)
    executions = by(executions_only(pairs), histograms=NONE).get((), Cell())
    final: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    for (workflow, step), cell in by(steps_only(pairs), "workflow", "step", histograms=NONE).items():
        final += [{"workflow": workflow, "step": step, "type": t, "count": n} for t, n in _prefixed(cell, "failed:").items()]
        attempts += [{"workflow": workflow, "step": step, "type": t, "count": n} for t, n in _prefixed(cell, "error:").items()]
    def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(rows, key=lambda r: (-r["count"], r["workflow"], r["step"], r["type"]))

    return {
        "executions_failed": executions.counts.get("failed", 0),
        "by_type": dict(sorted(_prefixed(executions, "failed:").items(), key=lambda kv: (-kv[1], kv[0]))),
        "by_failed_step": dict(sorted(_prefixed(executions, "failed_at:").items(), key=lambda kv: (-kv[1], kv[0]))),
        "steps": ranked(final),
        "attempts": ranked(attempts),
    }


def _step_row(workflow: str, step: str, cell: Cell) -> dict[str, Any]:
    attempts, retries = cell.counts.get("attempts", 0), cell.counts.get("retries", 0)
    succeeded, failed = cell.counts.get("succeeded", 0), cell.counts.get("failed", 0)
    return {
        "workflow": workflow,
        "step": step,
        "attempts": attempts,
        "succeeded": succeeded,
        "failed": failed,
        "retries": retries,
        "retry_rate": _ratio(retries, attempts),
        "failure_rate": _ratio(failed, succeeded + failed),
        "duration": cell.histogram("duration").summary(),
        "elapsed": cell.histogram("elapsed").summary(),
        "queue": cell.histogram("queue").summary(),
        "run": cell.histogram("run").summary(),
        "resources": resources(cell),
    }


def resources(cell: Cell) -> dict[str, Any]:
    """What the step's attempts used: wall and CPU seconds (None when none was measured), peak
    memory in MiB, bytes in and out."""
    measured = cell.counts.get("cpu_measured", 0)
    return {
        "wall_seconds": round(cell.sums.get("wall_s", 0.0), 6),
        "cpu_seconds": round(cell.sums.get("cpu_s", 0.0), 6) if measured else None,
        "cpu_measured_attempts": measured,
        "memory_mib": cell.histogram("memory_mib").summary(),
        "bytes_in": int(cell.sums.get("bytes_in", 0)),
        "bytes_out": int(cell.sums.get("bytes_out", 0)),
    }


def steps(cells: Cells) -> list[dict[str, Any]]:
    """Per workflow and step: attempts, outcomes, retries, and the duration (scheduled -> answer),
    elapsed (first attempt -> answer), queue wait and run time distributions, resources used."""
    groups = by(steps_only(cells), "workflow", "step")
    return [_step_row(w, s, c) for (w, s), c in sorted(groups.items())]


def retries(cells: Cells, top: int = 20) -> list[dict[str, Any]]:
    """Retry hot spots: the steps retried most, with their retry rate and the errors retried."""
    rows = []
    for (workflow, step), cell in by(steps_only(cells), "workflow", "step", histograms=NONE).items():
        n = cell.counts.get("retries", 0)
        if n:
            errors = dict(sorted(_prefixed(cell, "error:").items(), key=lambda kv: (-kv[1], kv[0])))
            rows.append(
                {
                    "workflow": workflow,
                    "step": step,
                    "retries": n,
                    "attempts": cell.counts.get("attempts", 0),
                    "retry_rate": _ratio(n, cell.counts.get("attempts", 0)),
                    "errors": errors,
                }
            )
    rows.sort(key=lambda r: (-r["retries"], r["workflow"], r["step"]))
    return rows[:top]


def bottlenecks(cells: Cells, top: int = 20) -> dict[str, Any]:
    """Per workflow, the steps that bound the end-to-end time: how often each step was on the
    critical path of an ended execution and its share of those executions' time, ranked by
    seconds on the path (the time a faster step would save), with its p95 duration."""
    pairs = list(cells)
    steps = by(steps_only(pairs), "workflow", "step", histograms=DURATION)
    durations = {key: cell.histogram("duration") for key, cell in steps.items()}
    out = []
    for (workflow,), cell in sorted(by(executions_only(pairs), "workflow", histograms=DURATION).items()):
        total = cell.histogram("duration").total
        ended = cell.histogram("duration").n
        rows: list[dict[str, Any]] = []
        for step, n in _prefixed(cell, "critical:").items():
            seconds = cell.sums.get(f"critical_s:{step}", 0.0)
            p95 = durations.get((workflow, step))
            rows.append({
                "step": step,
                "on_path": n,
                "on_path_rate": _ratio(n, ended),
                "seconds_on_path": round(seconds, 6),
                "share": round(seconds / total, 6) if total > 0 else None,
                "p95": p95.summary()["p95"] if p95 is not None else None,
            })  # fmt: skip
        rows.sort(key=lambda r: (-float(r["seconds_on_path"]), str(r["step"])))
        waits = cell.sums.get("critical_wait_s", 0.0)
        out.append({
            "workflow": workflow,
            "executions": ended,
            "seconds": round(total, 6),
            "wait_share": round(waits / total, 6) if total > 0 else None,
            "steps": rows[:top],
        })  # fmt: skip
    return {"workflows": out}


def slas(cells: Cells) -> list[dict[str, Any]]:
    """Per workflow and step (``""``: the execution): SLA checks and breaches, and the rate."""
    rows = []
    for (workflow, step), cell in sorted(by(cells, "workflow", "step", histograms=NONE).items()):
        checked = cell.counts.get("sla_checked", 0)
        if checked:
            breaches = cell.counts.get("sla_breaches", 0)
            rows.append({"workflow": workflow, "step": step or None, "checked": checked,
                         "breaches": breaches, "breach_rate": _ratio(breaches, checked)})  # fmt: skip
    return rows


def kpis(cells: Cells, every: int) -> list[dict[str, Any]]:
    """Per workflow and KPI: count, sum and mean over the window and per period of ``every``."""
    totals: dict[tuple[str, str], list[float]] = {}
    periods: dict[tuple[str, str], dict[int, list[float]]] = {}
    for key, cell in executions_only(cells):
        for name, n in cell.counts.items():
            if name.startswith("kpi_n:"):
                kpi = name[len("kpi_n:") :]
                value = cell.sums.get(f"kpi:{kpi}", 0.0)
                total = totals.setdefault((key.workflow, kpi), [0, 0.0])
                total[0] += n
                total[1] += value
                period = periods.setdefault((key.workflow, kpi), {}).setdefault(key.bucket - key.bucket % every, [0, 0.0])
                period[0] += n
                period[1] += value
    return [
        {
            "workflow": workflow,
            "kpi": kpi,
            "count": int(n),
            "sum": round(total, 6),
            "mean": round(total / n, 6) if n else None,
            "periods": [
                {"start": start, "count": int(pn), "sum": round(ps, 6), "mean": round(ps / pn, 6) if pn else None}
                for start, (pn, ps) in sorted(periods[(workflow, kpi)].items())
            ],
        }
        for (workflow, kpi), (n, total) in sorted(totals.items())
    ]
