"""``orchestrator export | import | verify``: move and check data, straight on the backends.

``export`` writes the JSON Lines export format (``docs/data.md``) to a file (atomically) or
stdout; ``import`` reads one back (idempotent; exit 1 when something was not imported because it
conflicts with the target, 2 for a malformed file); ``verify`` checks every history (exit 1 on
any error, 0 when clean or only warnings).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, TextIO

from orchestrator.cli.remote import CliError, print_json, print_lines
from orchestrator.history import archive, integrity
from orchestrator.settings import Settings


def add_commands(sub: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--event-log", metavar="URL", help="default: env or sqlite:///orchestrator.db")
    common.add_argument("--registry", metavar="URL", help="default: env, else the event log's URL")
    common.add_argument("--json", action="store_true", help="machine-readable JSON output")

    p = sub.add_parser(
        "export",
        parents=[common],
        help="write definitions and histories as JSON Lines (docs/data.md)",
        description="Stream every definition version and every execution's history to one file.",
    )
    p.add_argument("--workflow", metavar="W", help="only this workflow's definitions and executions")
    p.add_argument(
        "--output", "-o", default="-", metavar="FILE", help="where to write (default: - for stdout)"
    )
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser(
        "import",
        parents=[common],
        help="read an export back (idempotent; conflicts are reported, never overwritten)",
        description=(
            "Register the definitions and append the histories of an export file. Events the "
            "target already holds are compared and skipped. Exit 0: all imported or already "
            "present; 1: something conflicts with the target; 2: a malformed file."
        ),
    )
    p.add_argument("file", metavar="FILE", help="an export file, or - for stdin")
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser(
        "verify",
        parents=[common],
        help="check every history: sequences, summaries, registry, parents, hash chain",
        description="Exit 0 when clean (warnings allowed), 1 when any error is found.",
    )
    p.add_argument("--workflow", metavar="W", help="only this workflow's executions")
    p.set_defaults(handler=cmd_verify)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_overrides(event_log_url=args.event_log, registry_url=args.registry)


def cmd_export(args: argparse.Namespace) -> int:
    report = asyncio.run(_export(_settings(args), args.workflow, args.output))
    to_stdout = args.output == "-"
    if args.json:
        if to_stdout:  # stdout carries the export itself
            print_json_to_stderr(report.to_dict())
        else:
            print_json({"output": args.output, **report.to_dict()})
        return 0
    where = "stdout" if to_stdout else args.output
    message = (
        f"exported {report.definitions} definitions, {report.executions} executions, "
        f"{report.events} events to {where}"
    )
    print(message, file=sys.stderr if to_stdout else sys.stdout)
    return 0


async def _export(settings: Settings, workflow: str | None, output: str) -> archive.ExportReport:
    async with archive.open_backends(settings.event_log_url, settings.effective_registry_url) as (
        log,
        registry,
    ):
        if output == "-":
            report = await archive.export(log, registry, sys.stdout, workflow=workflow)
            sys.stdout.flush()
            return report
        try:
            return await archive.export_to_file(log, registry, output, workflow=workflow)
        except OSError as exc:
            raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None


def cmd_import(args: argparse.Namespace) -> int:
    if args.file == "-":
        stream: TextIO = sys.stdin
    else:
        try:
            stream = open(args.file, encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise CliError(f"cannot read {args.file}: {exc.strerror or exc}", 2) from None
    try:
        report = asyncio.run(_import(_settings(args), stream))
    except archive.ArchiveError as exc:
        raise CliError(f"{_name(args.file)}: {exc}", 2) from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{_name(args.file)}: not UTF-8 text ({exc.reason})", 2) from None
    finally:
        if stream is not sys.stdin:
            stream.close()
    if args.json:
        print_json(report.to_dict())
    else:
        print_lines(report.render())
    return 0 if report.ok else 1


async def _import(settings: Settings, stream: TextIO) -> archive.ImportReport:
    async with archive.open_backends(settings.event_log_url, settings.effective_registry_url) as (
        log,
        registry,
    ):
        return await archive.import_(log, registry, stream)


def cmd_verify(args: argparse.Namespace) -> int:
    report = asyncio.run(_verify(_settings(args), args.workflow))
    if args.json:
        print_json(report.to_dict())
    else:
        print_lines(report.render())
    return 0 if report.ok else 1


async def _verify(settings: Settings, workflow: str | None) -> integrity.IntegrityReport:
    async with archive.open_backends(settings.event_log_url, settings.effective_registry_url) as (
        log,
        registry,
    ):
        return await integrity.verify(log, registry, workflow=workflow)


def _name(path: str) -> str:
    return "stdin" if path == "-" else path


def print_json_to_stderr(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str), file=sys.stderr)
