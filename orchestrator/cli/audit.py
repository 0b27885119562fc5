"""``orchestrator audit list | export | verify``: the audit trail, straight on the stores.

``list`` shows records oldest first with filters (``--json``: the records); ``export`` writes
every matching record as JSON Lines (the stored, verifiable bodies) or CSV, to a file or stdout,
for compliance reports; ``verify`` checks the hash chain (exit 1 when it is broken).
``orchestrator verify`` checks the chain too, beside every history. Over HTTP the same records are
``GET /api/v1/audit``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from typing import Any

from orchestrator.audit import export, query
from orchestrator.audit.verify import ChainReport, verify_chain
from orchestrator.cli.args import Parents, store_settings
from orchestrator.cli.errors import CliError
from orchestrator.cli.output import Output
from orchestrator.core.timefmt import parse_rfc3339, rfc3339
from orchestrator.settings import Settings
from orchestrator.stores import open_audit_trail


def add_commands(sub: Any, parents: Parents) -> None:
    group = sub.add_parser("audit", help="list, export and verify the audit trail (docs/security.md)")
    commands = group.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")

    filters = argparse.ArgumentParser(add_help=False, parents=[parents.stores])
    filters.add_argument("--actor", help="a subject, or kind:subject (key:alice)")
    filters.add_argument("--action", help="resource:verb, * matches anything (executions:*)")
    filters.add_argument("--resource", help="a type, or type/id (executions/ID); * matches anything")
    filters.add_argument("--tenant", help="only this tenant's records")
    filters.add_argument("--since", type=_time, metavar="TIME", help="at or after (RFC 3339)")
    filters.add_argument("--until", type=_time, metavar="TIME", help="before (RFC 3339)")

    p = commands.add_parser("list", parents=[filters], help="show records, oldest first")
    p.add_argument("--limit", type=int, default=100, help="at most N records (default 100)")
    p.add_argument("--after", type=int, default=0, metavar="SEQ", help="records after sequence SEQ")
    p.set_defaults(handler=cmd_list)

    p = commands.add_parser("export", parents=[filters], help="write records as JSON Lines or CSV")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--out", "-o", default="-", metavar="FILE", help="where to write (default: - for stdout)")
    p.set_defaults(handler=cmd_export)

    p = commands.add_parser("verify", parents=[parents.stores], help="check the hash chain (exit 1 if broken)")
    p.set_defaults(handler=cmd_verify)


def _time(text: str) -> str:
    """An RFC 3339 time as the records store it (UTC, microseconds, ``Z``)."""
    try:
        return rfc3339(parse_rfc3339(text))
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None


def _query(args: argparse.Namespace, **extra: Any) -> query.AuditQuery:
    return query.AuditQuery(
        actor=args.actor,
        action=args.action,
        resource=args.resource,
        tenant=args.tenant,
        since=args.since,
        until=args.until,
        **extra,
    )


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1", 2)
    page = asyncio.run(_list(store_settings(args), _query(args, after=args.after, limit=args.limit)))
    if out.json:
        out.value({"items": [s.to_dict() for s in page.items], "next_cursor": page.next_cursor})
        return 0
    rows = [
        (
            s.sequence, s.record.time, f"{s.record.actor.kind}:{s.record.actor.subject}", s.record.action,
            f"{s.record.resource.type}/{s.record.resource.id or ''}", s.record.tenant, s.record.outcome,
            s.record.reason or "",
        )
        for s in page.items
    ]  # fmt: skip
    out.table(("seq", "time", "actor", "action", "resource", "tenant", "outcome", "reason"), rows)
    if page.next_cursor is not None:
        out.note(f"more: --after {page.next_cursor}")
    return 0


async def _list(settings: Settings, wanted: query.AuditQuery) -> query.AuditPage:
    async with open_audit_trail(settings) as trail:
        return await query.search(trail.log, wanted)


def cmd_export(args: argparse.Namespace, out: Output) -> int:
    wanted = _query(args)
    settings = store_settings(args)
    if args.out == "-":
        count = asyncio.run(_export(settings, wanted, out.stdout, args.format))
        out.stdout.flush()
        out.note(f"exported {count} audit records")
        return 0
    directory = os.path.dirname(os.path.abspath(args.out))
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", newline="", dir=directory, prefix=".audit-", delete=False
        ) as stream:
            count = asyncio.run(_export(settings, wanted, stream, args.format))
        os.replace(stream.name, args.out)  # whole or not at all
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    if out.json:
        out.value({"output": args.out, "format": args.format, "records": count})
    else:
        out.line(f"exported {count} audit records to {args.out} ({args.format})")
    return 0


async def _export(settings: Settings, wanted: query.AuditQuery, stream: Any, format: export.Format) -> int:
    async with open_audit_trail(settings) as trail:
        return await export.write(query.every(trail.log, wanted), stream, format)


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    report = asyncio.run(verify_audit(store_settings(args)))
    if out.json:
        out.value(report.to_dict())
    else:
        out.lines(report.render())
    return 0 if report.ok else 1


async def verify_audit(settings: Settings) -> ChainReport:
    async with open_audit_trail(settings) as trail:
        return await verify_chain(trail.log)



