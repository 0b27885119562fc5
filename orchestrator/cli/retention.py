"""``orchestrator retention sweep``: expire finished histories now, straight on the stores."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from orchestrator.cli.args import Parents, store_settings
from orchestrator.cli.output import Advance, Output
from orchestrator.history.retention import RetentionSweeper, SweepReport
from orchestrator.settings import Settings
from orchestrator.stores import open_stores


def add_commands(sub: Any, parents: Parents) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "retention", help="expire finished histories of workflows that declare retention"
    )
    actions = parser.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    p = actions.add_parser(
        "sweep", parents=[parents.stores], help="one sweep now (servers also sweep every interval)"
    )
    p.add_argument("--workflow", help="only this workflow")
    p.add_argument("--archive-dir", metavar="DIR", help="default: env ORCHESTRATOR_ARCHIVE_DIR")
    p.set_defaults(handler=cmd_sweep)


def cmd_sweep(args: argparse.Namespace, out: Output) -> int:
    settings = store_settings(args, archive_dir=args.archive_dir)
    with out.progress("expiring", unit="executions") as advance:
        report = asyncio.run(_sweep(settings, args.workflow, advance))
    if out.json:
        out.value(report.to_dict())
        return 0
    for path in report.archived:
        out.line(f"archived {path}")
    for workflow, reason in report.skipped.items():
        out.line(f"skipped {workflow}: {reason}")
    out.line(f"expired {len(report.expired)} executions")
    return 0


async def _sweep(settings: Settings, workflow: str | None, advance: Advance) -> SweepReport:
    async with open_stores(settings) as (log, registry):
        sweeper = RetentionSweeper(log, registry, clock=time.time, archive_dir=settings.archive_dir)
        return await sweeper.sweep(workflow, progress=advance)
