"""The diff and replay-verify endpoints over build_app and a Runtime on memory:// backends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

Client = TestClient[web.Request, web.Application]

ECHO: dict[str, Any] = {
    "name": "echo",
    "steps": [
        {"name": "first", "type": "task", "connector": "noop", "input": {"x": "input.x"}, "next": "route"},
        {
            "name": "route",
            "type": "choice",
            "choices": [{"when": "input.x > `5`", "next": "big"}],
            "default": "done",
        },
        {"name": "big", "type": "task", "connector": "noop", "input": {"big": "input.x"}, "next": "done"},
        {"name": "done", "type": "succeed", "output": "steps.first"},
    ],
}
SINGLE = {"name": "single", "steps": [{"name": "only", "type": "succeed"}]}


def echo(**step_changes: dict[str, Any]) -> dict[str, Any]:
    steps = [{**step, **step_changes.get(step["name"], {})} for step in ECHO["steps"]]
    return {**ECHO, "steps": steps}


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with Runtime(Settings(auth=False, event_log_url="memory://")) as runtime:
        yield runtime


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        for definition in (ECHO, SINGLE):
            assert (await client.post("/api/v1/definitions", json=definition)).status == 201
        yield client


async def ok(response: Any, status: int = 200) -> Any:
    text = await response.text()
    assert response.status == status, text
    return json.loads(text)


async def error(response: Any, status: int, code: str) -> dict[str, Any]:
    text = await response.text()
    assert response.status == status, text
    assert "Traceback" not in text
    body: dict[str, Any] = json.loads(text)["error"]
    assert body["code"] == code, body
    return body


async def run(client: Client, runtime: Runtime, x: int) -> str:
    body = await ok(
        await client.post("/api/v1/executions", json={"workflow": "echo", "input": {"x": x}}), 202
    )
    execution_id: str = body["execution_id"]
    assert (await runtime.wait(execution_id, timeout=5)).status == "succeeded"
    return execution_id


# -- executions diff ------------------------------------------------------------------------


async def test_diff_two_executions(client: Client, runtime: Runtime) -> None:
    small, other_small, big = [await run(client, runtime, x) for x in (1, 1, 9)]
    same = await ok(await client.get(f"/api/v1/executions/{small}/diff/{other_small}"))
    assert same["identical"] is True
    assert same["a"]["execution_id"] == small and same["b"]["execution_id"] == other_small
    assert same["history"]["first_divergence"] is None

    body = await ok(await client.get(f"/api/v1/executions/{small}/diff/{big}"))
    assert body["identical"] is False
    history = body["history"]
    assert history["first_divergence"] == 1  # the inputs differ
    assert history["same_types"] is False
    assert history["events"][0]["changes"] == [{"path": "data.input.x", "kind": "changed", "a": 1, "b": 9}]
    # the choice took another path: the first event whose type differs
    divergent = next(e for e in history["events"] if e["sequence"] == history["first_type_divergence"])
    assert divergent["type"]["a"] != divergent["type"]["b"]
    assert body["state"]["steps"]["added"] == ["big"]
    assert {"path": "input.x", "kind": "changed", "a": 1, "b": 9} in body["state"]["changes"]


async def test_diff_unknown_execution_404(client: Client, runtime: Runtime) -> None:
    known = await run(client, runtime, 1)
    for path in (f"/api/v1/executions/nope/diff/{known}", f"/api/v1/executions/{known}/diff/nope"):
        body = await error(await client.get(path), 404, "unknown_execution")
        assert "nope" in body["message"]


# -- definitions diff -----------------------------------------------------------------------


async def test_definition_diff_defaults_and_explicit_versions(client: Client) -> None:
    v2 = echo(first={"retry": {"max_attempts": 4}})
    assert (await ok(await client.post("/api/v1/definitions", json=v2), 201))["version"] == 2
    v3 = echo(route={"choices": [{"when": "input.x > `7`", "next": "big"}]})
    assert (await ok(await client.post("/api/v1/definitions", json=v3), 201))["version"] == 3

    latest = await ok(await client.get("/api/v1/definitions/echo/diff"))
    assert (latest["from"], latest["to"]) == (2, 3)  # default: the latest and the one before
    assert latest["compatibility"] == "breaking"
    paths = {c["path"] for c in latest["changes"]}
    assert "steps.route.choices[0].when" in paths and "steps.first.retry.max_attempts" in paths

    body = await ok(await client.get("/api/v1/definitions/echo/diff?from=1&to=2"))
    assert body["compatibility"] == "conditional"
    assert body["changes"] == [
        {
            "path": "steps.first.retry.max_attempts",
            "kind": "changed",
            "from": 1,
            "to": 4,
            "impact": "conditional",
            "reason": "decides whether and when a failed attempt is retried (matters only when the step fails)",
        }
    ]
    assert (await ok(await client.get("/api/v1/definitions/echo/diff?to=2")))["from"] == 1
    assert (await ok(await client.get("/api/v1/definitions/echo/diff?from=2&to=2")))["identical"] is True


async def test_definition_diff_errors(client: Client) -> None:
    await error(await client.get("/api/v1/definitions/nope/diff"), 404, "unknown_workflow")
    await error(await client.get("/api/v1/definitions/echo/diff?from=1&to=9"), 404, "unknown_workflow")
    await error(await client.get("/api/v1/definitions/echo/diff?from=9&to=1"), 404, "unknown_workflow")
    body = await error(await client.get("/api/v1/definitions/single/diff"), 400, "invalid_parameter")
    assert "no version before 1" in body["message"]
    for query in ("from=abc", "from=0", "to=-1", "colour=blue"):
        await error(await client.get(f"/api/v1/definitions/echo/diff?{query}"), 400, "invalid_parameter")


# -- replay verify --------------------------------------------------------------------------


async def test_replay_verify(client: Client, runtime: Runtime) -> None:
    small, big = await run(client, runtime, 1), await run(client, runtime, 9)
    report = await ok(await client.post("/api/v1/replay/verify", json={"workflow": "echo", "version": 1}))
    assert report["ok"] is True and report["summary"] == {"checked": 2, "ok": 2, "diverged": 0}
    assert [e["execution_id"] for e in report["executions"]] == [big, small]

    inserted = echo(first={"next": "audit"})
    audit = {"name": "audit", "type": "task", "connector": "noop", "next": "route"}
    inserted["steps"].insert(1, audit)
    assert (await ok(await client.post("/api/v1/definitions", json=inserted), 201))["version"] == 2
    report = await ok(await client.post("/api/v1/replay/verify", json={"workflow": "echo", "sample": 1}))
    assert report["version"] == 2 and report["ok"] is False  # the latest by default
    (check,) = report["executions"]
    assert check["execution_id"] == big and check["recorded_version"] == 1
    assert check["divergence"]["sequence"] == 4
    assert check["divergence"]["reason"] == "the machine decides StepScheduled, the history holds ChoiceMade"
    assert check["divergence"]["expected"]["data"]["step"] == "audit"

    only_failed = {"workflow": "echo", "statuses": ["failed"]}
    report = await ok(await client.post("/api/v1/replay/verify", json=only_failed))
    assert report["ok"] is True and report["summary"]["checked"] == 0


@pytest.mark.parametrize(
    "body",
    [
        "{}",
        '{"workflow": ""}',
        '{"workflow": "echo", "sample": 0}',
        '{"workflow": "echo", "sample": 100000}',
        '{"workflow": "echo", "version": 0}',
        '{"workflow": "echo", "statuses": ["bogus"]}',
        '{"workflow": "echo", "colour": "blue"}',
        "not json",
        "",
    ],
)
async def test_replay_verify_bad_bodies_400(client: Client, body: str) -> None:
    response = await client.post(
        "/api/v1/replay/verify", data=body, headers={"Content-Type": "application/json"}
    )
    await error(response, 400, "invalid_body")


async def test_replay_verify_unknown_workflow_or_version_404(client: Client) -> None:
    for body in ({"workflow": "nope"}, {"workflow": "echo", "version": 9}):
        await error(await client.post("/api/v1/replay/verify", json=body), 404, "unknown_workflow")


async def test_the_new_paths_are_documented(client: Client) -> None:
    document = await ok(await client.get("/api/v1/openapi.json"))
    paths = document["paths"]
    assert "get" in paths["/api/v1/executions/{id}/diff/{other}"]
    assert "get" in paths["/api/v1/definitions/{name}/diff"]
    assert "post" in paths["/api/v1/replay/verify"]
    assert "VerifyBody" in document["components"]["schemas"]
