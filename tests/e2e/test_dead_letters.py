"""Dead letters in the embedded mode: poison commands parked, listed (API and CLI) and redriven.

The poison is a parent's child start pinned to a version of the child that the registry does not
have yet: loading its definition fails however often it is tried. Once the version exists, a
redrive starts the child and the parent finishes.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.e2e.serverproc import ServerProcess, cli_env, http_json
from tests.e2e.test_cli import cli, ok

Client = TestClient[web.Request, web.Application]
LETTERS = "/api/v1/dead-letters/commands"


def child(version_note: str) -> dict[str, Any]:
    return {
        "name": "child",
        "description": version_note,
        "steps": [
            {"name": "work", "type": "task", "connector": "noop", "next": "done"},
            {"name": "done", "type": "succeed"},
        ],
    }


PARENT = {
    "name": "parent",
    "steps": [
        {"name": "call", "type": "subworkflow", "workflow": "child", "version": 2, "next": "done"},
        {"name": "done", "type": "succeed"},
    ],
}


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    settings = Settings(event_log_url="memory://", command_attempts=2)
    runtime = Runtime(settings)
    async with runtime, TestClient(TestServer(build_app(runtime, settings))) as client:
        for definition in (child("v1"), PARENT):
            assert (await client.post("/api/v1/definitions", json=definition)).status == 201
        yield client


async def answer(response: Any, status: int) -> Any:
    text = await response.text()
    assert response.status == status, text
    assert "Traceback" not in text
    return json.loads(text)


async def start_parent(client: Client) -> str:
    body = await answer(await client.post("/api/v1/executions", json={"workflow": "parent"}), 202)
    return str(body["execution_id"])


async def test_a_poison_child_start_is_parked_listed_and_redriven(client: Client) -> None:
    parents = [await start_parent(client) for _ in range(3)]
    page = await answer(await client.get(LETTERS), 200)
    assert page["next_cursor"] is None and len(page["items"]) == 3
    first = page["items"][0]
    assert (first["id"], first["command_type"], first["error_type"], first["attempts"]) == (
        "0", "StartExecution", "UnknownWorkflow", 2,
    )  # fmt: skip
    assert "no version 2" in first["error_message"]
    assert (await answer(await client.get(f"/api/v1/executions/{parents[0]}"), 200))["status"] == "running"

    two = await answer(await client.get(LETTERS, params={"limit": "2"}), 200)
    assert [x["id"] for x in two["items"]] == ["0", "1"] and two["next_cursor"] == "2"
    rest = await answer(await client.get(LETTERS, params={"cursor": two["next_cursor"]}), 200)
    assert [x["id"] for x in rest["items"]] == ["2"] and rest["next_cursor"] is None

    assert (await client.post("/api/v1/definitions", json=child("v2"))).status == 201
    redriven = await answer(await client.post(f"{LETTERS}/0/redrive"), 200)
    assert redriven["redriven"] is True and redriven["execution_id"] == first["execution_id"]
    finished = await answer(await client.get(f"/api/v1/executions/{parents[0]}"), 200)
    assert finished["status"] == "succeeded"  # in-process: the child ran within the request
    assert len((await answer(await client.get(LETTERS), 200))["items"]) == 3  # still listed


async def test_bad_paging_and_unknown_ids_are_clear_errors(client: Client) -> None:
    for params in ({"limit": "0"}, {"limit": "x"}, {"cursor": "abc"}, {"colour": "red"}):
        body = await answer(await client.get(LETTERS, params=params), 400)
        assert body["error"]["code"] == "invalid_parameter"
    body = await answer(await client.post(f"{LETTERS}/42/redrive"), 404)
    assert body["error"]["code"] == "unknown_dead_letter"
    assert (await answer(await client.post(f"{LETTERS}/nope/redrive"), 404))["error"][
        "code"
    ] == "unknown_dead_letter"


# -- the CLI against a real server ---------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = cli_env(f"sqlite:///{tmp_path}/x.db", {"ORCHESTRATOR_COMMAND_ATTEMPTS": "2"})
    process = ServerProcess(env, [], tmp_path / "server.log")
    try:
        url = process.start()
        yield {**env, "ORCHESTRATOR_URL": url}
    finally:
        process.stop()
        print(process.output())  # shown when a test fails


def test_the_cli_lists_and_redrives_dead_letters(server: dict[str, str]) -> None:
    url = server["ORCHESTRATOR_URL"]
    for definition in (child("v1"), PARENT):
        assert http_json("POST", url + "/api/v1/definitions", definition)[0] == 201
    status, started = http_json("POST", url + "/api/v1/executions", {"workflow": "parent"})
    assert status == 202
    table = ok(cli(server, "dead-letters", "list"))
    assert "StartExecution" in table and "UnknownWorkflow" in table
    [letter] = json.loads(ok(cli(server, "dead-letters", "list", "--json", "--all")))["items"]
    assert letter["attempts"] == 2

    assert http_json("POST", url + "/api/v1/definitions", child("v2"))[0] == 201
    out = ok(cli(server, "dead-letters", "redrive", letter["id"]))
    assert f"redriven dead letter {letter['id']}: StartExecution for {letter['execution_id']}" in out
    deadline = time.monotonic() + 10
    while http_json("GET", f"{url}/api/v1/executions/{started['execution_id']}")[1]["status"] != "succeeded":
        assert time.monotonic() < deadline, "the parent did not finish after the redrive"
        time.sleep(0.1)

    missing = cli(server, "dead-letters", "redrive", "42")
    assert missing.returncode == 1 and "unknown_dead_letter" in missing.stderr
    assert "Traceback" not in missing.stderr
