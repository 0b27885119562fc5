"""``orchestrator replay verify``: replay recorded executions against a version, straight on the stores.

Meant for CI before a version is deployed: exit 0 when every sampled execution replays the same,
1 when any diverges, 2 for a usage error (unknown workflow or version, a bad file or URL).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from orchestrator.cli.args import Parents, load_file, store_settings
from orchestrator.cli.errors import CliError
from orchestrator.cli.output import Advance, Output
from orchestrator.history.verify import DEFAULT_SAMPLE, MAX_SAMPLE, VerifyReport, blocks, verify_recorded
from orchestrator.settings import Settings
from orchestrator.stores import open_stores
from schemas.definition import WorkflowDefinition

STATUSES = ("running", "succeeded", "failed", "cancelled")


def _sample(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_SAMPLE:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_SAMPLE}, got {raw!r}")
    return value


def add_commands(sub: Any, parents: Parents) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "replay", help="check recorded executions against a workflow version"
    )
    actions = parser.add_subparsers(dest="replay_command", required=True, metavar="ACTION")
    p = actions.add_parser(
        "verify",
        parents=[parents.stores],
        help="would version V decide the same on recorded executions? (exit 1 if not)",
        description=(
            "Replay up to --sample recorded executions of a workflow (newest first, every "
            "version unless --recorded-version) with the graph of --version (or --file) and "
            "report the first divergence of each. Exit 0: all match; 1: a divergence; 2: usage."
        ),
    )
    p.add_argument("--workflow", required=True, help="workflow name")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, metavar="V", help="registered version (default: latest)")
    which.add_argument("--file", metavar="PATH", help="a definition file, registered or not")
    p.add_argument(
        "--sample",
        type=_sample,
        default=DEFAULT_SAMPLE,
        metavar="N",
        help="how many recorded executions (default %(default)s)",
    )
    p.add_argument("--recorded-version", type=int, metavar="X", help="only executions recorded on X")
    p.add_argument(
        "--status", action="append", choices=STATUSES, help="only executions in this status (repeatable)"
    )
    p.set_defaults(handler=cmd_verify)


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    definition = _load_file(args.file, args.workflow) if args.file else None
    with out.progress("replaying", unit="executions") as advance:
        report = asyncio.run(_verify(store_settings(args), args, definition, advance))
    if out.json:
        out.value(report.to_dict())
    else:
        out.show(blocks(report.to_dict()))
    return 0 if report.ok else 1


def _load_file(path: str, workflow: str) -> WorkflowDefinition:
    definition = load_file(path)  # exit 2 listing every problem
    if definition.name != workflow:
        raise CliError(f"{path} defines workflow {definition.name!r}, not {workflow!r}", 2)
    return definition


async def _verify(
    settings: Settings, args: argparse.Namespace, definition: WorkflowDefinition | None, advance: Advance
) -> VerifyReport:
    async with open_stores(settings) as (log, registry):
        return await verify_recorded(
            log,
            registry,
            args.workflow,
            args.version,
            args.sample,
            statuses=args.status,
            recorded_version=args.recorded_version,
            definition=definition,
            progress=advance,
        )
