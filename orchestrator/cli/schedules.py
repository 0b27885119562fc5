"""``orchestrator schedules list|describe|pause|unpause|trigger|backfill`` against a running server."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any
from urllib.parse import quote

from orchestrator.cli.args import Parents
from orchestrator.cli.client import Client, remote
from orchestrator.cli.errors import CliError
from orchestrator.cli.output import Output

OVERLAPS = ("allow", "skip", "buffer_one", "cancel_previous", "terminate_previous")


def add_commands(sub: Any, parents: Parents) -> None:
    group = sub.add_parser("schedules", help="list, inspect, pause, trigger and backfill schedules")
    commands = group.add_subparsers(dest="schedules_command", required=True, metavar="ACTION")
    p = commands.add_parser("list", parents=[parents.server], help="every schedule: paused, last and next fire")
    p.set_defaults(handler=remote(list_schedules))
    p = commands.add_parser("describe", parents=[parents.server], help="one schedule and its next fire times")
    _names(p)
    p.add_argument("--next", type=int, default=5, metavar="N", help="how many next fire times (default 5)")
    p.set_defaults(handler=remote(describe))
    for action, text in (("pause", "pause in every process"), ("unpause", "fire again from now on")):
        p = commands.add_parser(action, parents=[parents.server], help=text)
        _names(p)
        p.add_argument("--note", default="", help="why (kept on the schedule)")
        p.set_defaults(handler=remote(set_paused), schedule_action=action)
    p = commands.add_parser("trigger", parents=[parents.server], help="fire now")
    _names(p)
    p.add_argument("--overlap", choices=OVERLAPS, help="instead of the schedule's overlap policy")
    p.set_defaults(handler=remote(trigger))
    p = commands.add_parser(
        "backfill",
        parents=[parents.server],
        help="start the fire times of a past range (counts first; --yes starts them)",
    )
    _names(p)
    p.add_argument("--from", dest="start", required=True, help="RFC 3339 start, e.g. 2026-11-01T00:00:00Z")
    p.add_argument("--to", dest="end", required=True, help="RFC 3339 end (in the past)")
    p.add_argument("--yes", action="store_true", help="start them (without it: a dry-run count)")
    p.set_defaults(handler=remote(backfill))


def _names(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workflow")
    parser.add_argument("name", help="the schedule trigger's name")


def _path(args: argparse.Namespace, action: str = "") -> str:
    base = f"/schedules/{quote(args.workflow, safe='')}/{quote(args.name, safe='')}"
    return f"{base}/{action}" if action else base


async def list_schedules(client: Client, args: argparse.Namespace, out: Output) -> int:
    answer = await client.get("/schedules")
    if out.json:
        out.value(answer)
        return 0
    rows = [
        (
            s.get("workflow"),
            s.get("name"),
            when(s.get("spec") or {}),
            state_text(s),
            (s.get("last") or {}).get("scheduled_time") or "-",
            (s.get("next") or [{}])[0].get("scheduled_time") or "-",
            counts_text(s.get("counts")),
        )
        for s in answer.get("schedules", [])
    ]
    out.table(("WORKFLOW", "NAME", "WHEN", "STATE", "LAST FIRE", "NEXT FIRE", "COUNTS"), rows)
    return 0


async def describe(client: Client, args: argparse.Namespace, out: Output) -> int:
    view = await client.get(_path(args), {"count": str(args.next)})
    if out.json:
        out.value(view)
        return 0
    show(view, out)
    return 0


async def set_paused(client: Client, args: argparse.Namespace, out: Output) -> int:
    view = await client.post(_path(args, args.schedule_action), {"note": args.note})
    if out.json:
        out.value(view)
        return 0
    out.line(f"schedule {view.get('workflow')}/{view.get('name')}: {state_text(view)}")
    return 0


async def trigger(client: Client, args: argparse.Namespace, out: Output) -> int:
    body = {"overlap": args.overlap} if args.overlap else {}
    fired = await client.post(_path(args, "trigger"), body)
    if out.json:
        out.value(fired)
        return 0
    where = f": {fired['execution_id']}" if fired.get("execution_id") else ""
    out.line(f"fire of {fired.get('scheduled_time')} {fired.get('outcome')} (overlap {fired.get('overlap')}){where}")
    return 0


async def backfill(client: Client, args: argparse.Namespace, out: Output) -> int:
    for text in (args.start, args.end):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise CliError(f"{text!r} is not an RFC 3339 time such as 2026-11-01T00:00:00Z", 2) from None
        if moment.tzinfo is None:
            raise CliError(f"{text!r} has no offset; add Z or +01:00", 2)
    result = await client.post(_path(args, "backfill"), {"start": args.start, "end": args.end, "dry_run": not args.yes})
    if out.json:
        out.value(result)
        return 0
    span = f"{result.get('first')} .. {result.get('last')}" if result.get("fire_times") else "none"
    if result.get("dry_run"):
        todo = result["fire_times"] - result["existing"]
        out.line(f"{result['fire_times']} fire times ({span}); {result['existing']} started already, {todo} to start")
        out.line("run again with --yes to start them")
    else:
        out.line(
            f"{result['fire_times']} fire times ({span}): {result['started']} started,"
            f" {result['existing']} had started, {result['failed']} failed"
        )
    return 0 if not result.get("failed") else 1


def show(view: dict[str, Any], out: Output) -> None:
    """The describe view as lines."""
    spec = view.get("spec") or {}
    out.line(f"schedule {view.get('workflow')}/{view.get('name')} (tenant {view.get('tenant')})")
    out.line(f"  when:      {when(spec)}")
    out.line(
        f"  policy:    catchup {spec.get('catchup')} within {spec.get('catchup_window')},"
        f" overlap {spec.get('overlap')}, jitter {spec.get('jitter')}"
    )
    out.line(f"  state:     {state_text(view)}")
    last = view.get("last") or {}
    out.line(f"  last fire: {last.get('scheduled_time', '-')} {last.get('execution_id', '')}".rstrip())
    if view.get("buffered"):
        out.line(f"  buffered:  {view['buffered']}")
    out.line(f"  counts:    {counts_text(view.get('counts'))}")
    out.line("  next:")
    for item in view.get("next") or []:
        out.line(f"    {item.get('scheduled_time')}  ({item.get('local')})")
    skips = view.get("recent_skips") or []
    if skips:
        out.line("  recent skips:")
        for skip in skips:
            out.line(f"    {skip.get('time')}  {skip.get('reason')}")


def when(spec: dict[str, Any]) -> str:
    if spec.get("cron"):
        return f"cron {spec['cron']} ({spec.get('timezone', 'UTC')})"
    return f"every {spec.get('every')}"


def state_text(view: dict[str, Any]) -> str:
    if not view.get("enabled", True):
        return "disabled"
    if view.get("paused"):
        note = f": {view['note']}" if view.get("note") else ""
        return f"paused by {view.get('paused_by') or '?'}{note}"
    return "active"


def counts_text(counts: dict[str, Any] | None) -> str:
    counts = counts or {}
    return " ".join(f"{key}={counts.get(key, 0)}" for key in ("started", "skipped", "failed"))
