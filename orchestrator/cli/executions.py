"""``orchestrator start | executions | get | history | state | diff | signal | event | cancel``
against a running server."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.args import Parents, finite_number, parse_json_arg
from orchestrator.cli.client import TERMINAL, Client, Command, remote, status_of
from orchestrator.cli.errors import CliError
from orchestrator.cli.output import Output
from orchestrator.cli.results import exit_code, result_json, show_result
from orchestrator.history import timeline

REASON_HELP = "why: recorded on the execution's events and in the audit trail"


def add_commands(sub: Any, parents: Parents) -> None:
    def add(name: str, help: str, command: Command) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, parents=[parents.server], help=help)
        parser.set_defaults(handler=remote(command))
        return parser

    p = add("start", "start an execution", start)
    p.add_argument("workflow")
    p.add_argument("--input", metavar="JSON", help="input JSON, or @file")
    p.add_argument("--version", type=int)
    p.add_argument("--idempotency-key", help="starts at most one execution per key")
    p.add_argument("--wait", action="store_true", help="wait for the end and show the history")
    p.add_argument("--timeout", type=finite_number, metavar="S", help="with --wait: give up after S s")
    p = add("executions", "list executions, newest first", executions)
    p.add_argument("--workflow")
    p.add_argument("--status", choices=sorted(TERMINAL | {"running"}))
    p.add_argument("--version", type=int, help="of this definition version only")
    p.add_argument("--started-by", metavar="ACTOR", help="e.g. trigger:orders/paid, webhook:shop")
    p.add_argument("--correlation-key", metavar="KEY", help="the key of its latest wait_for_event")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--cursor")
    add("get", "show one execution", get).add_argument("id")
    p = add("history", "show an execution's history", history)
    p.add_argument("id")
    p.add_argument("--type", help="only these event types, comma-separated")
    p.add_argument("--after", type=int, default=0, metavar="SEQ", help="only the events after SEQ")
    p.add_argument("--limit", type=int, metavar="N", help="at most N events (default: all)")
    p = add("state", "show an execution's state", state)
    p.add_argument("id")
    p.add_argument("--at", type=int, metavar="SEQ", help="the state after event SEQ")
    p = add("diff", "compare two executions: history (first divergence) and state", diff)
    p.add_argument("a", metavar="A", help="execution id")
    p.add_argument("b", metavar="B", help="execution id")
    p = add("signal", "send a signal to one execution", signal)
    p.add_argument("id")
    p.add_argument("name")
    p.add_argument("--payload", metavar="JSON", help="payload JSON, or @file")
    p.add_argument("--reason", help=REASON_HELP)
    p = add("event", "publish an event to executions waiting on its correlation key", event)
    p.add_argument("name")
    p.add_argument("--key", required=True, help="correlation key")
    p.add_argument("--payload", metavar="JSON", help="payload JSON, or @file")
    p.add_argument("--reason", help=REASON_HELP)
    p = add("cancel", "cancel an execution", cancel)
    p.add_argument("id")
    p.add_argument("--reason", default="", help=REASON_HELP)


async def start(client: Client, args: argparse.Namespace, out: Output) -> int:
    body: dict[str, Any] = {"workflow": args.workflow, "input": parse_json_arg(args.input, "input")}
    if args.version is not None:
        body["version"] = args.version
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    answer = await client.post("/executions", body, headers)
    execution_id = answer["execution_id"]
    if not args.wait:
        if out.json:
            out.value(answer)
        elif answer.get("created", True):
            out.line(f"started {execution_id}")
        else:
            out.line(f"{execution_id} already exists for that idempotency key; nothing started")
        return 0
    execution = await client.wait(execution_id, args.timeout)
    events = await client.history(execution_id)
    if out.json:
        out.value({**result_json(execution, events), "created": answer.get("created")})
    else:
        show_result(out, execution, events)
    return exit_code(str(execution.get("status")))


async def executions(client: Client, args: argparse.Namespace, out: Output) -> int:
    params = {"limit": str(args.limit)}
    for key in ("workflow", "status", "version", "started_by", "correlation_key", "cursor"):
        if getattr(args, key) is not None:
            params[key] = str(getattr(args, key))
    page = await client.get("/executions", params)
    if out.json:
        out.value(page)
        return 0
    rows = [
        (
            e.get("execution_id"),
            e.get("workflow"),
            e.get("version"),
            e.get("status"),
            e.get("started_at"),
            e.get("updated_at"),
        )
        for e in page.get("items", [])
    ]
    out.table(("ID", "WORKFLOW", "VERSION", "STATUS", "STARTED", "UPDATED"), rows)
    if page.get("next_cursor"):
        out.line(f"more: --cursor {page['next_cursor']}")
    return 0


async def get(client: Client, args: argparse.Namespace, out: Output) -> int:
    execution = await client.get(f"/executions/{args.id}")
    if out.json:
        out.value(execution)
        return 0
    for key, value in execution.items():
        shown = value if isinstance(value, str | int | float) or value is None else None
        out.line(f"{key}: {timeline.compact(value, 200) if shown is None else shown}")
    return 0


async def history(client: Client, args: argparse.Namespace, out: Output) -> int:
    if args.after < 0 or (args.limit is not None and args.limit < 1):
        raise CliError("--after must be 0 or more and --limit 1 or more", 2)
    events = await client.history(args.id, args.type, after=args.after, limit=args.limit)
    if out.json:
        out.value(events)
        return 0
    origin = None  # a window: times count from the first event, as for the whole history
    if args.after > 0:
        first = await client.history(args.id, limit=1)
        origin = timeline.moment_of(first[0]) if first else None
    out.show(timeline.blocks(timeline.build(events, origin)))
    return 0


async def state(client: Client, args: argparse.Namespace, out: Output) -> int:
    params = {"at": str(args.at)} if args.at is not None else None
    value = await client.get(f"/executions/{args.id}/state", params)
    if out.json:
        out.value(value)
        return 0
    for key in ("execution_id", "workflow", "version", "status", "sequence"):
        out.line(f"{key}: {value.get(key)}")
    for key in ("active", "timers", "output", "error"):
        if value.get(key):
            out.line(f"{key}: {timeline.compact(value[key], 200)}")
    steps = value.get("steps") or {}
    if steps:
        out.line()
        out.table(
            ("STEP", "OUTPUT"), [(name, timeline.compact(output, 100)) for name, output in steps.items()]
        )
    return 0


async def diff(client: Client, args: argparse.Namespace, out: Output) -> int:
    from orchestrator.history.diff import render

    answer = await client.get(f"/executions/{args.a}/diff/{args.b}")
    if out.json:
        out.value(answer)
    else:
        out.lines(render(answer))
    return 0


async def signal(client: Client, args: argparse.Namespace, out: Output) -> int:
    body = {"name": args.name, "payload": parse_json_arg(args.payload, "payload")}
    if args.reason:
        body["reason"] = args.reason
    answer = await client.post(f"/executions/{args.id}/signals", body)
    if out.json:
        out.value(answer)
    else:
        how = "buffered until it waits for it" if answer.get("buffered") else "delivered"
        out.line(f"signal {args.name} {how}: {args.id} (status: {status_of(answer)})")
    return 0


async def event(client: Client, args: argparse.Namespace, out: Output) -> int:
    body = {
        "name": args.name,
        "correlation_key": args.key,
        "payload": parse_json_arg(args.payload, "payload"),
    }
    if args.reason:
        body["reason"] = args.reason
    answer = await client.post("/events", body)
    if out.json:
        out.value(answer)
        return 0
    delivered = answer.get("delivered_to", []) if isinstance(answer, dict) else []
    targets = ", ".join(map(str, delivered)) or "no waiting execution"
    out.line(f"event {args.name} (key {args.key}) delivered to {len(delivered)}: {targets}")
    return 0


async def cancel(client: Client, args: argparse.Namespace, out: Output) -> int:
    answer = await client.post(f"/executions/{args.id}/cancel", {"reason": args.reason})
    if out.json:
        out.value(answer)
    else:
        out.line(f"cancelled {args.id} (status: {status_of(answer)})")
    return 0
