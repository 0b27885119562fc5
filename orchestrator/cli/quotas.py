"""``orchestrator quotas``: the tenant's quotas and their usage, from a running server."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.args import Parents
from orchestrator.cli.client import Client, remote
from orchestrator.cli.output import Output


def add_commands(sub: Any, parents: Parents) -> None:
    p = sub.add_parser("quotas", parents=[parents.server], help="the tenant's quotas and their current usage")
    p.set_defaults(handler=remote(show_quotas))


async def show_quotas(client: Client, args: argparse.Namespace, out: Output) -> int:
    answer = await client.get("/quotas")
    if out.json:
        out.value(answer)
        return 0
    rows = []
    for name, quota in (answer.get("quotas") or {}).items():
        limit = quota.get("limit")
        usage = quota.get("usage")
        rows.append((name, "none" if limit is None else limit, "" if usage is None else usage, quota.get("scope", "")))
    out.table(("QUOTA", "LIMIT", "USAGE", "SCOPE"), rows)
    out.line(f"tenant {answer.get('tenant')}")
    return 0
