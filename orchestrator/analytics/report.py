"""A self-contained HTML report of one workflow's figures, with inline SVG charts, and the same
numbers as CSV rows. Input: the answers of the analytics routes (overview, rates, steps,
failures, bottlenecks, slas). Pure: text out, no scripts, styles or images fetched.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

Answers = dict[str, Any]
BAR_WIDTH = 560


def _when(start: float) -> str:
    return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def stacked_bars(periods: Sequence[dict[str, Any]]) -> str:
    """Executions ended per period: succeeded (green), failed (red), cancelled (grey)."""
    height, gap = 160, 2
    n = max(len(periods), 1)
    width = max(4, (BAR_WIDTH - gap * n) // n)
    peak = max([p["succeeded"] + p["failed"] + p["cancelled"] for p in periods] + [1])
    bars = []
    for i, p in enumerate(periods):
        x, y = i * (width + gap), height
        for key, colour in (("succeeded", "#3a3"), ("failed", "#c33"), ("cancelled", "#999")):
            h = p[key] / peak * (height - 10)
            if h > 0:
                y -= h
                bars.append(f'<rect x="{x}" y="{y:.1f}" width="{width}" height="{h:.1f}" fill="{colour}">'
                            f"<title>{escape(_when(p['start']))} {key}: {p[key]}</title></rect>")  # fmt: skip
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{BAR_WIDTH}" height="{height}" role="img" '
            f'aria-label="executions per period">{"".join(bars)}</svg>')  # fmt: skip


def horizontal_bars(rows: Sequence[tuple[str, float]], unit: str) -> str:
    """One bar per (label, value), longest first as given."""
    line, label = 20, 160
    peak = max([value for _, value in rows] + [1e-9])
    parts = []
    for i, (name, value) in enumerate(rows):
        w = value / peak * (BAR_WIDTH - label - 80)
        y = i * line
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{escape(name[:24])}</text>'
                     f'<rect x="{label}" y="{y + 3}" width="{w:.1f}" height="{line - 6}" fill="#36c"/>'
                     f'<text x="{label + w + 4:.1f}" y="{y + 14}" font-size="12">{value:.4g} {unit}</text>')  # fmt: skip
    height = max(line * len(rows), line)
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{BAR_WIDTH}" height="{height}" role="img">{"".join(parts)}</svg>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def csv_rows(a: Answers) -> list[tuple[str, str, str, Any]]:
    """(section, subject, figure, value): every number the HTML shows."""
    o = a["overview"]
    rows: list[tuple[str, str, str, Any]] = [
        ("overview", o.get("workflow") or "", key, o.get(key))
        for key in ("started", "succeeded", "failed", "cancelled", "success_rate", "failure_rate")
    ]
    rows += [("overview", "duration", k, v) for k, v in o["duration"].items()]
    for p in a["rates"]["periods"]:
        rows += [("rates", _when(p["start"]), k, p[k]) for k in ("started", "succeeded", "failed", "cancelled")]
    for s in a["steps"]["steps"]:
        rows += [("steps", s["step"], k, s[k]) for k in ("attempts", "succeeded", "failed", "retries", "retry_rate")]
        rows += [("steps", s["step"], f"duration_{k}", v) for k, v in s["duration"].items() if k != "count"]
        rows += [("steps", s["step"], "queue_p50", s["queue"]["p50"]), ("steps", s["step"], "run_p50", s["run"]["p50"])]
    rows += [("failures", f"{r['step']}", r["type"], r["count"]) for r in a["failures"]["steps"]]
    for w in a["bottlenecks"]["workflows"]:
        rows += [("bottlenecks", s["step"], "seconds_on_path", s["seconds_on_path"]) for s in w["steps"]]
        rows += [("bottlenecks", s["step"], "share", s["share"]) for s in w["steps"]]
    rows += [("slas", r["step"] or "(execution)", "breaches", r["breaches"]) for r in a["slas"]["slas"]]
    rows += [("slas", r["step"] or "(execution)", "checked", r["checked"]) for r in a["slas"]["slas"]]
    return rows


def html(a: Answers, title: str) -> str:
    o = a["overview"]
    steps = a["steps"]["steps"]
    p95 = sorted(((s["step"], s["duration"]["p95"] or 0.0) for s in steps if s["duration"]["count"]), key=lambda r: -r[1])
    path = [(s["step"], s["seconds_on_path"]) for w in a["bottlenecks"]["workflows"] for s in w["steps"]]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
        "</style></head><body>",
        f"<h1>{escape(title)}</h1><p>{escape(o['since'])} to {escape(o['until'])}, tenant {escape(o['tenant'])}; "
        f"percentiles within {100 * o['percentile_relative_error']:.1f} %.</p>",
        "<h2>Outcomes</h2>",
        _table(("started", "succeeded", "failed", "cancelled", "failure rate", "p50 s", "p95 s", "p99 s"),
               [(o["started"], o["succeeded"], o["failed"], o["cancelled"], o["failure_rate"],
                 o["duration"]["p50"], o["duration"]["p95"], o["duration"]["p99"])]),
        f"<h3>Executions ended per {escape(a['rates']['every'])}</h3>", stacked_bars(a["rates"]["periods"]),
        "<h2>Steps</h2>", "<h3>p95 duration</h3>", horizontal_bars(p95, "s"),
        _table(("step", "attempts", "retries", "failed", "p50 s", "p95 s", "p99 s", "queue p50 s", "run p50 s"),
               [(s["step"], s["attempts"], s["retries"], s["failed"], s["duration"]["p50"], s["duration"]["p95"],
                 s["duration"]["p99"], s["queue"]["p50"], s["run"]["p50"]) for s in steps]),
        "<h2>Bottlenecks (seconds on the critical path)</h2>", horizontal_bars(path, "s"),
        "<h2>Failures</h2>",
        _table(("step", "error", "final failures"), [(r["step"], r["type"], r["count"]) for r in a["failures"]["steps"]]),
        "<h2>SLAs</h2>",
        _table(("step", "checked", "breaches", "rate"),
               [(r["step"] or "(execution)", r["checked"], r["breaches"], r["breach_rate"]) for r in a["slas"]["slas"]]),
        "</body></html>\n",
    ]  # fmt: skip
    return "".join(parts)
