"""``orchestrator retention sweep``: expire finished histories now, straight on the backends."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from orchestrator.backends.urls import EVENT_LOGS, REGISTRIES, open_backend
from orchestrator.cli.remote import print_json
from orchestrator.history.retention import RetentionSweeper, SweepReport
from orchestrator.settings import Settings


def add_commands(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "retention", help="expire finished histories of workflows that declare retention"
    )
    actions = parser.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    p = actions.add_parser("sweep", help="one sweep now (servers also sweep every interval)")
    p.add_argument("--workflow", help="only this workflow")
    p.add_argument("--event-log", metavar="URL", help="default: env ORCHESTRATOR_EVENT_LOG_URL")
    p.add_argument("--registry", metavar="URL", help="default: env, else the event log's URL")
    p.add_argument("--archive-dir", metavar="DIR", help="default: env ORCHESTRATOR_ARCHIVE_DIR")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    p.set_defaults(handler=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    settings = Settings.from_env().with_overrides(
        event_log_url=args.event_log, registry_url=args.registry, archive_dir=args.archive_dir
    )
    report = asyncio.run(_sweep(settings, args.workflow))
    if args.json:
        print_json(report.to_dict())
        return 0
    for path in report.archived:
        print(f"archived {path}")
    for workflow, reason in report.skipped.items():
        print(f"skipped {workflow}: {reason}")
    print(f"expired {len(report.expired)} executions")
    return 0


async def _sweep(settings: Settings, workflow: str | None) -> SweepReport:
    log = open_backend(EVENT_LOGS, settings.event_log_url, "event log")
    registry = open_backend(REGISTRIES, settings.effective_registry_url, "registry")
    await log.start()
    try:
        await registry.start()
        try:
            sweeper = RetentionSweeper(log, registry, clock=time.time, archive_dir=settings.archive_dir)
            return await sweeper.sweep(workflow)
        finally:
            await registry.stop()
    finally:
        await log.stop()
