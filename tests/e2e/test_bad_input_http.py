"""Bad input over HTTP gets a 4xx with a code, contention a 409 or a 503 with Retry-After, and
nothing a 500 with a traceback: integer parameters beyond what the backends store, bodies that
are not strict JSON, expressions failing on a delivery, a busy database, a conflict that
outlasts the engine's retries. The runtime is embedded on SQLite, whose integers are 64-bit."""

from __future__ import annotations

import json
import random
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.routes import ROUTE_TABLE, RouteTable
from orchestrator.backends import sqlite as sqlite_backend
from orchestrator.backends.memory import MemoryEventLog
from orchestrator.ports import BackendUnavailable, ConcurrencyError, ExecutionSummary
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.envelope import Envelope

Client = TestClient[web.Request, web.Application]
BIG = str(2**63)  # one past SQLite's (and Cassandra bigint's) largest integer
LONG = "9" * 5000  # past Python's int-string limit
ECHO = {
    "name": "echo",
    "triggers": [{"type": "webhook", "name": "echo-hook", "idempotency_field": "max_by(@, &k)"}],
    "steps": [{"name": "a", "type": "task", "connector": "noop", "input": {"x": "input"}}],
}


async def error(response: Any, status: int, code: str, *mentions: str) -> dict[str, Any]:
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json" and "Traceback" not in text
    body: dict[str, Any] = json.loads(text)["error"]
    assert body["code"] == code, body
    for mention in mentions:
        assert mention in body["message"], body
    return body


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with Runtime(Settings(auth=False, event_log_url=f"sqlite:///{tmp_path}/o.db", retention_interval=0)) as runtime:
        yield runtime


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        assert (await client.post("/api/v1/definitions", json=ECHO)).status == 201
        yield client


async def started(client: Client) -> str:
    response = await client.post("/api/v1/executions", json={"workflow": "echo", "input": 1})
    assert response.status == 202, await response.text()
    execution_id: str = (await response.json())["execution_id"]
    return execution_id


# -- integer parameters ---------------------------------------------------------------------------

QUERY_BOUNDS = [
    ("/api/v1/executions/{id}/history?after=" + BIG, "after"),
    ("/api/v1/executions/{id}/history?after=-1", "after"),
    ("/api/v1/executions/{id}/history?after=" + LONG, "after"),
    ("/api/v1/executions/{id}/history?limit=" + BIG, "limit"),
    ("/api/v1/executions/{id}/state?at=" + BIG, "at"),
    ("/api/v1/executions/{id}/state?at=0", "at"),
    ("/api/v1/executions?limit=" + BIG, "limit"),
    ("/api/v1/executions?cursor=not-a-cursor", "cursor"),
    ("/api/v1/executions?started_after=0001-01-01T00:00:00%2B14:00", "started_after"),  # year 0 in UTC
    ("/api/v1/definitions/echo?version=" + str(2**31), "version"),
    ("/api/v1/definitions/echo?version=" + LONG, "version"),
    ("/api/v1/definitions/echo/diff?from=" + str(2**31), "from"),
    ("/api/v1/definitions/echo/diff?to=" + BIG, "to"),
]


@pytest.mark.parametrize(("path", "name"), QUERY_BOUNDS)
async def test_an_integer_parameter_out_of_range_is_a_400_naming_it(client: Client, path: str, name: str) -> None:
    response = await client.get(path.format(id=await started(client)))
    body = await error(response, 400, "invalid_parameter", name)
    assert len(body["message"]) < 300  # a 5000-digit value is not echoed whole


BODY_BOUNDS = [
    ("/api/v1/executions", {"workflow": "echo", "version": 2**31}, "version"),
    ("/api/v1/executions/{id}/redrive", {"version": 2**31}, "version"),
    ("/api/v1/executions/redrive", {"limit": 2**63}, "limit"),
    ("/api/v1/executions/redrive", {"rate_per_second": 1e308}, "rate_per_second"),
    ("/api/v1/executions/redrive", {"started_before": "9999-12-31T23:59:59-05:00"}, "started_before"),
    ("/api/v1/replay/verify", {"workflow": "echo", "version": 2**31}, "version"),
    ("/api/v1/replay/verify", {"workflow": "echo", "recorded_version": 2**63}, "recorded_version"),
    ("/api/v1/replay/verify", {"workflow": "echo", "sample": 2**63}, "sample"),
]


@pytest.mark.parametrize(("path", "body", "name"), BODY_BOUNDS)
async def test_an_integer_body_field_out_of_range_is_a_400_naming_it(
    client: Client, path: str, body: dict[str, Any], name: str
) -> None:
    response = await client.post(path.format(id=await started(client)), json=body)
    await error(response, 400, "invalid_body", name)


async def test_the_largest_values_in_range_reach_the_backend(client: Client) -> None:
    execution_id = await started(client)
    history = await client.get(f"/api/v1/executions/{execution_id}/history?after={2**63 - 1}")
    assert history.status == 200 and (await history.json())["events"] == []
    await error(await client.get(f"/api/v1/executions/{execution_id}/state?at={2**63 - 1}"), 400, "invalid_parameter", "only")
    await error(await client.get(f"/api/v1/definitions/echo?version={2**31 - 1}"), 404, "unknown_workflow")
    await error(await client.get(f"/api/v1/definitions/echo/diff?from=1&to={2**31 - 1}"), 404, "unknown_workflow")


async def test_a_definition_version_or_duration_out_of_range_is_an_invalid_definition(client: Client) -> None:
    steps = [{"name": "a", "type": "succeed"}]
    body = await error(
        await client.post("/api/v1/definitions", json={"name": "x", "version": 2**31, "steps": steps}),
        400, "invalid_definition",
    )  # fmt: skip
    assert body["details"][0]["location"] == "version"
    wait = [{"name": "w", "type": "wait", "seconds": 1e300}]
    body = await error(await client.post("/api/v1/definitions", json={"name": "x", "steps": wait}), 400, "invalid_definition")
    assert body["details"][0]["location"] == "steps[0].seconds"


# -- bodies that are not strict JSON -------------------------------------------------------------

NOT_STRICT = {
    "1e400": (b'{"workflow": "echo", "input": 1e400}', "too large for a JSON number"),
    "NaN": (b'{"workflow": "echo", "input": NaN}', "NaN is not valid JSON"),
    "-Infinity": (b'{"workflow": "echo", "input": [-Infinity]}', "-Infinity is not valid JSON"),
    "huge-int": (b'{"workflow": "echo", "input": ' + LONG.encode() + b"}", "longer than 4300 digits"),
    "surrogate": (b'{"workflow": "echo", "input": "\\ud800"}', "unpaired surrogate"),
    "not-utf8": (b'{"workflow": "\xff"}', "not UTF-8"),
    "deep": (b'{"workflow": "echo", "input": ' + b"[" * 100_000 + b"}", "nested deeper than 128 levels"),
}


@pytest.mark.parametrize("case", sorted(NOT_STRICT))
async def test_bodies_that_are_not_strict_json_are_refused_at_every_edge(client: Client, case: str) -> None:
    raw, reason = NOT_STRICT[case]
    execution_id = await started(client)
    json_type = {"Content-Type": "application/json"}
    await error(await client.post("/api/v1/executions", data=raw, headers=json_type), 400, "invalid_body", reason)
    signal = raw.replace(b'"workflow": "echo", "input"', b'"name": "go", "payload"')
    for path in (f"/api/v1/executions/{execution_id}/signals", "/api/v1/events"):
        await error(await client.post(path, data=signal, headers=json_type), 400, "invalid_body", reason)
    await error(await client.post("/hooks/echo-hook", data=raw, headers=json_type), 400, "invalid_json", reason)
    cloudevent = {"Content-Type": "application/cloudevents+json"}
    event = b'{"specversion": "1.0", "id": "1", "source": "/t", "type": "go", "data": ' + raw + b"}"
    await error(await client.post("/api/v1/events", data=event, headers=cloudevent), 400, "invalid_body", reason)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"name: y\nsteps:\n- {name: a, type: wait, seconds: .inf}\n", "inf is not a JSON number"),
        (b"name: y\ninput_schema: {maximum: .nan}\nsteps:\n- {name: a, type: succeed}\n", "nan is not a JSON number"),
        (b"name: y\ndescription: 2024-05-01\nsteps:\n- {name: a, type: succeed}\n", "(date) is not a JSON value"),
    ],
)
async def test_yaml_definitions_hold_only_what_json_could(client: Client, body: bytes, reason: str) -> None:
    response = await client.post("/api/v1/definitions", data=body, headers={"Content-Type": "application/yaml"})
    await error(response, 400, "invalid_body", "not valid YAML", reason)


# -- expressions at the edge ----------------------------------------------------------------------


async def test_a_webhook_field_expression_failing_on_the_body_is_a_400(client: Client) -> None:
    mixed = [{"k": 1}, {"k": "x"}]  # max_by raises TypeError inside jmespath
    response = await client.post("/hooks/echo-hook", json=mixed)
    await error(response, 400, "invalid_idempotency_key", "max_by(@, &k)", "cannot compare")
    assert (await client.post("/hooks/echo-hook", json=[{"k": 1}, {"k": 2}])).status == 202


async def test_a_first_step_failing_on_the_input_is_a_recorded_failure(client: Client, runtime: Runtime) -> None:
    definition = {"name": "first", "steps": [{"name": "a", "type": "task", "connector": "noop",
                                              "input": {"x": "input[::0]"}}]}  # fmt: skip
    assert (await client.post("/api/v1/definitions", json=definition)).status == 201
    response = await client.post("/api/v1/executions", json={"workflow": "first", "input": [1]})
    assert response.status == 202
    state = await runtime.wait((await response.json())["execution_id"], 10)
    assert state.status == "failed" and state.error is not None
    assert state.error["type"] == "expression" and state.error["retryable"] is False
    assert "slice step cannot be zero" in state.error["message"]


# -- contention and the unexpected ----------------------------------------------------------------


class _Failing(MemoryEventLog):
    """A log whose appends or summaries raise what the test chose."""

    def __init__(self) -> None:
        super().__init__()
        self.append_error: Exception | None = None
        self.summary_error: Exception | None = None

    async def append(self, execution_id: str, expected_sequence: int, events: Sequence[Envelope]) -> None:
        if self.append_error is not None:
            raise self.append_error
        await super().append(execution_id, expected_sequence, events)

    async def summary(self, execution_id: str) -> ExecutionSummary | None:
        if self.summary_error is not None:
            raise self.summary_error
        return await super().summary(execution_id)


async def test_contention_is_a_409_or_503_with_retry_after_and_a_bug_a_bare_500() -> None:
    log = _Failing()
    settings = Settings(auth=False, event_log_url="memory://", retention_interval=0)
    async with (
        Runtime(settings, event_log=log) as runtime,
        TestClient(TestServer(build_app(runtime, settings))) as client,
    ):
        assert (await client.post("/api/v1/definitions", json=ECHO)).status == 201
        start = {"workflow": "echo", "input": 1}
        log.append_error = ConcurrencyError("e-1", 0)  # every retry loses: a hot execution
        response = await client.post("/api/v1/executions", json=start)
        await error(response, 409, "concurrency_conflict", "try again")
        assert response.headers["Retry-After"] == "1"
        log.append_error = BackendUnavailable("memory://: down for maintenance")
        response = await client.post("/api/v1/executions", json=start)
        await error(response, 503, "backend_unavailable", "down for maintenance")
        assert response.headers["Retry-After"] == "1"
        log.append_error, log.summary_error = None, RuntimeError("internal detail 42")
        response = await client.get("/api/v1/executions/e-1")
        body = await error(response, 500, "internal")
        assert "internal detail 42" not in await response.text()
        assert body == {"code": "internal", "message": "internal error; see the server log"}


async def test_a_busy_sqlite_database_is_a_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_backend, "BUSY_TIMEOUT_SECONDS", 0.2)
    path = tmp_path / "busy.db"
    settings = Settings(auth=False, event_log_url=f"sqlite:///{path}", retention_interval=0)
    async with Runtime(settings) as runtime, TestClient(TestServer(build_app(runtime, settings))) as client:
        other = sqlite3.connect(path, isolation_level=None)  # another process, writing
        other.execute("BEGIN IMMEDIATE")
        try:
            response = await client.post("/api/v1/definitions", json=ECHO)
            await error(response, 503, "backend_unavailable", "database is locked")
            assert response.headers["Retry-After"] == "1"
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert (await client.post("/api/v1/definitions", json=ECHO)).status == 201


# -- every route, nasty values --------------------------------------------------------------------

NASTY_TEXT = ["", "0", "-1", BIG, LONG, "1e400", "NaN", "-Infinity", "é", "\u0000", "%ff", "a|b", "²", "٣",
              "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-05:00", "true", "[]", "{}"]  # fmt: skip
NASTY_JSON: list[Any] = [None, True, 0, -1, 2**63, 2**31, 10**4000, -(10**4000), 1e308, -1e308, 5e-324, "",
                         "x" * 300, [], {}, [[[[[]]]]], {"a": {"b": [1, "2", None]}}]  # fmt: skip


def _nasty_requests(table: RouteTable, execution_id: str, seed: int, count: int) -> list[tuple[str, str, Any]]:
    chooser = random.Random(seed)
    found: list[tuple[str, str, Any]] = []
    routes = [r for r in table.routes if "/hooks/" not in r.path]
    for _ in range(count):
        route = chooser.choice(routes)
        path = route.path
        for name in ("id", "other", "name", "workflow"):
            value = chooser.choice([execution_id, "echo", *NASTY_TEXT])
            path = path.replace("{" + name + "}", urllib.parse.quote(value, safe="") or "x")
        fields = list(route.query.model_fields.items()) if route.query is not None else []
        names = [info.alias or name for name, info in fields] + ["version", "after", "limit"]
        query = {n: chooser.choice(NASTY_TEXT) for n in chooser.sample(names, k=min(len(names), chooser.randint(0, 3)))}
        if query:
            path += "?" + urllib.parse.urlencode(query)
        body: Any = None
        if route.method == "POST":
            model = route.body.content[0][1] if route.body is not None else None
            keys = list(model.model_fields) if isinstance(model, type) else ["name", "workflow", "input"]
            body = {k: chooser.choice([*NASTY_JSON, "echo"]) for k in chooser.sample(keys, k=chooser.randint(0, len(keys)))}
            if chooser.random() < 0.2:
                body = chooser.choice(NASTY_JSON)
        found.append((route.method, path, body))
    return found


async def test_no_route_answers_500_to_nasty_parameters_or_bodies(client: Client) -> None:
    execution_id = await started(client)
    assert client.app is not None
    table = client.app[ROUTE_TABLE]
    for method, path, body in _nasty_requests(table, execution_id, seed=20260101, count=400):
        data = None if body is None else json.dumps(body).encode()
        response = await client.request(method, path, data=data, headers={"Content-Type": "application/json"})
        if response.content_type == "text/event-stream":  # the live feed: it would stream for minutes
            response.close()
            assert response.status == 200, (method, path)
            continue
        text = await response.text()
        assert response.status < 500, (method, path, body, text)
        if response.status >= 400 and method != "HEAD" and len(path) < 8000:  # aiohttp's own limit
            assert json.loads(text)["error"]["code"], (method, path, text)


@pytest.mark.parametrize("letter", ["%C2%B2", "%D9%A3", LONG, BIG, "-1"])
async def test_a_dead_letter_id_that_is_no_position_is_unknown(client: Client, letter: str) -> None:
    """``"²".isdigit()`` is true and ``int("²")`` raises; a 5000-digit id raises too."""
    response = await client.post(f"/api/v1/dead-letters/commands/{letter}/redrive")
    await error(response, 404, "unknown_dead_letter")
    await error(await client.get("/api/v1/dead-letters/commands?cursor=%C2%B2"), 400, "invalid_parameter", "cursor")
