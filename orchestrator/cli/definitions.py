"""``orchestrator register | definitions | definitions-diff`` against a running server."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.args import Parents
from orchestrator.cli.client import Client, Command, remote
from orchestrator.cli.output import Output
from schemas.loader import load_data, load_definition


def add_commands(sub: Any, parents: Parents) -> None:
    def add(name: str, help: str, command: Command) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, parents=[parents.server], help=help)
        parser.set_defaults(handler=remote(command))
        return parser

    add("register", "register a definition file", register).add_argument("file")
    add("definitions", "list the latest definitions", definitions)
    p = add(
        "definitions-diff",
        "what changed between two versions of a definition, and is it compatible",
        definitions_diff,
    )
    p.add_argument("name")
    p.add_argument("v1", nargs="?", type=int, metavar="V1", help="default: the version before V2")
    p.add_argument("v2", nargs="?", type=int, metavar="V2", help="default: the latest")


async def register(client: Client, args: argparse.Namespace, out: Output) -> int:
    definition = load_definition(args.file)  # local check: problems come with the file name
    stored = await client.post("/definitions", load_data(args.file))
    if out.json:
        out.value(stored)
    else:
        out.line(f"registered {stored.get('name', definition.name)} v{stored.get('version')}")
    return 0


async def definitions(client: Client, args: argparse.Namespace, out: Output) -> int:
    items = (await client.get("/definitions")).get("items", [])
    if out.json:
        out.value(items)
        return 0
    hooks = [
        ", ".join(hook_path(t) for t in d.get("triggers") or [] if t.get("type") == "webhook") or None
        for d in items
    ]
    rows = [
        (d.get("name"), d.get("version"), h, d.get("description") or None)
        for d, h in zip(items, hooks, strict=True)
    ]
    out.table(("NAME", "VERSION", "WEBHOOKS", "DESCRIPTION"), rows)
    return 0


async def definitions_diff(client: Client, args: argparse.Namespace, out: Output) -> int:
    from schemas.definition_diff import render

    params = {key: str(value) for key, value in (("from", args.v1), ("to", args.v2)) if value is not None}
    answer = await client.get(f"/definitions/{args.name}/diff", params)
    if out.json:
        out.value(answer)
    else:
        out.lines(render(answer))
    return 0


def hook_path(trigger: dict[str, Any]) -> str:
    """Where a webhook trigger is served: ``/hooks/{name}``, or ``/hooks/{tenant}/{name}``."""
    tenant, name = trigger.get("tenant") or "default", trigger.get("name")
    return f"/hooks/{name}" if tenant == "default" else f"/hooks/{tenant}/{name}"
