"""The REST API over build_app and a Runtime on memory:// backends."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.step_states import step_states
from orchestrator.core.state import fold
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

Client = TestClient[web.Request, web.Application]
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class Clock:
    """A clock the test moves: ``started_at`` of each execution is known in advance."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


ECHO = {
    "name": "echo",
    "description": "Echo x through two noop steps.",
    "input_schema": {"type": "object", "required": ["x"]},
    "triggers": [{"type": "webhook", "name": "echo-hook"}],
    "steps": [
        {
            "name": "first",
            "type": "task",
            "connector": "noop",
            "input": {"x": "input.x"},
            "next": "second",
        },
        {
            "name": "second",
            "type": "task",
            "connector": "noop",
            "input": {"y": "steps.first.x"},
            "next": "done",
        },
        {"name": "done", "type": "succeed", "output": "steps.second"},
    ],
}
WAITER = {
    "name": "waiter",
    "steps": [
        {
            "name": "wait",
            "type": "wait_for_event",
            "event": "approval",
            "correlation_key": "input.key",
            "next": "done",
        },
        {"name": "done", "type": "succeed", "output": "steps.wait"},
    ],
}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def runtime(clock: Clock) -> AsyncIterator[Runtime]:
    async with Runtime(Settings(auth=False, event_log_url="memory://"), clock=clock) as runtime:
        yield runtime


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        for definition in (ECHO, WAITER):
            assert (await client.post("/api/v1/definitions", json=definition)).status == 201
        yield client


async def ok(response: Any, status: int) -> Any:
    text = await response.text()
    assert response.status == status, text
    return json.loads(text)


async def error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert a JSON error (never a traceback); return its ``error`` object."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json"
    assert "Traceback" not in text
    body: dict[str, Any] = json.loads(text)["error"]
    assert body["code"] == code, body
    return body


async def start(client: Client, workflow: str, input: Any, **headers: str) -> str:
    body = await ok(
        await client.post(
            "/api/v1/executions", json={"workflow": workflow, "input": input}, headers=headers
        ),
        202,
    )
    execution_id: str = body["execution_id"]
    return execution_id


# -- definitions -------------------------------------------------------------------------


async def test_register_versions_and_reads(client: Client) -> None:
    again = await ok(await client.post("/api/v1/definitions", json=ECHO), 200)
    assert again["version"] == 1  # identical content: same version, nothing stored
    changed = await ok(
        await client.post("/api/v1/definitions", json={**ECHO, "description": "v2"}), 201
    )
    assert changed["version"] == 2 and changed["description"] == "v2"
    assert changed["steps"][0]["name"] == "first"
    latest = await ok(await client.get("/api/v1/definitions/echo"), 200)
    assert latest["version"] == 2
    first = await ok(await client.get("/api/v1/definitions/echo?version=1"), 200)
    assert first["description"] == ECHO["description"]
    assert await ok(await client.get("/api/v1/definitions/echo/versions"), 200) == {
        "name": "echo",
        "versions": [1, 2],
    }
    listing = await ok(await client.get("/api/v1/definitions"), 200)
    by_name = {item["name"]: item for item in listing["items"]}
    assert set(by_name) == {"echo", "waiter"}
    assert by_name["echo"]["version"] == 2 and by_name["echo"]["description"] == "v2"
    assert by_name["echo"]["triggers"][0]["name"] == "echo-hook"


async def test_register_yaml(client: Client) -> None:
    text = yaml.safe_dump({**WAITER, "name": "waiter-yaml"})
    for content_type in ("application/yaml", "text/yaml"):
        response = await client.post(
            "/api/v1/definitions", data=text, headers={"Content-Type": content_type}
        )
        stored = await ok(response, 201 if content_type == "application/yaml" else 200)
        assert stored["name"] == "waiter-yaml" and stored["version"] == 1


async def test_invalid_definition_lists_every_problem(client: Client) -> None:
    broken = {
        "name": "broken",
        "steps": [
            {
                "name": "a",
                "type": "task",
                "connector": "noop",
                "input": {"v": "input.[["},
                "next": "nowhere",
            },
            {"name": "a", "type": "succeed"},
        ],
    }
    body = await error(
        await client.post("/api/v1/definitions", json=broken), 400, "invalid_definition"
    )
    found = {(d["location"], d["message"].split(" '")[0]) for d in body["details"]}
    locations = {location for location, _ in found}
    assert "steps[0].next" in locations  # unknown step
    assert "steps[0].input.v" in locations  # bad expression
    assert any("duplicate step name" in d["message"] for d in body["details"])
    missing = await error(
        await client.post("/api/v1/definitions", json={"name": "x"}), 400, "invalid_definition"
    )
    assert missing["details"] == [{"location": "steps", "message": "Field required"}]


async def test_bad_definition_bodies(client: Client) -> None:
    cases = [
        ("{not json", "application/json"),
        ("a: [unclosed", "application/yaml"),
        ("a: &x [1]\nb: *x\n", "application/yaml"),  # aliases are refused
        ("", "application/json"),
        (b"\xff\xfe", "application/json"),
        ("[" * 100_000, "application/yaml"),
    ]
    for data, content_type in cases:
        response = await client.post(
            "/api/v1/definitions", data=data, headers={"Content-Type": content_type}
        )
        await error(response, 400, "invalid_body")
    too_big = io.BytesIO(b" " * (2 * 1024 * 1024))
    await error(
        await client.post("/api/v1/definitions", data=too_big), 413, "request_entity_too_large"
    )


async def test_version_is_immutable(client: Client) -> None:
    conflict = {**ECHO, "version": 1, "description": "other content"}
    await error(await client.post("/api/v1/definitions", json=conflict), 409, "version_conflict")
    same = await ok(await client.post("/api/v1/definitions", json={**ECHO, "version": 1}), 200)
    assert same["version"] == 1


async def test_unknown_workflow_404(client: Client) -> None:
    await error(await client.get("/api/v1/definitions/nope"), 404, "unknown_workflow")
    await error(await client.get("/api/v1/definitions/echo?version=9"), 404, "unknown_workflow")
    await error(await client.get("/api/v1/definitions/nope/versions"), 404, "unknown_workflow")
    response = await client.post("/api/v1/executions", json={"workflow": "nope", "input": {}})
    await error(response, 404, "unknown_workflow")


# -- starting and reading executions ------------------------------------------------------


async def test_start_completes_and_get(client: Client, runtime: Runtime) -> None:
    response = await client.post("/api/v1/executions", json={"workflow": "echo", "input": {"x": 7}})
    body = await ok(response, 202)
    execution_id = body["execution_id"]
    assert body == {"execution_id": execution_id, "created": True}
    assert response.headers["Location"] == f"/api/v1/executions/{execution_id}"
    assert (await runtime.log.read(execution_id))[0].actor == "api"  # durable before the 202
    await runtime.wait(execution_id, timeout=5)
    execution = await ok(await client.get(f"/api/v1/executions/{execution_id}"), 200)
    assert execution["status"] == "succeeded"
    assert execution["output"] == {"y": 7}
    assert execution["steps"] == {"first": {"x": 7}, "second": {"y": 7}, "done": {"y": 7}}
    assert execution["active"] == {} and execution["error"] is None
    assert execution["workflow"] == "echo" and execution["version"] == 1
    assert execution["started_at"] == "2023-11-14T22:13:20.000000Z"
    assert execution["last_sequence"] == execution["sequence"]


async def test_invalid_input_400(client: Client) -> None:
    response = await client.post("/api/v1/executions", json={"workflow": "echo", "input": {"y": 1}})
    body = await error(response, 400, "invalid_input")
    assert body["details"][0]["location"] == "input"


async def test_idempotent_start(client: Client, runtime: Runtime) -> None:
    request = {"workflow": "waiter", "input": {"key": "k"}}
    headers = {"Idempotency-Key": "order-1"}
    first = await ok(await client.post("/api/v1/executions", json=request, headers=headers), 202)
    second = await ok(await client.post("/api/v1/executions", json=request, headers=headers), 200)
    assert second == {"execution_id": first["execution_id"], "created": False}
    listing = await ok(await client.get("/api/v1/executions?workflow=waiter"), 200)
    assert [item["execution_id"] for item in listing["items"]] == [first["execution_id"]]


async def test_list_filters_and_cursor_paging(
    client: Client, runtime: Runtime, clock: Clock
) -> None:
    ids: list[str] = []
    for index in range(7):
        clock.now = T0 + 60 * index  # one a minute, from 22:13:20Z
        if index % 2:
            ids.append(await start(client, "waiter", {"key": f"k{index}"}))
        else:
            ids.append(await start(client, "echo", {"x": index}))
            await runtime.wait(ids[-1], timeout=5)

    async def listed(query: str) -> list[str]:
        body = await ok(await client.get(f"/api/v1/executions?{query}"), 200)
        return [item["execution_id"] for item in body["items"]]

    newest_first = ids[::-1]
    assert await listed("") == newest_first
    assert await listed("workflow=waiter") == [ids[5], ids[3], ids[1]]
    assert await listed("status=succeeded") == [ids[6], ids[4], ids[2], ids[0]]
    assert await listed("status=running&workflow=waiter") == [ids[5], ids[3], ids[1]]
    assert await listed("status=failed") == []
    after = "started_after=2023-11-14T22:15:20Z"  # index 2 onwards (inclusive)
    before = "started_before=2023-11-14T23:17:20%2B01:00"  # before index 4, another offset
    assert await listed(after) == newest_first[:5]
    assert await listed(f"{after}&{before}") == [ids[3], ids[2]]
    paged, params = [], {"limit": "3"}
    while True:
        body = await ok(await client.get("/api/v1/executions", params=params), 200)
        assert len(body["items"]) <= 3
        paged += [item["execution_id"] for item in body["items"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert paged == newest_first
    # who started them (the API's actor without authentication) and the key each waits on
    hooked = await ok(await client.post("/hooks/echo-hook", json={"x": 9}), 202)
    assert await listed("started_by=webhook:echo-hook") == [hooked["execution_id"]]
    assert await listed("started_by=api&workflow=echo") == [ids[6], ids[4], ids[2], ids[0]]
    assert await listed("correlation_key=k3") == [ids[3]]
    assert await listed("correlation_key=k3&status=succeeded") == []
    assert await listed("correlation_key=k4") == []
    listed_waiter = await ok(await client.get("/api/v1/executions?workflow=waiter&limit=1"), 200)
    assert listed_waiter["items"][0]["correlation_key"] == "k5"
    assert listed_waiter["items"][0]["started_by"] == "api"


async def test_history_paging_and_type_filter(client: Client, runtime: Runtime) -> None:
    execution_id = await start(client, "echo", {"x": 1})
    await runtime.wait(execution_id, timeout=5)
    base = f"/api/v1/executions/{execution_id}/history"
    full = await ok(await client.get(base), 200)
    assert full["next_after"] is None
    events = full["events"]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "io.orchestrator.ExecutionStarted"
    assert events[0]["specversion"] == "1.0" and events[0]["subject"] == execution_id
    paged, after = [], 0
    while after is not None:
        page = await ok(await client.get(base, params={"after": after, "limit": 2}), 200)
        assert len(page["events"]) <= 2
        paged += page["events"]
        after = page["next_after"]
    assert paged == events
    filtered = await ok(
        await client.get(base, params={"type": "StepSucceeded,io.orchestrator.ExecutionSucceeded"}),
        200,
    )
    types = [e["type"] for e in filtered["events"]]
    assert types == ["io.orchestrator.StepSucceeded"] * 3 + ["io.orchestrator.ExecutionSucceeded"]
    one = await ok(await client.get(base, params={"type": "StepSucceeded", "limit": 1}), 200)
    assert len(one["events"]) == 1 and one["next_after"] == one["events"][0]["sequence"]
    rest = await ok(
        await client.get(base, params={"type": "StepSucceeded", "after": one["next_after"]}), 200
    )
    assert len(rest["events"]) == 2 and rest["next_after"] is None
    body = await error(await client.get(base, params={"type": "Bogus"}), 400, "invalid_parameter")
    assert "Bogus" in body["message"]


async def test_state_at_sequence_is_the_fold(client: Client, runtime: Runtime) -> None:
    execution_id = await start(client, "echo", {"x": 3})
    await runtime.wait(execution_id, timeout=5)
    events = await runtime.log.read(execution_id)
    for seq in range(1, len(events) + 1):
        state = await ok(await client.get(f"/api/v1/executions/{execution_id}/state?at={seq}"), 200)
        expected = fold(events[:seq])
        assert expected is not None
        view = json.loads(json.dumps(expected.to_dict()))
        assert state == {**view, "step_states": step_states(view)}
    current = await ok(await client.get(f"/api/v1/executions/{execution_id}/state"), 200)
    assert current["status"] == "succeeded" and current["sequence"] == len(events)
    beyond = f"/api/v1/executions/{execution_id}/state?at={len(events) + 1}"
    await error(await client.get(beyond), 400, "invalid_parameter")


async def test_timeline_has_rows_and_step_spans(client: Client, runtime: Runtime) -> None:
    execution_id = await start(client, "echo", {"x": 4})
    await runtime.wait(execution_id, timeout=5)
    events = await runtime.log.read(execution_id)
    body = await ok(await client.get(f"/api/v1/executions/{execution_id}/timeline"), 200)
    assert body["status"] == "succeeded"
    assert [row["sequence"] for row in body["events"]] == [e.sequence for e in events]
    assert [row["type"] for row in body["events"]] == [e.type for e in events]
    scheduled = [e.data["step"] for e in events if e.type == "StepScheduled"]
    spans = [span for span in body["steps"] if span["kind"] == "task"]
    assert [span["step"] for span in spans] == scheduled
    assert all(span["status"] == "succeeded" and span["attempts"] == 1 for span in spans)
    assert all(span["duration_seconds"] >= 0 for span in spans)


# -- cancel, signals, events --------------------------------------------------------------


async def test_cancel_waiting_then_409(client: Client, runtime: Runtime) -> None:
    execution_id = await start(client, "waiter", {"key": "c"})
    url = f"/api/v1/executions/{execution_id}/cancel"
    state = await ok(await client.post(url, json={"reason": "not needed"}), 200)
    assert state["status"] == "cancelled"
    assert (await runtime.wait(execution_id, timeout=5)).status == "cancelled"
    body = await error(await client.post(url), 409, "rejected")
    assert "cancelled" in body["message"]
    last = (await runtime.log.read(execution_id))[-1]
    assert last.type == "ExecutionCancelled" and last.actor == "api"


async def test_signal_completes_a_waiting_execution(client: Client, runtime: Runtime) -> None:
    execution_id = await start(client, "waiter", {"key": "s"})
    url = f"/api/v1/executions/{execution_id}/signals"
    other = await ok(await client.post(url, json={"name": "unrelated", "payload": 1}), 202)
    assert other == {"execution_id": execution_id, "status": "running", "buffered": True}
    answer = await ok(
        await client.post(url, json={"name": "approval", "payload": {"ok": True}}), 202
    )
    assert answer == {"execution_id": execution_id, "status": "succeeded", "buffered": False}
    final = await runtime.wait(execution_id, timeout=5)
    assert final.status == "succeeded" and final.output == {"ok": True}
    await error(await client.post(url, json={"name": "approval"}), 409, "rejected")


async def test_events_by_correlation_key(client: Client, runtime: Runtime) -> None:
    first = await start(client, "waiter", {"key": "k1"})
    second = await start(client, "waiter", {"key": "k2"})
    event = {"name": "approval", "correlation_key": "k1", "payload": {"by": "ana"}}
    body = await ok(await client.post("/api/v1/events", json=event), 202)
    assert body == {"delivered_to": [first]}
    assert (await runtime.wait(first, timeout=5)).output == {"by": "ana"}
    assert (await runtime.state(second)).status == "running"
    assert await ok(await client.post("/api/v1/events", json=event), 202) == {"delivered_to": []}
    nobody = {"name": "approval", "correlation_key": 42}
    assert await ok(await client.post("/api/v1/events", json=nobody), 202) == {"delivered_to": []}


async def test_unknown_execution_404(client: Client) -> None:
    base = "/api/v1/executions/no-such-id"
    for method, path, body in [
        ("GET", base, None),
        ("GET", base + "/history", None),
        ("GET", base + "/state", None),
        ("GET", base + "/state?at=1", None),
        ("GET", base + "/timeline", None),
        ("POST", base + "/cancel", {}),
        ("POST", base + "/signals", {"name": "x"}),
    ]:
        await error(await client.request(method, path, json=body), 404, "unknown_execution")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/executions?limit=abc",
        "/api/v1/executions?limit=0",
        "/api/v1/executions?limit=1001",
        "/api/v1/executions?status=bogus",
        "/api/v1/executions?started_after=yesterday",
        "/api/v1/executions?started_after=2024-01-01T00:00:00",  # no offset: not RFC 3339
        "/api/v1/executions?started_after=2024-01-02T00:00:00Z&started_before=2024-01-01T00:00:00Z",
        "/api/v1/executions?colour=blue",
        "/api/v1/executions?started_by=",
        "/api/v1/executions?correlation_key=" + "k" * 1025,
        "/api/v1/executions/x/history?after=-1",
        "/api/v1/executions/x/history?limit=x",
        "/api/v1/executions/x/history?type=",
        "/api/v1/executions/x/state?at=abc",
        "/api/v1/executions/x/state?at=0",
        "/api/v1/definitions/echo?version=abc",
        "/api/v1/definitions/echo?version=0",
    ],
)
async def test_bad_params_400(client: Client, path: str) -> None:
    body = await error(await client.get(path), 400, "invalid_parameter")
    assert body["message"]


async def test_limit_message_names_the_parameter(client: Client) -> None:
    body = await error(await client.get("/api/v1/executions?limit=abc"), 400, "invalid_parameter")
    assert body["message"].startswith("limit:") and "'abc'" in body["message"]


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/api/v1/executions", "{}"),
        ("/api/v1/executions", '{"workflow": "echo", "inputs": {}}'),
        ("/api/v1/executions", '{"workflow": "echo", "version": 0}'),
        ("/api/v1/executions", "[1, 2]"),
        ("/api/v1/executions", "not json"),
        ("/api/v1/executions", ""),
        ("/api/v1/executions/x/signals", '{"payload": 1}'),
        ("/api/v1/executions/x/cancel", '{"reason": 5}'),
        ("/api/v1/events", '{"name": "e", "correlation_key": [1]}'),
        ("/api/v1/executions", '{"workflow": "echo", "input": NaN}'),
        ("/api/v1/executions", '{"workflow": "echo", "input": ' + "[" * 5000 + "]" * 5000 + "}"),
        ("/api/v1/definitions", "[" * 100_000),
    ],
)
async def test_bad_bodies_400(client: Client, path: str, data: str) -> None:
    response = await client.post(path, data=data, headers={"Content-Type": "application/json"})
    await error(response, 400, "invalid_body")


async def test_bad_idempotency_key_400(client: Client) -> None:
    body = {"workflow": "waiter", "input": {}}
    response = await client.post(
        "/api/v1/executions", json=body, headers={"Idempotency-Key": "k" * 257}
    )
    await error(response, 400, "invalid_header")


# -- OpenAPI and health ---------------------------------------------------------------------


def refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["$ref"]} if isinstance(value.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(refs(v) for v in value))
    return set()


async def test_openapi_lists_exactly_the_routes(client: Client) -> None:
    document = await ok(await client.get("/api/v1/openapi.json"), 200)
    assert document["openapi"] == "3.1.0"
    app = client.app
    assert app is not None
    registered = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
        and not (route.resource.canonical or "").startswith("/console")  # the console's page: not the API
    }
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert documented == registered
    schemas = document["components"]["schemas"]
    for reference in refs(document):
        assert reference.removeprefix("#/components/schemas/") in schemas, reference


async def test_health_and_readiness(client: Client, runtime: Runtime) -> None:
    assert await ok(await client.get("/healthz"), 200) == {"status": "ok"}
    assert await ok(await client.get("/readyz"), 200) == {"status": "ok"}

    async def broken(execution_id: str) -> None:
        raise ConnectionError("database is gone")

    runtime.log.summary = broken  # type: ignore[method-assign]
    body = await ok(await client.get("/readyz"), 503)
    assert body["status"] == "unavailable" and "ConnectionError" in body["reason"]
    await runtime.stop()
    body = await ok(await client.get("/readyz"), 503)
    assert body["reason"] == "the runtime is not started"
    assert await ok(await client.get("/healthz"), 200) == {"status": "ok"}
