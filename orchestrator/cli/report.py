"""``orchestrator report`` (an HTML report with charts and a CSV of the same numbers) and
``orchestrator export-xes`` (executions as an XES event log), against a running server."""

from __future__ import annotations

import argparse
import asyncio
import csv
from pathlib import Path
from typing import Any
from urllib.parse import quote

from orchestrator.analytics import report, xes
from orchestrator.cli.args import Parents
from orchestrator.cli.client import Client, remote
from orchestrator.cli.errors import CliError
from orchestrator.cli.output import Output
from orchestrator.core.timefmt import parse_rfc3339

PAGE = 500


def add_commands(sub: Any, parents: Parents) -> None:
    p = sub.add_parser("report", parents=[parents.server], help="an HTML report (and CSV) of one workflow's figures")
    p.add_argument("--workflow", required=True, help="the workflow")
    p.add_argument("--since", default="7d", help="RFC 3339 time or a duration before now (default 7d)")
    p.add_argument("--until", help="RFC 3339 time or a duration before now (default now)")
    p.add_argument("-o", "--output", default="report.html", help="the HTML file (default report.html)")
    p.add_argument("--csv", help="the CSV file (default: the HTML file's name with .csv)")
    p.set_defaults(handler=remote(write_report))
    p = sub.add_parser("export-xes", parents=[parents.server], help="executions as an XES event log (process mining)")
    p.add_argument("--workflow", required=True, help="the workflow")
    p.add_argument("--since", help="started at or after this RFC 3339 time")
    p.add_argument("--limit", type=int, default=10_000, help="at most N executions, newest first (default 10000)")
    p.add_argument("-o", "--output", default="executions.xes", help="the file (default executions.xes)")
    p.set_defaults(handler=remote(export_xes))


async def write_report(client: Client, args: argparse.Namespace, out: Output) -> int:
    params = {"workflow": args.workflow, "since": args.since, **({"until": args.until} if args.until else {})}
    answers: dict[str, Any] = {}
    for name in ("overview", "steps", "failures", "bottlenecks", "slas"):
        answers[name] = await client.get(f"/analytics/{name}", params)
    every = "1d" if _hours(answers["overview"]) > 48 else "1h"
    answers["rates"] = await client.get("/analytics/rates", {**params, "every": every})
    html_path = Path(args.output)
    csv_path = Path(args.csv) if args.csv else html_path.with_suffix(".csv")
    await asyncio.to_thread(_write_report, answers, args.workflow, html_path, csv_path)
    if out.json:
        out.value({"html": str(html_path), "csv": str(csv_path), "executions": answers["overview"]["started"]})
    else:
        out.line(f"wrote {html_path} and {csv_path}")
    return 0


def _write_report(answers: dict[str, Any], workflow: str, html_path: Path, csv_path: Path) -> None:
    try:
        html_path.write_text(report.html(answers, f"Workflow {workflow}"), encoding="utf-8")
        with csv_path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(("section", "subject", "figure", "value"))
            writer.writerows(report.csv_rows(answers))
    except OSError as exc:
        raise CliError(f"cannot write the report: {exc}") from None


def _write_xes(path: Path, workflow: str, traces: list[str]) -> None:
    try:
        with path.open("w", encoding="utf-8") as handle:
            handle.writelines(xes.log(f"workflow {workflow}", traces))
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc}") from None


def _hours(overview: dict[str, Any]) -> float:
    return (parse_rfc3339(overview["until"]) - parse_rfc3339(overview["since"])) / 3600


async def export_xes(client: Client, args: argparse.Namespace, out: Output) -> int:
    traces: list[str] = []
    cursor: str | None = None
    while len(traces) < args.limit:
        params = {"workflow": args.workflow, "limit": str(min(PAGE, args.limit - len(traces)))}
        if args.since:
            params["started_after"] = args.since
        if cursor:
            params["cursor"] = cursor
        page = await client.get("/executions", params)
        for execution in page.get("items", []):
            events = await client.history(quote(execution["execution_id"], safe=""))
            traces.append(xes.trace(execution, events))
        cursor = page.get("next_cursor")
        if not cursor:
            break
    await asyncio.to_thread(_write_xes, Path(args.output), args.workflow, traces)
    if out.json:
        out.value({"file": args.output, "traces": len(traces)})
    else:
        out.line(f"wrote {len(traces)} executions to {args.output}")
    return 0
