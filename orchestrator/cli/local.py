"""``orchestrator run | validate | demo``: workflows in this process, definition checks, the tour.

``run`` starts a Runtime on the event log, runs one execution to its end and shows its history;
``demo`` serves the examples, posts a signed webhook to itself and shows what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import orchestrator
from connectors.defaults import default_connectors
from orchestrator.cli.args import Parents, finite_number, load_file, parse_json_arg
from orchestrator.cli.client import Client
from orchestrator.cli.errors import CliError
from orchestrator.cli.output import Output
from orchestrator.cli.results import exit_code, result_json, show_result
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from orchestrator.tls import redact_url
from schemas.definition import WorkflowDefinition
from schemas.dependencies import connector_problems, dependency_order
from schemas.loader import load_definition
from schemas.validation import DefinitionError, Problem

DEMO_EVENT_LOG = "sqlite:///orchestrator-demo.db"
DEMO_HOOK = "github-push"
DEMO_SECRET_NAME = "GITHUB_WEBHOOK"
DEMO_TIMEOUT = 30.0
DEMO_KEY_SECONDS = 3600.0  # the demo's own API key (operator), revoked when the demo ends


def add_commands(sub: Any, parents: Parents) -> None:
    p = sub.add_parser("run", parents=[parents.json], help="run a workflow in-process to its end")
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
    p.add_argument("--timeout", type=finite_number, metavar="S", help="give up waiting after S seconds")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("validate", parents=[parents.json], help="check definition files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("demo", help="webhook -> workflow -> history, all on this machine")
    p.add_argument("--port", type=int, default=0, help="port to serve on (0: any free one)")
    p.set_defaults(handler=cmd_demo)


# -- run -----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, out: Output) -> int:
    definitions = [load_file(path) for path in [args.file, *args.with_files]]
    value = parse_json_arg(args.input, "input")
    settings = Settings.from_env().with_overrides(event_log_url=args.event_log)
    if not args.json:
        return asyncio.run(_run(settings, definitions, value, args, out))
    # Keep stdout pure JSON: whatever steps print goes to stderr (``out`` keeps the real stdout).
    with contextlib.redirect_stdout(sys.stderr):
        return asyncio.run(_run(settings, definitions, value, args, out))


def cli_actor() -> str:
    """The actor of what the CLI does itself: ``cli:<os user>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"cli:{user}"


async def _run(
    settings: Settings,
    definitions: list[WorkflowDefinition],
    value: Any,
    args: argparse.Namespace,
    out: Output,
) -> int:
    order, problems = dependency_order(definitions)
    if problems:
        raise DefinitionError(problems)
    async with Runtime(settings, recover=False) as runtime:
        stored = {index: await runtime.register(definitions[index]) for index in order}  # children first
        main = stored[0]
        started = await runtime.start_execution(main.name, value, version=main.version, actor=cli_actor())
        execution_id = started.execution_id
        out.note(f"started {main.name} v{main.version}: {execution_id}")
        try:
            final = await runtime.wait(execution_id, args.timeout)
        except TimeoutError:
            raise CliError(
                f"execution {execution_id} still running after {args.timeout:g}s; it stays in "
                "the event log and 'orchestrator serve' on the same log resumes it"
            ) from None
        events = [e.to_cloudevent() for e in await runtime.history(execution_id)]
    execution = final.to_dict()
    if out.json:
        out.value(result_json(execution, events))
    else:
        show_result(out, execution, events)
    return exit_code(final.status)


# -- validate ------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace, out: Output) -> int:
    """Every file gets its verdict, whatever it holds; exit 2 if any is invalid."""
    connectors = default_connectors().names()  # built, never started: only their names
    results = [_validate_file(path, connectors) for path in args.files]
    if out.json:
        out.value(results)
    else:
        _show_validation(out, results)
    return 0 if all(result["valid"] for result in results) else 2


def _validate_file(path: str, connectors: list[str]) -> dict[str, Any]:
    """One file's verdict: the definition on its own, and its connectors against the default set
    (child workflows are checked against the registry when registered, not here)."""
    try:
        definition = load_definition(path)
        problems = connector_problems(definition, connectors)
    except DefinitionError as exc:
        problems = exc.problems
    except Exception as exc:  # a last resort: one file must never stop the report on the others
        problems = [Problem(path, f"cannot be validated: {type(exc).__name__}: {exc}")]
    else:
        if not problems:
            return {"file": path, "valid": True, "name": definition.name, "problems": []}
    listed = [{"location": p.location, "message": " ".join(p.message.split())} for p in problems]
    return {"file": path, "valid": False, "problems": listed}


def _show_validation(out: Output, results: list[dict[str, Any]]) -> None:
    """``ok: NAME`` on stdout; each invalid file and all its problems on stderr, one line each."""
    for result in results:
        if result["valid"]:
            out.line(f"ok: {result['name']} ({result['file']})")
            continue
        count = len(result["problems"])
        out.note(f"invalid: {result['file']} ({count} problem{'s' * (count != 1)})")
        for problem in result["problems"]:
            where = "" if problem["location"] == result["file"] else f"{problem['location']}: "
            out.note(f"  {result['file']}: {where}{problem['message']}")


# -- demo ----------------------------------------------------------------------------------


def examples_dir() -> Path:
    """The repository's examples next to the package, else ./examples."""
    packaged = Path(orchestrator.__file__).resolve().parent.parent / "examples"
    return packaged if packaged.is_dir() else Path.cwd() / "examples"


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
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
        python_allow=settings.python_allow or ("examples",),  # the example functions, nothing else
    )
    out.line(f"1. starting the orchestrator (event log {redact_url(settings.event_log_url)})")
    return asyncio.run(_demo_with_key(settings, examples, secret, out))


async def _demo_with_key(settings: Settings, examples: Path, secret: str, out: Output) -> int:
    """The demo, reading back with an operator key made for it (revoked when it ends)."""
    from orchestrator.auth.control import access_control
    from orchestrator.stores import open_access_store

    if not settings.auth:
        return await _demo(settings, examples, secret, out, None)
    async with open_access_store(settings) as store:
        keys = access_control(store, settings).keys
        created = await keys.create(
            "demo", "default", {"default": ["operator"]}, expires_in=DEMO_KEY_SECONDS, created_by=cli_actor()
        )
    try:
        return await _demo(settings, examples, secret, out, created.key)
    finally:
        async with open_access_store(settings) as store:
            await access_control(store, settings).keys.revoke(created.record.key_id)


async def _demo(settings: Settings, examples: Path, secret: str, out: Output, api_key: str | None) -> int:
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
        out.line(f"   serving on {url}")
        out.line(f"2. POST {url}/hooks/{DEMO_HOOK}  (GitHub push, signed with {GITHUB_HEADER})")
        async with Client(url, api_key=api_key) as client:
            status, answer = await client.call("POST", f"/hooks/{DEMO_HOOK}", data=body, headers=headers)
            out.line(f"   -> {status} {json.dumps(answer)}")
            if answer.get("created") is False:  # a demo run before on this event log
                out.line("   (this signed body was accepted before, within the replay window: nothing new started)")
            execution_id = answer["execution_id"]
            out.line(f"3. waiting for execution {execution_id}")
            execution = await client.wait(execution_id, DEMO_TIMEOUT)
            events = await client.history(execution_id)
        out.line("4. its history, read back from the event log:")
        show_result(out, execution, events)
        here = "" if Path.cwd() == examples.parent else f"cd {examples.parent} && "
        out.line(
            f"\nnext: {here}orchestrator run examples/order_flow.yaml --input @examples/order_input.json"
        )
        return exit_code(str(execution.get("status")))
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
