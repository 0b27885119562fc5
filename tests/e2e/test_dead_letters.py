"""Dead letters in the embedded mode: poison commands parked, listed (API and CLI) and redriven.

The poison is a start pinned to a version of a workflow that the registry does not have (as a
trigger or a parent built before the version was withdrawn could submit): loading its definition
fails however often it is tried. Once the version exists, a redrive starts the execution.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.core.commands import StartExecution
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow
from tests.e2e.serverproc import REPO, cli_env

Client = TestClient[web.Request, web.Application]
LETTERS = "/api/v1/dead-letters/commands"


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with Runtime(Settings(auth=False, event_log_url="memory://", command_attempts=2)) as runtime:
        await runtime.register(Workflow("work").task("step", "noop").build())
        yield runtime


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        yield client


async def poison(runtime: Runtime, index: int) -> str:
    """Submit a start of ``work`` v9, which is not registered; returns its execution id."""
    execution_id = f"poison-{index}"
    await runtime.transport.submit(
        StartExecution(execution_id=execution_id, now=runtime.clock(), workflow="work", version=9)
    )  # in-process: tried, retried, parked, all before submit returns
    return execution_id


async def version_nine(runtime: Runtime) -> None:
    await runtime.register(Workflow("work", version=9, description="v9").task("step", "noop").build())


async def answer(response: Any, status: int) -> Any:
    text = await response.text()
    assert response.status == status, text
    assert "Traceback" not in text
    return json.loads(text)


async def test_poison_starts_are_parked_listed_and_redriven(runtime: Runtime, client: Client) -> None:
    ids = [await poison(runtime, index) for index in range(3)]
    page = await answer(await client.get(LETTERS), 200)
    assert page["next_cursor"] is None and [x["execution_id"] for x in page["items"]] == ids
    first = page["items"][0]
    assert (first["id"], first["command_type"], first["error_type"], first["attempts"]) == (
        "0",
        "StartExecution",
        "UnknownWorkflow",
        2,
    )
    assert "no version 9" in first["error_message"]
    assert await runtime.log.summary(ids[0]) is None  # nothing was appended

    two = await answer(await client.get(LETTERS, params={"limit": "2"}), 200)
    assert [x["id"] for x in two["items"]] == ["0", "1"] and two["next_cursor"] == "2"
    rest = await answer(await client.get(LETTERS, params={"cursor": two["next_cursor"]}), 200)
    assert [x["id"] for x in rest["items"]] == ["2"] and rest["next_cursor"] is None

    await version_nine(runtime)
    redriven = await answer(await client.post(f"{LETTERS}/0/redrive"), 200)
    assert redriven["redriven"] is True and redriven["execution_id"] == ids[0]
    assert (await runtime.wait(ids[0], timeout=5)).status == "succeeded"
    assert len((await answer(await client.get(LETTERS), 200))["items"]) == 3  # still listed


async def test_bad_paging_and_unknown_ids_are_clear_errors(client: Client) -> None:
    for params in ({"limit": "0"}, {"limit": "x"}, {"cursor": "abc"}, {"colour": "red"}):
        body = await answer(await client.get(LETTERS, params=params), 400)
        assert body["error"]["code"] == "invalid_parameter"
    for unknown in ("42", "nope"):
        body = await answer(await client.post(f"{LETTERS}/{unknown}/redrive"), 404)
        assert body["error"]["code"] == "unknown_dead_letter"


async def cli(client: Client, *args: str) -> tuple[int, str, str]:
    """The ``orchestrator`` command in a subprocess, against the test server (served meanwhile)."""
    env = {**cli_env("memory://"), "ORCHESTRATOR_URL": str(client.make_url("")).rstrip("/")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert b"Traceback" not in err
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_cli_lists_and_redrives_dead_letters(runtime: Runtime, client: Client) -> None:
    ids = [await poison(runtime, index) for index in range(3)]
    code, table, _ = await cli(client, "dead-letters", "list")
    assert code == 0 and table.count("StartExecution") == 3 and "UnknownWorkflow" in table
    code, paged, _ = await cli(client, "dead-letters", "list", "--limit", "2")
    assert code == 0 and "--cursor 2" in paged and ids[2] not in paged
    code, every, _ = await cli(client, "dead-letters", "list", "--json", "--limit", "2", "--all")
    assert code == 0 and [x["execution_id"] for x in json.loads(every)["items"]] == ids

    await version_nine(runtime)
    code, out, _ = await cli(client, "dead-letters", "redrive", "1")
    assert code == 0 and f"redriven dead letter 1: StartExecution for {ids[1]}" in out
    assert (await runtime.wait(ids[1], timeout=5)).status == "succeeded"

    code, _, err = await cli(client, "dead-letters", "redrive", "42")
    assert code == 1 and "unknown_dead_letter" in err
