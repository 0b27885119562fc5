"""``orchestrator limits``: the concurrency keys in use, from a running server."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.args import Parents
from orchestrator.cli.client import Client, remote
from orchestrator.cli.output import Output


def add_commands(sub: Any, parents: Parents) -> None:
    p = sub.add_parser(
        "limits", parents=[parents.server], help="concurrency keys in use: limit, held, queued, oldest wait"
    )
    p.set_defaults(handler=remote(show_limits))


async def show_limits(client: Client, args: argparse.Namespace, out: Output) -> int:
    answer = await client.get("/limits")
    if out.json:
        out.value(answer)
        return 0
    rows = []
    for row in answer.get("limits") or []:
        wait = row.get("oldest_wait_seconds")
        rows.append(
            (
                row.get("workflow") or "*",
                row.get("scope", ""),
                row.get("value", ""),
                row.get("limit", ""),
                row.get("held", ""),
                row.get("queued", ""),
                "" if wait is None else f"{wait:.1f}s",
            )
        )
    out.table(("WORKFLOW", "SCOPE", "KEY", "LIMIT", "HELD", "QUEUED", "OLDEST WAIT"), rows)
    return 0
