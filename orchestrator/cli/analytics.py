"""``orchestrator analytics overview | rates | failures | steps | retries``, against a running server.

Each prints the figures of ``GET /api/v1/analytics/<query>`` (docs/analytics.md) as a table, or
the whole answer with ``--json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from orchestrator.cli.args import Parents
from orchestrator.cli.client import Client, remote
from orchestrator.cli.output import Output

PATH = "/analytics"
PARAMS = (
    "workflow", "version", "since", "until", "every", "top",
    "price_wall_second", "price_cpu_second", "price_call", "price_calls",
)  # fmt: skip


def add_commands(sub: Any, parents: Parents) -> None:
    group = sub.add_parser("analytics", help="figures from the event log: rates, failures, steps, retries")
    actions = group.add_subparsers(dest="analytics_action", required=True, metavar="QUERY")
    for name, help_text, show in (
        ("overview", "executions, success and failure rates, durations per workflow", _overview),
        ("rates", "outcomes and rates per period", _rates),
        ("failures", "failures by error type and step", _failures),
        ("steps", "per step: attempts, retries, duration, queue wait and run time percentiles", _steps),
        ("retries", "retry hot spots", _retries),
        ("bottlenecks", "steps on the critical path, ranked by their seconds on it", _bottlenecks),
        ("slas", "SLA checks, breaches per step and the latest breaches", _slas),
        ("cost", "cost per workflow, step and execution at the prices given", _cost),
        ("kpis", "the definitions' KPIs over outputs, per period", _kpis),
    ):
        p = actions.add_parser(name, parents=[parents.server], help=help_text)
        p.add_argument("--workflow", help="one workflow (default: all)")
        p.add_argument("--version", type=int, help="one version of the workflow")
        p.add_argument("--since", help="RFC 3339 time or a duration before now (default 7d)")
        p.add_argument("--until", help="RFC 3339 time or a duration before now (default now)")
        if name in ("rates", "kpis"):
            p.add_argument("--every", choices=("1h", "6h", "1d", "7d"), default="1h", help="period (default 1h)")
        if name in ("retries", "bottlenecks", "slas"):
            p.add_argument("--top", type=int, default=20, help="how many rows (default 20)")
        if name == "cost":
            p.add_argument("--price-wall-second", type=float, help="per wall-second of task attempts")
            p.add_argument("--price-cpu-second", type=float, help="per CPU-second measured (isolated steps)")
            p.add_argument("--price-call", type=float, help="per connector call")
            p.add_argument("--price-calls", help="per call of named connectors: http=0.002,python=0")
        p.set_defaults(handler=remote(_query(name, show)))
    p = actions.add_parser(
        "degradations", parents=[parents.server], help="steps slower or failing more than in the baseline"
    )
    p.add_argument("--workflow", help="one workflow (default: all)")
    p.add_argument("--recent", default="24h", help="the recent window before now (default 24h)")
    p.add_argument("--baseline", default="7d", help="the baseline before the recent window (default 7d)")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    p.add_argument("--all", action="store_true", help="list every test, not only the flagged ones")
    p.set_defaults(handler=remote(degradations))
    p = actions.add_parser("forecast", parents=[parents.server], help="starts per hour ahead, and the capacity")
    p.add_argument("--workflow", help="one workflow (default: all)")
    p.add_argument("--history", default="14d", help="history to fit on (default 14d)")
    p.add_argument("--horizon", type=int, default=24, help="hours to forecast (default 24)")
    p.add_argument("--utilisation", type=float, default=0.7, help="target utilisation of task slots (default 0.7)")
    p.set_defaults(handler=remote(forecast))
    p = actions.add_parser("critical-path", parents=[parents.server], help="what bounded one execution's time")
    p.add_argument("id", help="the execution id")
    p.set_defaults(handler=remote(critical_path))


async def degradations(client: Client, args: argparse.Namespace, out: Output) -> int:
    params = {"recent": args.recent, "baseline": args.baseline, "alpha": str(args.alpha)}
    if args.workflow:
        params["workflow"] = args.workflow
    answer = await client.get(f"{PATH}/degradations", params)
    if out.json:
        out.value(answer)
        return 0
    out.line(f"{answer.get('flagged')} flagged of {len(answer.get('tests', []))} tests at alpha {answer.get('alpha')}")
    rows = [
        (t["workflow"], t["step"] or "(execution)", t["kind"], _figure(t, "recent"), _figure(t, "baseline"),
         f"{t['p_value']:.2g}", "FLAGGED" if t["flagged"] else "")
        for t in answer.get("tests", [])
        if t["flagged"] or args.all
    ]  # fmt: skip
    out.table(("WORKFLOW", "STEP", "TEST", "RECENT", "BASELINE", "P", ""), rows)
    return 0


def _figure(test: dict[str, Any], side: str) -> str:
    part = test[side]
    value = _sec(part["p50"]) if "p50" in part else _pct(part["rate"])
    return f"{value} (n={part['n']})"


async def forecast(client: Client, args: argparse.Namespace, out: Output) -> int:
    params = {"history": args.history, "horizon": str(args.horizon), "utilisation": str(args.utilisation)}
    if args.workflow:
        params["workflow"] = args.workflow
    answer = await client.get(f"{PATH}/forecast", params)
    if out.json:
        out.value(answer)
        return 0
    out.line(f"{answer.get('method')}, {answer.get('history_hours')} hours of history")
    holdout = answer.get("holdout")
    if holdout:
        out.line(f"held-out {holdout['hours']} h: MAE {holdout['holt_winters']['mae']} "
                 f"(seasonal naive {holdout['seasonal_naive']['mae']})")  # fmt: skip
    out.table(("HOUR", "STARTS"), list(enumerate(answer.get("forecast", []), start=1)))
    plan = answer.get("capacity", {})
    out.line(f"capacity: {plan.get('slots')} slots, {plan.get('workers')} workers "
             f"(peak {plan.get('peak_starts_per_hour')}/h x {plan.get('worker_seconds_per_execution')} s "
             f"at {plan.get('utilisation')} utilisation)")  # fmt: skip
    return 0


async def critical_path(client: Client, args: argparse.Namespace, out: Output) -> int:
    answer = await client.get(f"{PATH}/executions/{quote(args.id, safe='')}/critical-path")
    if out.json:
        out.value(answer)
        return 0
    state = "running" if answer.get("running") else "ended"
    out.line(f"{answer.get('workflow')} v{answer.get('version')}, {state}, {_sec(answer.get('seconds'))}")
    rows = [(s["step"] or "(wait)", _sec(s["seconds"]), _pct(s["share"])) for s in answer.get("path", [])]
    out.table(("ON THE PATH", "SECONDS", "SHARE"), rows)
    return 0


def _query(name: str, show: Callable[[dict[str, Any], Output], None]) -> Any:
    async def run(client: Client, args: argparse.Namespace, out: Output) -> int:
        params = {
            key: str(value)
            for key in PARAMS
            if (value := getattr(args, key, None)) is not None
        }
        answer = await client.get(f"{PATH}/{name}", params)
        if out.json:
            out.value(answer)
        else:
            out.line(f"tenant {answer.get('tenant')}, {answer.get('since')} .. {answer.get('until')}")
            show(answer, out)
        return 0

    return run


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def _sec(value: Any) -> str:
    if value is None:
        return "-"
    seconds = float(value)
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


def _overview(answer: dict[str, Any], out: Output) -> None:
    rows = [
        (
            w.get("workflow"), w.get("version"), w.get("started"), w.get("succeeded"), w.get("failed"),
            w.get("cancelled"), _pct(w.get("failure_rate")), _sec(w["duration"].get("p50")),
            _sec(w["duration"].get("p95")), _sec(w["duration"].get("p99")),
        )
        for w in answer.get("workflows", [])
    ]  # fmt: skip
    out.table(("WORKFLOW", "V", "STARTED", "OK", "FAILED", "CANCELLED", "FAIL%", "P50", "P95", "P99"), rows)


def _rates(answer: dict[str, Any], out: Output) -> None:
    rows = [
        (p.get("start"), p.get("started"), p.get("succeeded"), p.get("failed"), _pct(p.get("failure_rate")))
        for p in answer.get("periods", [])
    ]
    out.table(("PERIOD START", "STARTED", "OK", "FAILED", "FAIL%"), rows)


def _failures(answer: dict[str, Any], out: Output) -> None:
    out.line(f"executions failed: {answer.get('executions_failed')}")
    for kind, n in answer.get("by_type", {}).items():
        out.line(f"  {kind}: {n}")
    rows = [(r["workflow"], r["step"], r["type"], r["count"]) for r in answer.get("steps", [])]
    out.table(("WORKFLOW", "STEP", "ERROR", "FINAL FAILURES"), rows)


def _steps(answer: dict[str, Any], out: Output) -> None:
    rows = [
        (
            s["workflow"], s["step"], s["attempts"], s["retries"], _pct(s.get("failure_rate")),
            _sec(s["duration"].get("p50")), _sec(s["duration"].get("p95")), _sec(s["duration"].get("p99")),
            _sec(s["queue"].get("p50")), _sec(s["run"].get("p50")),
        )
        for s in answer.get("steps", [])
    ]  # fmt: skip
    out.table(("WORKFLOW", "STEP", "ATTEMPTS", "RETRIES", "FAIL%", "P50", "P95", "P99", "QUEUE P50", "RUN P50"), rows)


def _retries(answer: dict[str, Any], out: Output) -> None:
    rows = [
        (s["workflow"], s["step"], s["retries"], _pct(s.get("retry_rate")), ", ".join(f"{k}: {v}" for k, v in s["errors"].items()))
        for s in answer.get("steps", [])
    ]
    out.table(("WORKFLOW", "STEP", "RETRIES", "RETRY%", "ERRORS"), rows)


def _bottlenecks(answer: dict[str, Any], out: Output) -> None:
    rows = [
        (w["workflow"], s["step"], s["on_path"], _pct(s["on_path_rate"]), _sec(s["seconds_on_path"]),
         _pct(s["share"]), _sec(s["p95"]))
        for w in answer.get("workflows", [])
        for s in w["steps"]
    ]  # fmt: skip
    out.table(("WORKFLOW", "STEP", "ON PATH", "OF RUNS", "SECONDS ON PATH", "SHARE", "P95"), rows)


def _slas(answer: dict[str, Any], out: Output) -> None:
    rows = [
        (r["workflow"], r["step"] or "(execution)", r["checked"], r["breaches"], _pct(r["breach_rate"]))
        for r in answer.get("slas", [])
    ]
    out.table(("WORKFLOW", "STEP", "CHECKED", "BREACHES", "BREACH%"), rows)
    listed = [
        (b["ended_at"], b["workflow"], b["step"] or "(execution)", b["execution_id"], _sec(b["seconds"]), _sec(b["limit"]))
        for b in answer.get("breaches", [])
    ]
    out.table(("ENDED AT", "WORKFLOW", "STEP", "EXECUTION", "TOOK", "SLA"), listed)


def _cost(answer: dict[str, Any], out: Output) -> None:
    out.line(f"total {answer.get('cost')} for {answer.get('executions')} executions"
             f" ({answer.get('cost_per_execution')} each)")  # fmt: skip
    rows = [
        (w["workflow"], s["step"], _sec(s["wall_seconds"]), sum(s["calls"].values()), s["cost"])
        for w in answer.get("workflows", [])
        for s in w["steps"]
    ]
    out.table(("WORKFLOW", "STEP", "WALL", "CALLS", "COST"), rows)


def _kpis(answer: dict[str, Any], out: Output) -> None:
    rows = [
        (k["workflow"], k["kpi"], p["start"], p["count"], p["sum"], p["mean"])
        for k in answer.get("kpis", [])
        for p in k["periods"]
    ]
    out.table(("WORKFLOW", "KPI", "PERIOD START", "COUNT", "SUM", "MEAN"), rows)
