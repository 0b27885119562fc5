"""``orchestrator replay verify``: replay recorded executions against a version, straight on the backends.

Meant for CI before a version is deployed: exit 0 when every sampled execution replays the same,
1 when any diverges, 2 for a usage error (unknown workflow or version, a bad file or URL).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from orchestrator.backends.urls import EVENT_LOGS, REGISTRIES, open_backend
from orchestrator.cli.remote import CliError, print_json, print_lines
from orchestrator.history.verify import DEFAULT_SAMPLE, MAX_SAMPLE, VerifyReport, verify_recorded
from orchestrator.settings import Settings
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


def add_commands(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "replay", help="check recorded executions against a workflow version"
    )
    actions = parser.add_subparsers(dest="replay_command", required=True, metavar="ACTION")
    p = actions.add_parser(
        "verify",
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
    p.add_argument("--event-log", metavar="URL", help="default: env or sqlite:///orchestrator.db")
    p.add_argument("--registry", metavar="URL", help="default: env, else the event log's URL")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    p.set_defaults(handler=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    definition = _load_file(args.file, args.workflow) if args.file else None
    settings = Settings.from_env().with_overrides(event_log_url=args.event_log, registry_url=args.registry)
    report = asyncio.run(_verify(settings, args, definition))
    if args.json:
        print_json(report.to_dict())
    else:
        print_lines(report.render())
    return 0 if report.ok else 1


def _load_file(path: str, workflow: str) -> WorkflowDefinition:
    from orchestrator.cli.main import load_file  # exit 2 listing every problem

    definition = load_file(path)
    if definition.name != workflow:
        raise CliError(f"{path} defines workflow {definition.name!r}, not {workflow!r}", 2)
    return definition


async def _verify(
    settings: Settings, args: argparse.Namespace, definition: WorkflowDefinition | None
) -> VerifyReport:
    log = open_backend(EVENT_LOGS, settings.event_log_url, "event log")
    registry = open_backend(REGISTRIES, settings.effective_registry_url, "registry")
    await log.start()
    try:
        await registry.start()
        try:
            return await verify_recorded(
                log,
                registry,
                args.workflow,
                args.version,
                args.sample,
                statuses=args.status,
                recorded_version=args.recorded_version,
                definition=definition,
            )
        finally:
            await registry.stop()
    finally:
        await log.stop()
