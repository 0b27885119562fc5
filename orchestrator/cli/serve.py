"""``orchestrator serve | worker | migrate``: the processes of a deployment, and its schema."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from orchestrator.cli.args import Parents
from orchestrator.cli.errors import CliError
from orchestrator.cli.output import Output
from orchestrator.settings import Settings
from orchestrator.tls import redact_url

if TYPE_CHECKING:
    from orchestrator.backends.cassandra.schema import Migration


def add_commands(sub: Any, parents: Parents) -> None:
    p = sub.add_parser("serve", help="serve the REST API and webhooks")
    p.add_argument("--host", help="default: env ORCHESTRATOR_HOST or 127.0.0.1")
    p.add_argument("--port", type=int, help="default: env ORCHESTRATOR_PORT or 8080; 0: any")
    p.add_argument(
        "--definitions",
        action="extend",
        nargs="+",
        metavar="PATH",
        help="definition files to register at start",
    )
    p.add_argument("--event-log", metavar="URL", help="default: env or sqlite:///orchestrator.db")
    p.add_argument("--transport", metavar="URL", help="default: env or inprocess://")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("worker", help="run steps and transitions without HTTP (Kafka mode)")
    p.add_argument("--definitions", action="extend", nargs="+", metavar="PATH")
    p.add_argument("--event-log", metavar="URL", help="default: env ORCHESTRATOR_EVENT_LOG_URL")
    p.add_argument("--transport", metavar="URL", help="default: env ORCHESTRATOR_TRANSPORT_URL")
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("migrate", parents=[parents.json], help="create or upgrade the Cassandra schema")
    p.add_argument("url", nargs="?", help="cassandra://host/keyspace (default: env event log)")
    p.set_defaults(handler=cmd_migrate)


def cmd_serve(args: argparse.Namespace, out: Output) -> int:
    from orchestrator.process import run_server  # the server stack loads only for 'serve'

    settings = Settings.from_env().with_overrides(
        host=args.host,
        port=args.port,
        event_log_url=args.event_log,
        transport_url=args.transport,
        definitions=tuple(args.definitions) if args.definitions else None,
    )
    asyncio.run(run_server(settings, ready=lambda url: print(f"serving on {url}", flush=True)))
    return 0


def cmd_worker(args: argparse.Namespace, out: Output) -> int:
    from orchestrator.process import run_worker

    settings = Settings.from_env().with_overrides(
        event_log_url=args.event_log,
        transport_url=args.transport,
        definitions=tuple(args.definitions) if args.definitions else None,
    )
    asyncio.run(run_worker(settings, ready=lambda: print("worker running", flush=True)))
    return 0


def cmd_migrate(args: argparse.Namespace, out: Output) -> int:
    """Create or upgrade the Cassandra schema (tables are never created silently at start)."""
    settings = Settings.from_env()
    urls = [args.url] if args.url else [settings.event_log_url, settings.effective_registry_url]
    urls = sorted({url for url in urls if url.startswith("cassandra://")})
    if not urls:
        raise CliError("nothing to migrate: give a cassandra:// URL (sqlite:// needs none)", 2)
    from orchestrator.backends.cassandra.event_log import migrate  # the driver loads only when used

    results: dict[str, list[Migration]] = {}
    with out.progress("migrating", total=len(urls), unit="keyspaces") as advance:
        for url in urls:
            results[url] = asyncio.run(migrate(url))
            advance(1)
    if out.json:
        out.value(
            [
                {
                    "url": redact_url(url),
                    "applied": [{"version": m.version, "description": m.description} for m in applied],
                }
                for url, applied in results.items()
            ]
        )
        return 0
    for url, applied in results.items():
        for migration in applied:
            out.line(f"{redact_url(url)}: applied {migration.version}: {migration.description}")
        if not applied:
            out.line(f"{redact_url(url)}: schema is up to date")
    return 0
