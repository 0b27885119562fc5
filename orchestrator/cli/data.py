"""``orchestrator export | import | verify``: move and check data, straight on the stores.

``export`` writes the JSON Lines export format (``docs/data.md``) to a file (atomically) or
stdout; ``import`` reads one back (idempotent; exit 1 when something was not imported because it
conflicts with the target, 2 for a malformed file); ``verify`` checks every history (exit 1 on
any error, 0 when clean or only warnings). On a terminal each shows its progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any, TextIO

from orchestrator.cli.args import Parents, store_settings
from orchestrator.cli.audit import verify_audit
from orchestrator.cli.errors import CliError
from orchestrator.cli.output import Advance, Output
from orchestrator.history import archive, integrity
from orchestrator.settings import Settings
from orchestrator.stores import open_stores


def add_commands(sub: Any, parents: Parents) -> None:
    p = sub.add_parser(
        "export",
        parents=[parents.stores],
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
        parents=[parents.stores],
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
        parents=[parents.stores],
        help="check every history (sequences, summaries, registry, parents, hash chain) and the audit chain",
        description="Exit 0 when clean (warnings allowed), 1 when any error is found in a history"
        " or the audit trail's hash chain.",
    )
    p.add_argument("--workflow", metavar="W", help="only this workflow's executions")
    p.set_defaults(handler=cmd_verify)


def cmd_export(args: argparse.Namespace, out: Output) -> int:
    report = asyncio.run(_export(store_settings(args), args.workflow, args.output, out))
    to_stdout = args.output == "-"
    if out.json:
        if to_stdout:  # stdout carries the export itself
            out.value(report.to_dict(), to_stderr=True)
        else:
            out.value({"output": args.output, **report.to_dict()})
        return 0
    where = "stdout" if to_stdout else args.output
    message = (
        f"exported {report.definitions} definitions, {report.executions} executions, "
        f"{report.events} events to {where}"
    )
    if to_stdout:
        out.note(message)
    else:
        out.line(message)
    return 0


async def _export(settings: Settings, workflow: str | None, output: str, out: Output) -> archive.ExportReport:
    async with open_stores(settings) as (log, registry):
        if output == "-":
            # An export printed on a terminal would run through the progress display: none then.
            shown = (
                contextlib.nullcontext(None)
                if out.draws_tables
                else out.progress("exporting", unit="executions")
            )
            with shown as advance:
                report = await archive.export(log, registry, out.stdout, workflow=workflow, progress=advance)
            out.stdout.flush()
            return report
        try:
            with out.progress("exporting", unit="executions") as advance:
                return await archive.export_to_file(
                    log, registry, output, workflow=workflow, progress=advance
                )
        except OSError as exc:
            raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None


def cmd_import(args: argparse.Namespace, out: Output) -> int:
    if args.file == "-":
        stream: TextIO = sys.stdin
    else:
        try:
            stream = open(args.file, encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise CliError(f"cannot read {args.file}: {exc.strerror or exc}", 2) from None
    counts = archive.footer_counts(args.file) if args.file != "-" and out.shows_progress else None
    try:
        with out.progress("importing", (counts or {}).get("executions"), "executions") as advance:
            report = asyncio.run(_import(store_settings(args), stream, advance))
    except archive.ArchiveError as exc:
        raise CliError(f"{_name(args.file)}: {exc}", 2) from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{_name(args.file)}: not UTF-8 text ({exc.reason})", 2) from None
    finally:
        if stream is not sys.stdin:
            stream.close()
    if out.json:
        out.value(report.to_dict())
    else:
        out.lines(report.render())
    return 0 if report.ok else 1


async def _import(settings: Settings, stream: TextIO, advance: Advance) -> archive.ImportReport:
    async with open_stores(settings) as (log, registry):
        return await archive.import_(log, registry, stream, progress=advance)


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    settings = store_settings(args)
    chain = asyncio.run(verify_audit(settings))
    with out.progress("verifying", unit="executions") as advance:
        report = asyncio.run(_verify(settings, args.workflow, advance))
    if out.json:
        out.value({**report.to_dict(), "ok": report.ok and chain.ok, "audit": chain.to_dict()})
    else:
        out.lines([*chain.render(), *report.render()])
    return 0 if report.ok and chain.ok else 1


async def _verify(settings: Settings, workflow: str | None, advance: Advance) -> integrity.IntegrityReport:
    async with open_stores(settings) as (log, registry):
        return await integrity.verify(log, registry, workflow=workflow, progress=advance)


def _name(path: str) -> str:
    return "stdin" if path == "-" else path
