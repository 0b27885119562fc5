"""Concurrency limits against a real ``serve`` process on SQLite: queued executions show as such
with their place in the queue, GET /api/v1/limits and ``orchestrator limits`` show each key, and
a definition with bad limits is refused naming every problem."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.auth.control import access_control
from orchestrator.core.timefmt import parse_rfc3339
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.validation import parse_definition
from tests.e2e.serverproc import Port0Server, cli_env, http_json
from tests.e2e.test_cli import cli, ok

HELD: dict[str, Any] = {
    "name": "held",
    "concurrency": [{"key": "input.customer", "limit": 1}],
    "steps": [{"name": "nap", "type": "wait", "seconds": 600}],
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], str]]:
    tmp = tmp_path_factory.mktemp("limits")
    env = cli_env(f"sqlite:///{tmp}/limits.db")
    server = Port0Server(env, [], tmp / "server.log")
    try:
        url = server.start()
        yield {**env, "ORCHESTRATOR_URL": url}, url
    finally:
        server.stop()
        print(server.output())  # shown when a test fails


def start(url: str, customer: str) -> str:
    status, body = http_json("POST", url + "/api/v1/executions", {"workflow": "held", "input": {"customer": customer}})
    assert status == 202, body
    return str(body["execution_id"])


def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        time.sleep(0.05)


def test_queued_executions_and_the_limits_view(served: tuple[dict[str, str], str]) -> None:
    env, url = served
    assert http_json("POST", url + "/api/v1/definitions", HELD)[0] == 201
    ids = [start(url, customer) for customer in ("acme", "acme", "acme", "beta")]

    def status(execution_id: str) -> Any:
        return http_json("GET", f"{url}/api/v1/executions/{execution_id}")[1]

    until(lambda: [status(i)["status"] for i in ids] == ["running", "queued", "queued", "running"])
    assert [status(i).get("queue_position") for i in ids] == [None, 1, 2, None]
    assert status(ids[1])["slots"]["queued"] == status(ids[0])["slots"]["held"]
    _, page = http_json("GET", url + "/api/v1/executions?workflow=held")
    listed = {item["execution_id"]: (item["status"], item.get("queue_position")) for item in page["items"]}
    assert listed[ids[2]] == ("queued", 2) and listed[ids[3]] == ("running", None)

    _, limits = http_json("GET", url + "/api/v1/limits")
    rows = {row["value"]: row for row in limits["limits"]}
    assert limits["tenant"] == "default" and set(rows) == {"acme", "beta"}
    assert {k: rows["acme"][k] for k in ("workflow", "scope", "limit", "held", "queued", "on_limit")} == {
        "workflow": "held", "scope": "workflow", "limit": 1, "held": 1, "queued": 2, "on_limit": "queue",
    }  # fmt: skip
    assert rows["acme"]["oldest_wait_seconds"] >= 0 and rows["beta"]["oldest_wait_seconds"] is None

    table = ok(cli(env, "limits"))
    assert "WORKFLOW" in table and "OLDEST WAIT" in table and "acme" in table and "beta" in table
    answered = json.loads(ok(cli(env, "limits", "--json")))["limits"]
    assert [(row["key"], row["held"], row["queued"]) for row in answered] == [
        (row["key"], row["held"], row["queued"]) for row in limits["limits"]
    ]

    assert http_json("POST", f"{url}/api/v1/executions/{ids[0]}/cancel", {"reason": "done"})[0] == 200
    until(lambda: status(ids[1])["status"] == "running")  # the next one of the key is admitted
    assert status(ids[2])["queue_position"] == 1


def test_bad_limits_are_refused_with_every_location(served: tuple[dict[str, str], str]) -> None:
    _, url = served
    bad = {**HELD, "name": "bad", "concurrency": [{"limit": 0, "on_limit": "drop"}], "priority": "input.("}
    status, body = http_json("POST", url + "/api/v1/definitions", bad)
    assert status == 400 and body["error"]["code"] == "invalid_definition"
    locations = {problem["location"] for problem in body["error"]["details"]}
    assert {"concurrency[0].limit", "concurrency[0].on_limit"} <= locations


async def test_without_payloads_read_input_derived_keys_are_hidden() -> None:
    settings = Settings(event_log_url="memory://", retention_interval=0)
    definition = {**HELD, "concurrency": [{"key": "input.customer", "limit": 1}, {"limit": 5}]}
    async with Runtime(settings) as runtime:
        await runtime.register(parse_definition(definition))
        ids = [(await runtime.start_execution("held", {"customer": "acme"})).execution_id for _ in range(2)]
        control = access_control(runtime.access, settings)
        keys = {role: (await control.keys.create(role, "default", {"default": [role]})).key for role in ("viewer", "operator")}
        async with TestClient(TestServer(build_app(runtime, settings, control=control))) as client:

            async def get(path: str, role: str) -> Any:
                response = await client.get(path, headers={"Authorization": f"Bearer {keys[role]}"})
                assert response.status == 200, await response.text()
                return await response.json()

            seen = {row["expression"]: row for row in (await get("/api/v1/limits", "operator"))["limits"]}
            assert seen["input.customer"]["value"] == "acme" and seen["'all'"]["value"] == "all"
            hidden = {row["expression"]: row for row in (await get("/api/v1/limits", "viewer"))["limits"]}
            assert hidden["input.customer"]["value"].startswith("[redacted")
            assert "acme" not in hidden["input.customer"]["key"] and hidden["'all'"]["value"] == "all"
            assert hidden["input.customer"]["held"] == 1 and hidden["input.customer"]["queued"] == 1
            execution = await get(f"/api/v1/executions/{ids[1]}", "viewer")
            assert execution["status"] == "queued" and execution["queue_position"] == 1
            assert "acme" not in json.dumps(execution["slots"])
            assert "acme" in json.dumps((await get(f"/api/v1/executions/{ids[1]}", "operator"))["slots"])


def test_a_killed_server_neither_leaks_nor_doubles_a_slot(tmp_path: Path) -> None:
    """SIGKILL while one execution holds the only slot and three wait; after the restart all
    four run, one at a time, as the recorded grants and ends show."""
    env = cli_env(f"sqlite:///{tmp_path}/crash.db")
    definition = {"name": "serial", "concurrency": [{"limit": 1}], "steps": [{"name": "nap", "type": "wait", "seconds": 1}]}
    server = Port0Server(env, [], tmp_path / "server.log")
    try:
        url = server.start()
        assert http_json("POST", url + "/api/v1/definitions", definition)[0] == 201
        ids = []
        for n in range(4):
            status, body = http_json("POST", url + "/api/v1/executions", {"workflow": "serial", "input": {"n": n}})
            assert status == 202, body
            ids.append(body["execution_id"])
        server.kill()
        url = server.start()

        def finished() -> bool:
            return all(http_json("GET", f"{url}/api/v1/executions/{i}")[1]["status"] == "succeeded" for i in ids)

        until(finished, timeout=30)
        spans = []
        for execution_id in ids:
            _, page = http_json("GET", f"{url}/api/v1/executions/{execution_id}/history?limit=100")
            events = page["events"] if isinstance(page, dict) else page
            kinds = [e["type"].rsplit(".", 1)[-1] for e in events]
            assert kinds.count("ExecutionAdmitted") == 1, kinds
            admitted = next(parse_rfc3339(e["time"]) for e in events if e["type"].endswith("ExecutionAdmitted"))
            ended = next(parse_rfc3339(e["time"]) for e in events if e["type"].endswith("ExecutionSucceeded"))
            spans.append((admitted, ended))
        spans.sort()
        assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans)), spans
    finally:
        server.stop()
        print(server.output())
