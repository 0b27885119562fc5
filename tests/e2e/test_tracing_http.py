"""Trace context end to end: a W3C ``traceparent`` on an API start or a webhook is recorded on the
execution and travels on to the HTTP calls its steps make; ``serve`` writes JSON log lines."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas import traceparent
from schemas.builder import Workflow
from tests.e2e.serverproc import ServerProcess, cli_env, http_json

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def echo_app(seen: list[str | None]) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent"))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/echo", echo)
    return app


async def started_metadata(runtime: Runtime, execution_id: str) -> Any:
    history = await runtime.history(execution_id)
    return history[0].data.get("metadata", {})


async def test_an_api_start_records_the_trace_and_steps_carry_it_on() -> None:
    seen: list[str | None] = []
    settings = Settings(auth=False, event_log_url="memory://", http_allow=("127.0.0.1",))  # the echo server is on loopback
    async with TestServer(echo_app(seen)) as target, Runtime(settings) as runtime:
        url = str(target.make_url("/echo"))
        await runtime.register(Workflow("traced").task("call", "http", config={"url": url, "json": {}}).build())
        async with TestClient(TestServer(build_app(runtime, settings))) as client:
            response = await client.post(
                "/api/v1/executions", json={"workflow": "traced", "input": {}}, headers={"traceparent": VALID}
            )
            assert response.status == 202
            traced = (await response.json())["execution_id"]
            response = await client.post(
                "/api/v1/executions", json={"workflow": "traced", "input": {}}, headers={"traceparent": "nonsense"}
            )
            untraced = (await response.json())["execution_id"]
        for execution_id in (traced, untraced):
            assert (await runtime.wait(execution_id, timeout=10)).status == "succeeded"
        assert (await started_metadata(runtime, traced)) == {"traceparent": VALID}
        assert (await started_metadata(runtime, untraced)) == {}
        assert (await runtime.state(traced)).traceparent == VALID
    sent = [value for value in seen if value is not None]
    assert len(seen) == 2 and len(sent) == 1  # the invalid one was ignored: no header
    assert traceparent.trace_id_of(sent[0]) == TRACE_ID and sent[0] != VALID  # a new span


async def test_a_webhook_start_records_the_trace() -> None:
    settings = Settings(auth=False, event_log_url="memory://")
    async with Runtime(settings) as runtime:
        hooked = Workflow("hooked").webhook("orders").task("wait", "noop").build()
        await runtime.register(hooked)
        async with TestClient(TestServer(build_app(runtime, settings))) as client:
            response = await client.post(
                "/hooks/orders", json={"n": 1}, headers={"traceparent": VALID, "Idempotency-Key": "d-1"}
            )
            assert response.status == 202, await response.text()
            execution_id = (await response.json())["execution_id"]
        metadata = await started_metadata(runtime, execution_id)
        assert metadata["traceparent"] == VALID and metadata["trigger"] == "webhook"


def test_serve_writes_json_log_lines(tmp_path: Path) -> None:
    env = cli_env(f"sqlite:///{tmp_path / 'o.db'}", {"ORCHESTRATOR_LOG_FORMAT": "json"})
    server = ServerProcess(env, [], tmp_path / "serve.log")
    url = server.start()
    try:
        assert http_json("GET", url + "/api/v1/executions")[0] == 200
    finally:
        server.stop()
    lines = [line for line in server.output().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    serving = [r for r in records if r["message"].startswith("serving on ")]
    assert serving and serving[0]["logger"] == "orchestrator.process" and serving[0]["level"] == "INFO"
    assert serving[0]["node"].startswith(socket.gethostname() + "-")  # the cluster view's node id
    assert all({"time", "level", "logger", "message", "node"} <= set(r) for r in records)
