"""The ``orchestrator`` command: run workflows in-process, serve, validate, demo, remote control.

``main(argv)`` returns the exit code: 0 success, 1 a failed/cancelled execution or a runtime
error, 2 a usage, input or definition error. Errors print as one line to stderr, never a
traceback. The current directory goes first on ``sys.path`` so ``python`` steps import the
user's own modules (like uvicorn's app-dir).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orchestrator
from orchestrator.backends.urls import UnknownBackend
from orchestrator.cli import data as cli_data
from orchestrator.cli import remote
from orchestrator.cli import replay as cli_replay
from orchestrator.cli import retention as cli_retention
from orchestrator.cli import triggers as cli_triggers
from orchestrator.cli.remote import CliError, print_json, print_lines
from orchestrator.ports import BackendUnavailable, UnknownWorkflow
from orchestrator.runtime import InputInvalid, Runtime
from orchestrator.settings import Settings, SettingsError
from schemas.definition import WorkflowDefinition
from schemas.loader import load_definition
from schemas.validation import DefinitionError, Problem

DEFAULT_URL = "http://127.0.0.1:8080"
DEMO_EVENT_LOG = "sqlite:///orchestrator-demo.db"
DEMO_HOOK = "github-push"
DEMO_SECRET_NAME = "GITHUB_WEBHOOK"
DEMO_TIMEOUT = 30.0


# -- run -----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    definitions = [load_file(path) for path in [args.file, *args.with_files]]
    value = remote.parse_json_arg(args.input, "input")
    settings = Settings.from_env().with_overrides(event_log_url=args.event_log)
    if not args.json:
        return asyncio.run(_run(settings, definitions, value, args))
    out = sys.stdout  # keep stdout pure JSON: whatever steps print goes to stderr
    with contextlib.redirect_stdout(sys.stderr):
        return asyncio.run(_run(settings, definitions, value, args, out))


async def _run(
    settings: Settings,
    definitions: list[WorkflowDefinition],
    value: Any,
    args: argparse.Namespace,
    json_out: Any = None,
) -> int:
    async with Runtime(settings, recover=False) as runtime:
        stored = [await runtime.register(d) for d in definitions]
        main = stored[0]
        started = await runtime.start_execution(main.name, value, version=main.version)
        execution_id = started.execution_id
        remote.stderr(f"started {main.name} v{main.version}: {execution_id}")
        try:
            final = await runtime.wait(execution_id, args.timeout)
        except TimeoutError:
            raise CliError(
                f"execution {execution_id} still running after {args.timeout:g}s; it stays in "
                "the event log and 'orchestrator serve' on the same log resumes it"
            ) from None
        events = [e.to_cloudevent() for e in await runtime.history(execution_id)]
    execution = final.to_dict()
    if json_out is not None:
        print(json.dumps(remote.result_json(execution, events), indent=2, default=str), file=json_out)
    else:
        print_lines(remote.result_lines(execution, events))
    return remote.exit_code(final.status)


def load_file(path: str) -> WorkflowDefinition:
    """Load one definition; CliError (exit 2) listing every problem, prefixed by the file."""
    try:
        return load_definition(path)
    except DefinitionError as exc:
        raise CliError(f"invalid workflow definition {path}", 2, _problems(exc.problems)) from None


def _problems(problems: Sequence[Problem]) -> list[str]:
    return [f"{p.location}: {p.message}" for p in problems]


# -- validate, serve -----------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    for path in args.files:
        try:
            definition = load_definition(path)
        except DefinitionError as exc:
            problems = [{"location": p.location, "message": p.message} for p in exc.problems]
            results.append({"file": path, "valid": False, "problems": problems})
        else:
            results.append({"file": path, "valid": True, "name": definition.name, "problems": []})
    if args.json:
        print_json(results)
    else:
        _print_validation(results)
    return 0 if all(result["valid"] for result in results) else 1


def _print_validation(results: list[dict[str, Any]]) -> None:
    """``ok: NAME`` on stdout; each invalid file and all its problems on stderr."""
    for result in results:
        if result["valid"]:
            print(f"ok: {result['name']} ({result['file']})")
            continue
        count = len(result["problems"])
        print(f"invalid: {result['file']} ({count} problem{'s' * (count != 1)})", file=sys.stderr)
        for problem in result["problems"]:
            print(f"  {result['file']}: {problem['location']}: {problem['message']}", file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> int:
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


def cmd_worker(args: argparse.Namespace) -> int:
    from orchestrator.process import run_worker

    settings = Settings.from_env().with_overrides(
        event_log_url=args.event_log,
        transport_url=args.transport,
        definitions=tuple(args.definitions) if args.definitions else None,
    )
    asyncio.run(run_worker(settings, ready=lambda: print("worker running", flush=True)))
    return 0


# -- demo ----------------------------------------------------------------------------------


def examples_dir() -> Path:
    """The repository's examples next to the package, else ./examples."""
    packaged = Path(orchestrator.__file__).resolve().parent.parent / "examples"
    return packaged if packaged.is_dir() else Path.cwd() / "examples"


def cmd_demo(args: argparse.Namespace) -> int:
    examples = examples_dir()
    if not (examples / "github_push.yaml").is_file():
        raise CliError(f"the examples are missing (looked in {examples})")
    sys.path.insert(0, str(examples.parent))  # the example functions are examples.<module>
    settings = Settings.from_env()
    if not os.environ.get("ORCHESTRATOR_EVENT_LOG_URL"):
        settings = settings.with_overrides(event_log_url=DEMO_EVENT_LOG)
    secret = settings.secret(DEMO_SECRET_NAME) or "demo-secret-" + uuid.uuid4().hex[:8]
    settings = settings.with_overrides(
        host="127.0.0.1",
        port=args.port,
        definitions=tuple(str(p) for p in sorted(examples.glob("*.yaml"))),
        secrets={**settings.secrets, DEMO_SECRET_NAME: secret},
    )
    print(f"1. starting the orchestrator (event log {settings.event_log_url})")
    return asyncio.run(_demo(settings, examples, secret))


async def _demo(settings: Settings, examples: Path, secret: str) -> int:
    from orchestrator.process import run_server
    from triggers.signatures import GITHUB_HEADER, sign_github

    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_ready(url: str) -> None:
        if not ready.done():
            ready.set_result(url)

    server = asyncio.create_task(run_server(settings, ready=on_ready))
    try:
        either: set[asyncio.Future[Any]] = {ready, server}
        await asyncio.wait(either, timeout=DEMO_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if server.done():
            server.result()  # raises what stopped it
        if not ready.done():
            raise CliError(f"the server did not start within {DEMO_TIMEOUT:g}s")
        url = ready.result()
        body = (examples / "github_push_payload.json").read_bytes()
        headers = {
            GITHUB_HEADER: sign_github(secret, body),
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "Content-Type": "application/json",
        }
        print(f"   serving on {url}")
        print(f"2. POST {url}/hooks/{DEMO_HOOK}  (GitHub push, signed with {GITHUB_HEADER})")
        async with remote.Client(url) as client:
            status, answer = await client.call("POST", f"/hooks/{DEMO_HOOK}", data=body, headers=headers)
            print(f"   -> {status} {json.dumps(answer)}")
            execution_id = answer["execution_id"]
            print(f"3. waiting for execution {execution_id}")
            execution = await client.wait(execution_id, DEMO_TIMEOUT)
            events = await client.history(execution_id)
        print("4. its history, read back from the event log:")
        print_lines(remote.result_lines(execution, events))
        here = "" if Path.cwd() == examples.parent else f"cd {examples.parent} && "
        print(f"\nnext: {here}orchestrator run examples/order_flow.yaml --input @examples/order_input.json")
        return remote.exit_code(str(execution.get("status")))
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server


# -- migrate -------------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create or upgrade the Cassandra schema (tables are never created silently at start)."""
    settings = Settings.from_env()
    urls = [args.url] if args.url else [settings.event_log_url, settings.effective_registry_url]
    urls = sorted({url for url in urls if url.startswith("cassandra://")})
    if not urls:
        raise CliError("nothing to migrate: give a cassandra:// URL (sqlite:// needs none)", 2)
    from orchestrator.backends.cassandra.event_log import migrate  # the driver loads only when used

    for url in urls:
        applied = asyncio.run(migrate(url))
        for migration in applied:
            print(f"{url}: applied {migration.version}: {migration.description}")
        if not applied:
            print(f"{url}: schema is up to date")
    return 0


# -- the parser and main -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Event-sourced workflow orchestrator: run, serve, validate, demo and control.",
        epilog="New here? Try 'orchestrator demo'.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="machine-readable JSON output")
    server = argparse.ArgumentParser(add_help=False, parents=[as_json])
    server.add_argument(
        "--url",
        default=os.environ.get("ORCHESTRATOR_URL") or DEFAULT_URL,
        help="server URL (env ORCHESTRATOR_URL; default %(default)s)",
    )

    p = sub.add_parser("run", parents=[as_json], help="run a workflow in-process to its end")
    p.add_argument("file", help="workflow definition (YAML or JSON)")
    p.add_argument("--input", metavar="JSON", help="input JSON, or @file")
    p.add_argument(
        "--with",
        dest="with_files",
        action="extend",
        nargs="+",
        default=[],
        metavar="FILE",
        help="more definitions to register (e.g. child workflows)",
    )
    p.add_argument("--event-log", metavar="URL", help="default: env or sqlite:///orchestrator.db")
    p.add_argument("--timeout", type=float, metavar="S", help="give up waiting after S seconds")
    p.set_defaults(handler=cmd_run)

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

    p = sub.add_parser("validate", parents=[as_json], help="check definition files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("demo", help="webhook -> workflow -> history, all on this machine")
    p.add_argument("--port", type=int, default=0, help="port to serve on (0: any free one)")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("migrate", help="create or upgrade the Cassandra schema")
    p.add_argument("url", nargs="?", help="cassandra://host/keyspace (default: env event log)")
    p.set_defaults(handler=cmd_migrate)

    cli_retention.add_commands(sub)
    cli_replay.add_commands(sub)
    cli_data.add_commands(sub)
    _add_remote(sub, server)
    cli_triggers.add_commands(sub, server)
    return parser


def _add_remote(sub: Any, server: argparse.ArgumentParser) -> None:
    def add(name: str, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, parents=[server], help=help)
        parser.set_defaults(handler=remote.run_remote)
        return parser

    add("register", "register a definition file").add_argument("file")
    add("definitions", "list the latest definitions")
    p = add("start", "start an execution")
    p.add_argument("workflow")
    p.add_argument("--input", metavar="JSON", help="input JSON, or @file")
    p.add_argument("--version", type=int)
    p.add_argument("--idempotency-key", help="starts at most one execution per key")
    p.add_argument("--wait", action="store_true", help="wait for the end and show the history")
    p.add_argument("--timeout", type=float, metavar="S", help="with --wait: give up after S s")
    p = add("executions", "list executions, newest first")
    p.add_argument("--workflow")
    p.add_argument("--status", choices=sorted(remote.TERMINAL | {"running"}))
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--cursor")
    add("get", "show one execution").add_argument("id")
    p = add("history", "show an execution's history")
    p.add_argument("id")
    p.add_argument("--type", help="only these event types, comma-separated")
    p = add("state", "show an execution's state")
    p.add_argument("id")
    p.add_argument("--at", type=int, metavar="SEQ", help="the state after event SEQ")
    p = add("diff", "compare two executions: history (first divergence) and state")
    p.add_argument("a", metavar="A", help="execution id")
    p.add_argument("b", metavar="B", help="execution id")
    p = add("definitions-diff", "what changed between two versions of a definition, and is it compatible")
    p.add_argument("name")
    p.add_argument("v1", nargs="?", type=int, metavar="V1", help="default: the version before V2")
    p.add_argument("v2", nargs="?", type=int, metavar="V2", help="default: the latest")
    p = add("signal", "send a signal to one execution")
    p.add_argument("id")
    p.add_argument("name")
    p.add_argument("--payload", metavar="JSON", help="payload JSON, or @file")
    p = add("event", "publish an event to executions waiting on its correlation key")
    p.add_argument("name")
    p.add_argument("--key", required=True, help="correlation key")
    p.add_argument("--payload", metavar="JSON", help="payload JSON, or @file")
    p = add("cancel", "cancel an execution")
    p.add_argument("id")
    p.add_argument("--reason", default="")
    p = add("redrive", "re-run a finished execution as a new one, reusing what succeeded")
    p.add_argument("id")
    origin = p.add_mutually_exclusive_group()
    origin.add_argument("--from-step", metavar="STEP", help="reuse the steps that succeeded before STEP")
    origin.add_argument("--from-failure", action="store_true", help="re-run from the step that failed")
    p.add_argument("--input", metavar="JSON", help="new input JSON, or @file (default: the original's)")
    p.add_argument("--version", type=int, help="definition version (default: the original's)")
    p.add_argument("--idempotency-key", help="redrives at most once per key")
    p.add_argument("--wait", action="store_true", help="wait for the end and show the history")
    p.add_argument("--timeout", type=float, metavar="S", help="with --wait: give up after S s")
    p = add("redrive-bulk", "redrive every matching finished execution (a dry run unless --execute)")
    p.add_argument("--workflow", required=True)
    p.add_argument("--status", default="failed", choices=sorted(remote.TERMINAL))
    p.add_argument("--failing-step", metavar="STEP", help="only those whose ExecutionFailed names STEP")
    p.add_argument("--since", metavar="TIME", help="started at or after (RFC 3339)")
    p.add_argument("--until", metavar="TIME", help="started before (RFC 3339)")
    origin = p.add_mutually_exclusive_group()
    origin.add_argument("--from-step", metavar="STEP")
    origin.add_argument("--from-failure", action="store_true")
    p.add_argument("--execute", action="store_true", help="redrive them (default: only list)")
    p.add_argument("--rate", type=float, default=10.0, metavar="N", help="starts per second (default 10)")
    p.add_argument("--limit", type=int, default=100, help="at most N executions (default 100)")
    p.add_argument("--idempotency-key", help="batch key (default: derived from the filters)")


def _error_of(exc: BaseException) -> CliError | None:
    """The one-line report of a known exception."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, DefinitionError):
        return CliError("invalid workflow definition", 2, _problems(exc.problems))
    if isinstance(exc, InputInvalid):
        return CliError("the input does not match the input schema", 2, _problems(exc.problems))
    if isinstance(exc, UnknownWorkflow | SettingsError | UnknownBackend):
        return CliError(str(exc), 2)
    if isinstance(exc, BackendUnavailable | OSError):
        return CliError(str(exc))
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run one command; returns the exit code."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    level = logging.INFO if args.verbose or args.command in ("serve", "worker") else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # our adapters report connection trouble once, clearly; not every retry
        for noisy in ("aiokafka", "cassandra"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        remote.stderr("interrupted")
        return 130
    except Exception as exc:
        error = _error_of(exc) or CliError(f"{type(exc).__name__}: {exc}")
        remote.stderr(f"error: {error}")
        for detail in error.details:
            remote.stderr(f"  {detail}")
        return error.code
