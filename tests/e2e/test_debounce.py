"""Debounced starts, embedded: quick starts with one key become one execution that runs once,
with the last input, after the quiet period; other keys get their own; a start after the period
starts a new one; the history replays without divergence; a server killed while an execution is
quiet runs it once after the restart (SQLite)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.history.verify import verify_recorded
from orchestrator.ports import ExecutionQuery
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.validation import parse_definition
from tests.e2e.serverproc import ServerProcess, cli_env, http_json

PERIOD = 0.6
DEBOUNCED: dict[str, Any] = {
    "name": "debounced",
    "debounce": {"key": "input.customer", "period": PERIOD},
    "steps": [{"name": "s", "type": "task", "connector": "noop", "input": {"n": "input.n"}}],
}


def types(history: list[Any]) -> list[str]:
    return [e.type for e in history]


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_quick_starts_with_one_key_run_once_with_the_last_input(tmp_path: Path, backend: str) -> None:
    url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 'log.db'}"
    async with Runtime(Settings(auth=False, event_log_url=url)) as runtime:
        await runtime.register(parse_definition(DEBOUNCED))
        started = [await runtime.start_execution("debounced", {"customer": "a", "n": n}) for n in range(1, 6)]
        last_start = runtime.clock()
        other = await runtime.start_execution("debounced", {"customer": "b", "n": 9})
        ids = {s.execution_id for s in started}
        assert len(ids) == 1 and other.execution_id not in ids
        assert started[0].created and not started[0].debounced
        assert all(s.debounced and not s.created for s in started[1:])
        assert other.created and not other.debounced
        final = await runtime.wait(started[0].execution_id, 10)
        assert final.status == "succeeded" and final.output == {"n": 5} and final.input == {"customer": "a", "n": 5}
        history = await runtime.history(started[0].execution_id)
        assert types(history).count("StartDebounced") == 4 and types(history).count("StepScheduled") == 1
        fired = next(e for e in history if e.type == "TimerFired")
        assert fired.data["purpose"] == "debounce"
        scheduled = next(e for e in history if e.type == "StepScheduled")
        assert scheduled.data["args"] == {"n": 5}
        assert (await runtime.wait(other.execution_id, 10)).output == {"n": 9}
        assert runtime.clock() >= last_start + PERIOD - 0.05  # it ran only after the quiet period
        after = await runtime.start_execution("debounced", {"customer": "a", "n": 6})
        assert after.created and after.execution_id not in ids  # the period was over: a new one
        assert (await runtime.wait(after.execution_id, 10)).output == {"n": 6}
        page = await runtime.list_executions(ExecutionQuery(workflow="debounced"))
        assert len(page.items) == 3
        report = await verify_recorded(runtime.log, runtime.registry, "debounced")
        assert report.checks and report.diverged == 0


async def test_starts_of_other_tenants_never_join(tmp_path: Path) -> None:
    async with Runtime(Settings(auth=False, event_log_url="memory://")) as runtime:
        await runtime.register(parse_definition(DEBOUNCED))
        mine = await runtime.start_execution("debounced", {"customer": "a", "n": 1})
        theirs = await runtime.start_execution("debounced", {"customer": "a", "n": 2}, tenant="acme")
        assert theirs.created and theirs.execution_id != mine.execution_id


async def test_a_redrive_is_never_debounced() -> None:
    async with Runtime(Settings(auth=False, event_log_url="memory://")) as runtime:
        await runtime.register(parse_definition(DEBOUNCED))
        done = await runtime.start_execution("debounced", {"customer": "a", "n": 1})
        await runtime.wait(done.execution_id, 10)
        quiet = await runtime.start_execution("debounced", {"customer": "a", "n": 2})
        redriven = await runtime.redrive(done.execution_id)
        assert redriven.created and redriven.execution_id not in (done.execution_id, quiet.execution_id)
        history = await runtime.history(redriven.execution_id)
        assert types(history)[1] == "StepScheduled"  # at once: no quiet period
        assert (await runtime.wait(quiet.execution_id, 10)).output == {"n": 2}


async def test_the_api_refuses_bad_debounces_and_answers_debounced_starts() -> None:
    settings = Settings(auth=False, event_log_url="memory://")
    async with Runtime(settings) as runtime, TestClient(TestServer(build_app(runtime, settings))) as client:
        for debounce, where in (
            ({"key": "input.customer", "period": 0}, "debounce.period"),
            ({"key": "input.customer", "period": -1}, "debounce.period"),
            ({"period": 5}, "debounce.key"),
        ):
            answer = await client.post("/api/v1/definitions", json={**DEBOUNCED, "debounce": debounce})
            body = await answer.json()
            assert answer.status == 400 and body["error"]["code"] == "invalid_definition", body
            assert where in json.dumps(body["error"]["details"])
        assert (await client.post("/api/v1/definitions", json=DEBOUNCED)).status == 201
        first = await client.post("/api/v1/executions", json={"workflow": "debounced", "input": {"customer": "a", "n": 1}})
        second = await client.post("/api/v1/executions", json={"workflow": "debounced", "input": {"customer": "a", "n": 2}})
        one, two = await first.json(), await second.json()
        assert first.status == second.status == 202
        assert one["created"] is True and "debounced" not in one
        assert two == {"execution_id": one["execution_id"], "created": False, "debounced": True}
        assert second.headers["Location"] == f"/api/v1/executions/{one['execution_id']}"
        assert (await runtime.wait(one["execution_id"], 10)).output == {"n": 2}


def test_a_server_killed_while_quiet_runs_the_execution_once_after_the_restart(tmp_path: Path) -> None:
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    (definitions / "debounced.json").write_text(json.dumps({**DEBOUNCED, "debounce": {"key": "input.customer", "period": 3}}))
    server = ServerProcess(cli_env(f"sqlite:///{tmp_path}/debounce.db"), ["--definitions", str(definitions)], tmp_path / "server.log")
    try:
        url = server.start()
        answers = []
        for n in range(1, 6):
            status, body = http_json("POST", f"{url}/api/v1/executions", {"workflow": "debounced", "input": {"customer": "a", "n": n}})
            assert status == 202, body
            answers.append(body)
        assert answers[0]["created"] and "debounced" not in answers[0]
        assert all(a["debounced"] is True and a["execution_id"] == answers[0]["execution_id"] for a in answers[1:])
        execution_id = answers[0]["execution_id"]
        server.kill()  # within the quiet period: nothing has run yet
        url = server.start()
        deadline = time.monotonic() + 30
        execution: Any = None
        while time.monotonic() < deadline:
            status, execution = http_json("GET", f"{url}/api/v1/executions/{execution_id}")
            if execution["status"] != "running":
                break
            time.sleep(0.2)
        assert execution["status"] == "succeeded" and execution["output"] == {"n": 5}, execution
        status, page = http_json("GET", f"{url}/api/v1/executions/{execution_id}/history?limit=1000")
        kinds = [e["type"].rsplit(".", 1)[-1] for e in page["events"]]
        assert kinds.count("StepScheduled") == 1 and kinds.count("StepSucceeded") == 1 and kinds.count("StartDebounced") == 4
        status, listed = http_json("GET", f"{url}/api/v1/executions?workflow=debounced")
        assert [e["execution_id"] for e in listed["items"]] == [execution_id]
    finally:
        server.stop()
        print(server.output())  # shown when the test fails
