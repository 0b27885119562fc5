"""The HTTP client of the commands that control a running server, and their handler adapter.

Every such command is a coroutine ``(client, args, out) -> exit code`` over a :class:`Client`;
failures become :class:`CliError`, which ``main`` prints as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import aiohttp

from orchestrator.cli.args import Handler
from orchestrator.cli.errors import CliError
from orchestrator.cli.output import Output

API = "/api/v1"
TENANT_HEADER = "X-Orchestrator-Tenant"  # the tenant the server works in for this client
API_KEY_VARIABLE = "ORCHESTRATOR_API_KEY"  # sent as Authorization: Bearer <key>
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
POLL_SECONDS = 0.2
HISTORY_PAGE = 500

Command = Callable[["Client", argparse.Namespace, Output], Awaitable[int]]


class Client:
    """A JSON client for one server and tenant: ``async with Client(url) as client``."""

    def __init__(
        self, url: str, timeout: float = 30.0, tenant: str | None = None, api_key: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.tenant = tenant  # sent as X-Orchestrator-Tenant; None: the key's (or the server's default)
        self.api_key = api_key
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
        sent = {"Content-Type": "application/json", **(headers or {})} if payload else dict(headers or {})
        if self.tenant is not None:
            sent[TENANT_HEADER] = self.tenant
        if self.api_key is not None:
            sent["Authorization"] = f"Bearer {self.api_key}"
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

    async def history(
        self, execution_id: str, types: str | None = None, *, after: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Every event after ``after`` (at most ``limit``), following ``next_after`` page by page."""
        events: list[dict[str, Any]] = []
        while limit is None or len(events) < limit:
            wanted = HISTORY_PAGE if limit is None else min(HISTORY_PAGE, limit - len(events))
            params = {"after": str(after), "limit": str(wanted)}
            if types:
                params["type"] = types
            page = await self.get(f"/executions/{execution_id}/history", params)
            events += page.get("events", [])
            following = page.get("next_after")
            if following is None or following == after:
                break
            after = int(following)
        return events

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
    if status == 401:
        hint = f"set {API_KEY_VARIABLE} to a key ('orchestrator keys create' on the server's store)"
        return CliError(f"{error.get('message')} ({error.get('code')}, HTTP 401); {hint}")
    details = [
        f"{d.get('location')}: {d.get('message')}" if isinstance(d, dict) else str(d)
        for d in error.get("details") or []
    ]
    code = 2 if error.get("code") in ("invalid_definition", "invalid_input") else 1
    return CliError(f"{error.get('message')} ({error.get('code')}, HTTP {status})", code, details)


def remote(command: Command) -> Handler:
    """The handler running ``command`` with a client for ``--url``, ``--tenant`` and the key in
    ``ORCHESTRATOR_API_KEY``."""

    def handler(args: argparse.Namespace, out: Output) -> int:
        async def go() -> int:
            api_key = os.environ.get(API_KEY_VARIABLE) or None
            async with Client(args.url, tenant=args.tenant, api_key=api_key) as client:
                return await command(client, args, out)

        return asyncio.run(go())

    return handler


def status_of(answer: Any) -> str:
    """The ``status`` of an answer, ``?`` when it has none."""
    return str(answer.get("status", "?")) if isinstance(answer, dict) else "?"
