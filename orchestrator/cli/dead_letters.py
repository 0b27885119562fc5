"""``orchestrator dead-letters list | redrive ID``: parked poison commands, against a running server."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from orchestrator.cli.args import Parents
from orchestrator.cli.client import Client, remote
from orchestrator.cli.output import Output

PATH = "/dead-letters/commands"


def add_commands(sub: Any, parents: Parents) -> None:
    group = sub.add_parser(
        "dead-letters", help="commands parked after failing again and again: list, redrive"
    )
    actions = group.add_subparsers(dest="dead_letters_action", required=True, metavar="ACTION")
    p = actions.add_parser("list", parents=[parents.server], help="parked commands, oldest first")
    p.add_argument("--limit", type=int, default=100, help="at most N per page (default 100, at most 1000)")
    p.add_argument("--cursor", help="start at this position (the next_cursor of a page)")
    p.add_argument("--all", action="store_true", help="follow next_cursor to the end")
    p.set_defaults(handler=remote(list_letters))
    p = actions.add_parser("redrive", parents=[parents.server], help="submit a parked command again")
    p.add_argument("id", help="the dead letter's id (see list)")
    p.set_defaults(handler=remote(redrive))


async def list_letters(client: Client, args: argparse.Namespace, out: Output) -> int:
    items: list[dict[str, Any]] = []
    cursor = args.cursor
    while True:
        params = {"limit": str(args.limit), **({"cursor": cursor} if cursor else {})}
        page = await client.get(PATH, params)
        items += page.get("items", [])
        cursor = page.get("next_cursor")
        if not args.all or cursor is None:
            break
    if out.json:
        out.value({"items": items, "next_cursor": cursor})
        return 0
    rows = [
        (
            letter.get("id"),
            letter.get("parked_at"),
            letter.get("command_type") or "(undecodable)",
            letter.get("execution_id"),
            letter.get("attempts"),
            f"{letter.get('error_type')}: {letter.get('error_message')}",
        )
        for letter in items
    ]
    out.table(("ID", "PARKED AT", "COMMAND", "EXECUTION", "ATTEMPTS", "ERROR"), rows)
    if cursor is not None:
        out.line(f"more: --cursor {cursor} (or --all)")
    return 0


async def redrive(client: Client, args: argparse.Namespace, out: Output) -> int:
    letter = await client.post(f"{PATH}/{quote(args.id, safe='')}/redrive", None)
    if out.json:
        out.value(letter)
    else:
        kind = letter.get("command_type") or "undecodable record"
        out.line(f"redriven dead letter {letter.get('id')}: {kind} for {letter.get('execution_id')}")
    return 0
