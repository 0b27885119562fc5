"""``orchestrator doctor``: what finished executions still hold on a running server; ``--fix`` releases it."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.args import Parents
from orchestrator.cli.client import Client, remote
from orchestrator.cli.output import Output


def add_commands(sub: Any, parents: Parents) -> None:
    p = sub.add_parser(
        "doctor",
        parents=[parents.server],
        help="find timers, waits, queued tasks and parked commands of finished executions",
    )
    p.add_argument("--fix", action="store_true", help="release what was found (cancel, remove, drop)")
    p.set_defaults(handler=remote(run_doctor))


async def run_doctor(client: Client, args: argparse.Namespace, out: Output) -> int:
    answer = await (client.post("/doctor", {}) if args.fix else client.get("/doctor"))
    if out.json:
        out.value(answer)
        return 0
    rows = [
        (leak["kind"], leak["execution_id"], leak["status"], _detail(leak["detail"]), "yes" if leak["fixed"] else "")
        for leak in answer.get("leaks") or []
    ]
    out.table(("KIND", "EXECUTION", "STATUS", "DETAIL", "FIXED"), rows)
    checked = ", ".join(f"{kind} {count}" for kind, count in (answer.get("checked") or {}).items())
    out.line(f"{len(rows)} leaks; checked: {checked or 'nothing'}")
    return 0


def _detail(detail: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in detail.items())
