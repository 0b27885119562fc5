"""``orchestrator cluster`` and ``orchestrator trace ID``, against a running server."""

from __future__ import annotations

import argparse
import time
from typing import Any
from urllib.parse import quote

from orchestrator.cli.args import Parents
from orchestrator.cli.client import Client, remote
from orchestrator.cli.output import Output


def add_commands(sub: Any, parents: Parents) -> None:
    p = sub.add_parser(
        "cluster", parents=[parents.server], help="nodes, their status and partitions, dead nodes, lag"
    )
    p.add_argument("--config", action="store_true", help="also show each node's effective configuration")
    p.set_defaults(handler=remote(show_cluster))
    p = sub.add_parser(
        "trace", parents=[parents.server], help="an execution's events by node, and where its time went"
    )
    p.add_argument("execution_id")
    p.set_defaults(handler=remote(show_trace))


async def show_cluster(client: Client, args: argparse.Namespace, out: Output) -> int:
    answer = await client.get("/cluster", {"config": "true" if args.config or out.json else "false"})
    if out.json:
        out.value(answer)
        return 0
    rows = [
        (
            n.get("node_id") + (" *" if n.get("node_id") == answer.get("self") else ""),
            n.get("role"),
            n.get("status"),
            f"{n.get('seconds_since_heartbeat', 0):.1f}s ago",
            _shards(n.get("shards")),
            n.get("in_flight"),
            sum((n.get("lag") or {}).values()),
            n.get("version"),
            f"{n.get('host')}:{n.get('pid')}",
            _since(n.get("started_at")),
        )
        for n in answer.get("nodes", [])
    ]
    out.table(("NODE", "ROLE", "STATUS", "HEARTBEAT", "PARTITIONS", "IN FLIGHT", "LAG", "VERSION", "HOST", "UP"), rows)
    counts = answer.get("counts", {})
    out.line(", ".join(f"{n} {status}" for status, n in counts.items()) + " (* this server)")
    for shard, owners in (answer.get("contested") or {}).items():
        out.line(f"partition {shard} is claimed by {', '.join(owners)} (a rebalance in progress, or a stuck node)")
    if args.config:
        for n in answer.get("nodes", []):
            out.line(f"{n.get('node_id')}:")
            for key, value in sorted((n.get("config") or {}).items()):
                out.line(f"  {key} = {value}")
    return 0


async def show_trace(client: Client, args: argparse.Namespace, out: Output) -> int:
    trace = await client.get(f"/executions/{quote(args.execution_id, safe='')}/trace")
    if out.json:
        out.value(trace)
        return 0
    rows = [
        (e["sequence"], f"+{e['offset_seconds']:.3f}s", f"{e['delay_seconds'] * 1000:.1f} ms", e["type"],
         e.get("step") or "", e.get("node") or "")
        for e in trace.get("events", [])
    ]
    out.table(("SEQ", "AT", "DELAY", "EVENT", "STEP", "NODE"), rows)
    out.line(f"partition {trace.get('partition')}, {trace.get('total_seconds', 0):.3f}s in all")
    spent = ", ".join(f"{kind} {seconds:.3f}s" for kind, seconds in (trace.get("seconds_by_type") or {}).items())
    if spent:
        out.line(f"time before each kind of event: {spent}")
    for handoff in trace.get("handoffs", []):
        out.line(f"hand-off at #{handoff['sequence']}: {handoff.get('from')} -> {handoff.get('to')}")
    return 0


def _shards(shards: Any) -> str:
    if shards is None:
        return "all"
    if not shards:
        return "-"
    return ",".join(str(s) for s in shards)


def _since(started: Any) -> str:
    if not isinstance(started, int | float):
        return ""
    seconds = max(time.time() - started, 0)
    return f"{seconds / 3600:.1f}h" if seconds >= 3600 else f"{seconds / 60:.0f}m"
