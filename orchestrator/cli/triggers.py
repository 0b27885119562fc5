"""``orchestrator triggers``, ``trigger-enable`` and ``trigger-disable`` against a running server."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from orchestrator.cli.args import Parents
from orchestrator.cli.client import Client, remote
from orchestrator.cli.output import Output


def add_commands(sub: Any, parents: Parents) -> None:
    p = sub.add_parser("triggers", parents=[parents.server], help="list triggers: enabled, running, errors")
    p.set_defaults(handler=remote(list_triggers))
    for action in ("enable", "disable"):
        p = sub.add_parser(
            f"trigger-{action}",
            parents=[parents.server],
            help=f"{action} a trigger in every process (persisted; overrides the definition)",
        )
        p.add_argument("workflow")
        p.add_argument("name", help="the trigger's name")
        p.set_defaults(handler=remote(set_enabled), trigger_action=action)


async def list_triggers(client: Client, args: argparse.Namespace, out: Output) -> int:
    answer = await client.get("/triggers")
    if out.json:
        out.value(answer)
        return 0
    rows = [
        (
            t.get("workflow"),
            t.get("version"),
            t.get("name"),
            t.get("type"),
            _enabled(t),
            _running(t),
            where(t),
            t.get("error") or _counts(t.get("stats")),
        )
        for t in answer.get("triggers", [])
    ]
    headers = ("WORKFLOW", "VERSION", "NAME", "TYPE", "ENABLED", "RUNNING", "WHERE", "STATS / ERROR")
    out.table(headers, rows)
    if not answer.get("runs_sources", True):
        out.line("this server runs no trigger sources (API-only); they run in the worker processes")
    return 0


async def set_enabled(client: Client, args: argparse.Namespace, out: Output) -> int:
    path = f"/triggers/{quote(args.workflow, safe='')}/{quote(args.name, safe='')}/{args.trigger_action}"
    view = await client.post(path, None)
    if out.json:
        out.value(view)
        return 0
    state = "enabled" if view.get("enabled") else "disabled"
    running = "running" if view.get("running") else "not running"
    out.line(
        f"trigger {view.get('workflow')}/{view.get('name')} ({view.get('type')}) {state}; {running} here"
    )
    if view.get("error"):
        out.line(f"error: {view['error']}")
    return 0


def where(trigger: dict[str, Any]) -> str:
    """Where a trigger listens, in a few words."""
    details = trigger.get("details") or {}
    if "path" in details:
        return f"POST {details['path']}"
    if "cron" in details or "every" in details:
        when = f"cron {details['cron']}" if details.get("cron") else f"every {details.get('every')}"
        return f"{when} ({details.get('timezone')})"
    if "queue" in details:
        exchange = f" <- {details['exchange']}" if details.get("exchange") else ""
        return f"{details.get('connection')}: queue {details['queue']}{exchange}"
    topics = ",".join(details.get("topics") or [])
    return f"{details.get('connection')}: {topics} (group {details.get('group')})"


def _enabled(trigger: dict[str, Any]) -> str:
    text = "yes" if trigger.get("enabled") else "no"
    return f"{text} (override)" if trigger.get("override") is not None else text


def _running(trigger: dict[str, Any]) -> str:
    """yes / no (in the server answering), with the version during a takeover."""
    if not trigger.get("running"):
        return "no"
    other = trigger.get("running_version")
    return f"yes (v{other})" if other is not None and other != trigger.get("version") else "yes"


def _counts(stats: dict[str, Any] | None) -> str | None:
    if not stats:
        return None
    keys = ("received", "started", "duplicates", "delivered", "filtered", "dead_lettered")
    return " ".join(f"{key}={stats.get(key, 0)}" for key in keys)
