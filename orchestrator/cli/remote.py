"""CLI commands that talk to a running server over HTTP, and the output helpers the CLI shares.

Every command is one small coroutine over a :class:`Client`; errors become :class:`CliError`,
which ``orchestrator.cli.main.main`` prints as one line (plus any listed problems), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from orchestrator.history import timeline
from schemas.loader import load_data, load_definition

API = "/api/v1"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
POLL_SECONDS = 0.2
HISTORY_PAGE = 500


class CliError(Exception):
    """A failure to report in one line (plus ``details``), with the process exit code."""

    def __init__(self, message: str, code: int = 1, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.details = list(details)


# -- shared output and argument helpers -----------------------------------------------------


def parse_json_arg(raw: str | None, what: str) -> Any:
    """``--input``/``--payload``: inline JSON, or ``@path`` to read it from a file."""
    if raw is None:
        return None
    text, source = raw, what
    if raw.startswith("@"):
        source = raw[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read {what} file {source}: {exc.strerror}", code=2) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{source} is not valid JSON: {exc}", code=2) from None


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def print_lines(lines: Sequence[str]) -> None:
    print("\n".join(lines))


def exit_code(status: str) -> int:
    """0 for a succeeded execution, 1 for anything else."""
    return 0 if status == "succeeded" else 1


def result_lines(
    execution: Mapping[str, Any], events: Sequence[Mapping[str, Any]], with_history: bool = True
) -> list[str]:
    """Header, history timeline, then the outcome: what ``run``, ``start --wait`` and ``demo`` show."""
    lines = [
        f"execution {execution.get('execution_id')}  {execution.get('workflow')} v{execution.get('version')}"
    ]
    if with_history:
        lines += ["", *timeline.render(timeline.build(events)), ""]
    status = str(execution.get("status"))
    lines.append(f"status: {status}")
    if status == "succeeded":
        lines.append("output: " + json.dumps(execution.get("output"), indent=2, default=str))
    elif execution.get("error") is not None:
        lines.append("error: " + json.dumps(execution.get("error"), default=str))
    return lines


def result_json(execution: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    keys = ("execution_id", "workflow", "version", "status", "output", "error")
    return {
        **{key: execution.get(key) for key in keys},
        "timeline": timeline.build(events).to_dict(),
        "history": list(events),
    }


# -- the HTTP client ------------------------------------------------------------------------


class Client:
    """A JSON client for one server: ``async with Client(url) as client``."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """(status, parsed JSON body); CliError for an unreachable server or an error status."""
        assert self._session is not None, "use 'async with Client(...)'"
        payload = data if data is not None else None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})} if payload else headers
        try:
            async with self._session.request(
                method, self.url + path, data=payload, params=params, headers=sent
            ) as response:
                status, text = response.status, await response.text()
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or str(exc.os_error)
            raise CliError(f"server not reachable at {self.url} ({reason})") from None
        except TimeoutError:
            raise CliError(f"no answer from {self.url} within {self._timeout.total:g}s") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise CliError(f"request to {self.url}{path} failed: {exc or type(exc).__name__}") from None
        try:
            parsed = json.loads(text) if text else None
        except json.JSONDecodeError:
            parsed = text
        if status >= 400:
            raise _http_error(method, path, status, parsed)
        return status, parsed

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return (await self.call("GET", API + path, params=params))[1]

    async def post(self, path: str, body: Any, headers: Mapping[str, str] | None = None) -> Any:
        return (await self.call("POST", API + path, body=body, headers=headers))[1]

    async def history(self, execution_id: str, types: str | None = None) -> list[dict[str, Any]]:
        """Every event, following ``next_after`` until the end."""
        events: list[dict[str, Any]] = []
        after = 0
        while True:
            params = {"after": str(after), "limit": str(HISTORY_PAGE)}
            if types:
                params["type"] = types
            page = await self.get(f"/executions/{execution_id}/history", params)
            events += page.get("events", [])
            following = page.get("next_after")
            if following is None or following == after:
                return events
            after = int(following)

    async def wait(self, execution_id: str, timeout: float | None) -> dict[str, Any]:
        """Poll the execution until it ends; CliError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            execution: dict[str, Any] = await self.get(f"/executions/{execution_id}")
            if execution.get("status") in TERMINAL:
                return execution
            if deadline is not None and time.monotonic() > deadline:
                raise CliError(f"execution {execution_id} still running after {timeout:g}s")
            await asyncio.sleep(POLL_SECONDS)


def _http_error(method: str, path: str, status: int, body: Any) -> CliError:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return CliError(f"{method} {path} answered {status}: {str(body)[:200]}")
    details = [
        f"{d.get('location')}: {d.get('message')}" if isinstance(d, dict) else str(d)
        for d in error.get("details") or []
    ]
    code = 2 if error.get("code") in ("invalid_definition", "invalid_input") else 1
    return CliError(f"{error.get('message')} ({error.get('code')}, HTTP {status})", code, details)


# -- commands -------------------------------------------------------------------------------


async def register(client: Client, args: argparse.Namespace) -> int:
    definition = load_definition(args.file)  # local check: problems come with the file name
    stored = await client.post("/definitions", load_data(args.file))
    if args.json:
        print_json(stored)
    else:
        print(f"registered {stored.get('name', definition.name)} v{stored.get('version')}")
    return 0


async def definitions(client: Client, args: argparse.Namespace) -> int:
    items = (await client.get("/definitions")).get("items", [])
    if args.json:
        print_json(items)
        return 0
    hooks = [", ".join(f"/hooks/{t.get('name')}" for t in d.get("triggers") or []) or None for d in items]
    rows = [
        (d.get("name"), d.get("version"), h, d.get("description") or None)
        for d, h in zip(items, hooks, strict=True)
    ]
    print_lines(timeline.format_table(("NAME", "VERSION", "WEBHOOKS", "DESCRIPTION"), rows))
    return 0


async def start(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"workflow": args.workflow, "input": parse_json_arg(args.input, "input")}
    if args.version is not None:
        body["version"] = args.version
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    answer = await client.post("/executions", body, headers)
    execution_id = answer["execution_id"]
    if not args.wait:
        if args.json:
            print_json(answer)
        elif answer.get("created", True):
            print(f"started {execution_id}")
        else:
            print(f"{execution_id} already exists for that idempotency key; nothing started")
        return 0
    execution = await client.wait(execution_id, args.timeout)
    events = await client.history(execution_id)
    if args.json:
        print_json({**result_json(execution, events), "created": answer.get("created")})
    else:
        print_lines(result_lines(execution, events))
    return exit_code(str(execution.get("status")))


async def executions(client: Client, args: argparse.Namespace) -> int:
    params = {"limit": str(args.limit)}
    for key in ("workflow", "status", "cursor"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    page = await client.get("/executions", params)
    if args.json:
        print_json(page)
        return 0
    rows = [
        (
            e.get("execution_id"),
            e.get("workflow"),
            e.get("version"),
            e.get("status"),
            e.get("started_at"),
            e.get("updated_at"),
        )
        for e in page.get("items", [])
    ]
    headers = ("ID", "WORKFLOW", "VERSION", "STATUS", "STARTED", "UPDATED")
    print_lines(timeline.format_table(headers, rows))
    if page.get("next_cursor"):
        print(f"more: --cursor {page['next_cursor']}")
    return 0


async def get(client: Client, args: argparse.Namespace) -> int:
    execution = await client.get(f"/executions/{args.id}")
    if args.json:
        print_json(execution)
        return 0
    for key, value in execution.items():
        shown = value if isinstance(value, str | int | float) or value is None else None
        print(f"{key}: {timeline.compact(value, 200) if shown is None else shown}")
    return 0


async def history(client: Client, args: argparse.Namespace) -> int:
    events = await client.history(args.id, args.type)
    if args.json:
        print_json(events)
    else:
        print_lines(timeline.render(timeline.build(events)))
    return 0


async def state(client: Client, args: argparse.Namespace) -> int:
    params = {"at": str(args.at)} if args.at is not None else None
    value = await client.get(f"/executions/{args.id}/state", params)
    if args.json:
        print_json(value)
        return 0
    for key in ("execution_id", "workflow", "version", "status", "sequence"):
        print(f"{key}: {value.get(key)}")
    for key in ("active", "timers", "output", "error"):
        if value.get(key):
            print(f"{key}: {timeline.compact(value[key], 200)}")
    steps = value.get("steps") or {}
    if steps:
        print()
        print_lines(
            timeline.format_table(
                ("STEP", "OUTPUT"), [(name, timeline.compact(out, 100)) for name, out in steps.items()]
            )
        )
    return 0


async def signal(client: Client, args: argparse.Namespace) -> int:
    body = {"name": args.name, "payload": parse_json_arg(args.payload, "payload")}
    answer = await client.post(f"/executions/{args.id}/signals", body)
    if args.json:
        print_json(answer)
    else:
        how = "buffered until it waits for it" if answer.get("buffered") else "delivered"
        print(f"signal {args.name} {how}: {args.id} (status: {_status(answer)})")
    return 0


async def event(client: Client, args: argparse.Namespace) -> int:
    body = {
        "name": args.name,
        "correlation_key": args.key,
        "payload": parse_json_arg(args.payload, "payload"),
    }
    answer = await client.post("/events", body)
    if args.json:
        print_json(answer)
        return 0
    delivered = answer.get("delivered_to", []) if isinstance(answer, dict) else []
    targets = ", ".join(map(str, delivered)) or "no waiting execution"
    print(f"event {args.name} (key {args.key}) delivered to {len(delivered)}: {targets}")
    return 0


async def cancel(client: Client, args: argparse.Namespace) -> int:
    answer = await client.post(f"/executions/{args.id}/cancel", {"reason": args.reason})
    if args.json:
        print_json(answer)
    else:
        print(f"cancelled {args.id} (status: {_status(answer)})")
    return 0


async def redrive(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"from_step": args.from_step, "from_failure": args.from_failure}
    if args.input is not None:
        body["input"] = parse_json_arg(args.input, "input")
    if args.version is not None:
        body["version"] = args.version
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    answer = await client.post(f"/executions/{args.id}/redrive", body, headers)
    execution_id = answer["execution_id"]
    if not args.wait:
        if args.json:
            print_json(answer)
        elif not answer.get("created", True):
            print(f"{execution_id} already redrives {args.id} for that idempotency key; nothing started")
        else:
            where = f"from step {answer['from_step']}" if answer.get("from_step") else "from its input"
            reused = ", ".join(answer.get("reused") or []) or "nothing"
            print(f"redriven {args.id} as {execution_id} {where} (reused: {reused})")
        return 0
    execution = await client.wait(execution_id, args.timeout)
    events = await client.history(execution_id)
    if args.json:
        print_json(
            {**result_json(execution, events), "created": answer.get("created"), "redrive_of": args.id}
        )
    else:
        print_lines(result_lines(execution, events))
    return exit_code(str(execution.get("status")))


async def redrive_bulk(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "workflow": args.workflow,
        "status": args.status,
        "failing_step": args.failing_step,
        "started_after": args.since,
        "started_before": args.until,
        "from_step": args.from_step,
        "from_failure": args.from_failure,
        "dry_run": not args.execute,
        "rate_per_second": args.rate,
        "limit": args.limit,
    }
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    # The server paces the starts inside the request: allow for them.
    pacing = args.limit / args.rate if args.execute and args.rate > 0 else 0.0
    async with Client(client.url, timeout=30.0 + pacing) as paced:
        answer = await paced.post(
            "/executions/redrive", {k: v for k, v in body.items() if v is not None}, headers
        )
    if args.json:
        print_json(answer)
        return 0
    matched = answer.get("matched", [])
    print(f"{answer.get('count', len(matched))} matched")
    for execution_id in matched:
        print(f"  {execution_id}")
    if answer.get("dry_run", True):
        print("dry run: nothing started; add --execute to redrive them")
        return 0
    started, existing = answer.get("started", []), answer.get("existing", [])
    print(
        f"started {len(started)}" + (f", {len(existing)} already redriven by this batch" if existing else "")
    )
    for execution_id in started:
        print(f"  {execution_id}")
    for failure in answer.get("errors", []):
        print(f"error: {failure.get('execution_id')}: {failure.get('error')}", file=sys.stderr)
    return 1 if answer.get("errors") else 0


async def diff(client: Client, args: argparse.Namespace) -> int:
    from orchestrator.history.diff import render

    answer = await client.get(f"/executions/{args.a}/diff/{args.b}")
    if args.json:
        print_json(answer)
    else:
        print_lines(render(answer))
    return 0


async def definitions_diff(client: Client, args: argparse.Namespace) -> int:
    from schemas.definition_diff import render

    params = {key: str(value) for key, value in (("from", args.v1), ("to", args.v2)) if value is not None}
    answer = await client.get(f"/definitions/{args.name}/diff", params)
    if args.json:
        print_json(answer)
    else:
        print_lines(render(answer))
    return 0


def _status(answer: Any) -> str:
    return str(answer.get("status", "?")) if isinstance(answer, dict) else "?"


REMOTE_COMMANDS = {
    "register": register,
    "definitions": definitions,
    "start": start,
    "executions": executions,
    "get": get,
    "history": history,
    "state": state,
    "signal": signal,
    "event": event,
    "cancel": cancel,
    "diff": diff,
    "definitions-diff": definitions_diff,
    "redrive": redrive,
    "redrive-bulk": redrive_bulk,
}


def run_remote(args: argparse.Namespace) -> int:
    """Run the remote command named by ``args.command`` against ``args.url``."""

    async def go() -> int:
        async with Client(args.url) as client:
            return await REMOTE_COMMANDS[args.command](client, args)

    return asyncio.run(go())


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
