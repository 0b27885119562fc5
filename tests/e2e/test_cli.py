"""``python -m orchestrator`` as a user runs it: subprocesses from the repo root, a tmp event log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.serverproc import REPO, ServerProcess, cli_env

EXAMPLES = REPO / "examples"


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(f"sqlite:///{tmp_path}/x.db")


# -- validate -------------------------------------------------------------------------------


def test_validate_accepts_every_example(env: dict[str, str]) -> None:
    out = ok(cli(env, "validate", *map(str, sorted(EXAMPLES.glob("*.yaml")))))
    for name in ("approval", "github_push", "order_flow"):
        assert f"ok: {name}" in out


def test_validate_lists_every_problem_with_its_location(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nsteps:\n"
        "  - {name: a, type: task, connector: noop, next: nowhere}\n"
        "  - {name: b, type: wait}\n"
        "  - {name: c, type: choice, choices: [{when: 'input.x ==', next: a}]}\n"
    )
    result = cli(env, "validate", str(EXAMPLES / "approval.yaml"), str(bad))
    ok(result, 2)  # 2: a definition error, as for run and serve
    assert "ok: approval" in result.stdout
    assert f"{bad}: steps[0].next: unknown step 'nowhere'" in result.stderr
    assert "steps[1]: a wait step needs exactly one of 'seconds' or 'until'" in result.stderr
    assert "steps[2].choices[0].when" in result.stderr

    as_json = json.loads(ok(cli(env, "validate", "--json", str(bad)), 2))
    assert as_json[0]["valid"] is False and len(as_json[0]["problems"]) >= 3


def test_validate_reports_every_file_whatever_it_holds(env: dict[str, str], tmp_path: Path) -> None:
    files = {
        "binary.yaml": b"\x00\x01\x02 binary",
        "latin1.yaml": b"name: caf\xe9\n",
        "deep.yaml": b"[" * 50_000 + b"]" * 50_000,
        "deep.json": b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
        "huge.yaml": b"name: x\ndescription: " + b"x" * (5 * 1024 * 1024),
        "list.yaml": b"- a\n- b\n",
        "dup.yaml": b"name: a\nsteps: [{name: s, type: succeed}]\nname: b\n",
        "dup.json": b'{"name": "a", "steps": [{"name": "s", "type": "succeed"}], "name": "b"}',
        "smtp.yaml": b"name: m\nsteps: [{name: s, type: task, connector: smtp}]\n",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    paths = [str(tmp_path / name) for name in files]
    result = cli(env, "validate", *paths, str(tmp_path / "absent.yaml"), str(EXAMPLES / "approval.yaml"))
    ok(result, 2)
    assert "ok: approval" in result.stdout
    lines = result.stderr.splitlines()
    for path in [*paths, str(tmp_path / "absent.yaml")]:
        assert f"invalid: {path} (1 problem)" in lines
        assert len([line for line in lines if line.startswith(f"  {path}: ")]) == 1
    assert len(lines) == 2 * (len(files) + 1)  # a heading and one line per problem, nothing else
    stderr = result.stderr
    assert f"{tmp_path / 'dup.yaml'}: not valid YAML/JSON (YAML): line 3, column 1: duplicate key 'name'" in stderr
    assert "duplicate key 'name' (first at line 1)" in stderr.split(str(tmp_path / "dup.json"))[-1]
    assert f"{tmp_path / 'smtp.yaml'}: steps[0].connector: unknown connector 'smtp'" in stderr

    as_json = json.loads(ok(cli(env, "validate", "--json", *paths), 2))
    assert [entry["file"] for entry in as_json] == paths and not any(entry["valid"] for entry in as_json)


# -- run ------------------------------------------------------------------------------------


def test_run_order_flow_succeeds_and_shows_the_retry(env: dict[str, str]) -> None:
    out = ok(cli(env, "run", "examples/order_flow.yaml", "--input", "@examples/order_input.json"))
    assert "ExecutionSucceeded" in out
    failed = [line for line in out.splitlines() if "StepFailed" in line]
    assert len(failed) == 1 and "charge_payment" in failed[0] and "retry in 500ms" in failed[0]
    span = next(line.split() for line in out.splitlines() if line.startswith("charge_payment "))
    assert span[1:5] == ["task", "succeeded", "2", "1"]  # kind, status, attempts, retries
    assert "status: succeeded" in out and '"tracking"' in out


def test_run_json_output_parses(env: dict[str, str]) -> None:
    result = cli(env, "run", "examples/order_flow.yaml", "--input", "@examples/order_input.json", "--json")
    data = json.loads(ok(result))
    assert data["status"] == "succeeded" and data["output"]["order_id"] == "ord-1001"
    sequences = [event["sequence"] for event in data["history"]]
    assert sequences == list(range(1, len(sequences) + 1))
    steps = {span["step"]: span for span in data["timeline"]["steps"]}
    assert steps["charge_payment"]["retries"] == 1
    assert steps["charge_payment"]["waited_seconds"] >= 0.5


def test_run_github_push_prints_the_notification(env: dict[str, str]) -> None:
    out = ok(cli(env, "run", "examples/github_push.yaml", "--input", "@examples/github_push_payload.json"))
    assert "checks passed (lint=ok, tests=ok)" in out
    assert "-> notify_passed" in out and "ExecutionSucceeded" in out


def test_run_approval_times_out_into_the_escalation(env: dict[str, str]) -> None:
    out = ok(cli(env, "run", "examples/approval.yaml", "--input", "@examples/approval_input.json"))
    assert "wait_for_decision  event  timed_out" in out
    assert "StepScheduled       escalate" in out
    assert '"decision": "escalated"' in out


def test_run_rejects_bad_input_with_a_clear_error(env: dict[str, str]) -> None:
    result = cli(env, "run", "examples/order_flow.yaml", "--input", '{"order_id": 5}')
    ok(result, 2)
    assert result.stderr.startswith("error: the input does not match the input schema")
    assert "input: 'items' is a required property" in result.stderr
    result = cli(env, "run", "examples/order_flow.yaml", "--input", '{"order_id": ')
    ok(result, 2)
    assert "is not valid JSON" in result.stderr


def test_run_reports_a_failed_execution_with_exit_1(env: dict[str, str], tmp_path: Path) -> None:
    flow = tmp_path / "failing.yaml"
    flow.write_text(
        "name: failing\nsteps:\n"
        "  - {name: fetch, type: task, connector: python,"
        " config: {function: 'tests.no_such_module:f'}}\n"
    )
    result = cli(env, "run", str(flow))
    ok(result, 1)
    assert "status: failed" in result.stdout and "python.import" in result.stdout


def test_run_with_an_invalid_definition_exits_2(env: dict[str, str], tmp_path: Path) -> None:
    flow = tmp_path / "broken.yaml"
    flow.write_text("name: broken\nsteps: []\n")
    result = cli(env, "run", str(flow))
    ok(result, 2)
    assert f"error: invalid workflow definition {flow}" in result.stderr
    assert "steps" in result.stderr


def test_run_with_a_child_registers_the_child_first(env: dict[str, str], tmp_path: Path) -> None:
    parent, kid = tmp_path / "parent.yaml", tmp_path / "kid.yaml"
    parent.write_text("name: parent\nsteps:\n  - {name: call, type: subworkflow, workflow: kid, version: 1}\n")
    kid.write_text("name: kid\nsteps:\n  - {name: done, type: succeed, output: \"'from kid'\"}\n")
    out = ok(cli(env, "run", str(parent), "--with", str(kid)))
    assert "status: succeeded" in out and "from kid" in out
    alone = cli(env, "run", str(tmp_path / "parent.yaml"), "--event-log", f"sqlite:///{tmp_path}/other.db")
    ok(alone, 2)
    assert "steps[0].workflow: unknown workflow 'kid': register it first" in alone.stderr


def test_usage_errors_exit_2(env: dict[str, str]) -> None:
    assert cli(env, "frobnicate").returncode == 2
    assert cli(env, "run").returncode == 2


def test_remote_command_without_a_server_fails_in_one_line(env: dict[str, str]) -> None:
    result = cli(env, "executions", "--url", "http://127.0.0.1:9")
    ok(result, 1)
    assert result.stderr.startswith("error: server not reachable at http://127.0.0.1:9")
    assert len(result.stderr.strip().splitlines()) == 1


# -- remote commands against a real server ---------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("serve")
    env = cli_env(f"sqlite:///{tmp}/serve.db")
    proc = ServerProcess(
        env, ["--definitions", "examples/approval.yaml", "examples/order_flow.yaml"], tmp / "server.log"
    )
    try:
        url = proc.start()
        yield {**env, "ORCHESTRATOR_URL": url}
    finally:
        proc.stop()
        print(proc.output())  # shown when a test fails


def start(env: dict[str, str], workflow: str, value: Any) -> str:
    out = ok(cli(env, "start", workflow, "--input", json.dumps(value), "--json"))
    answer = json.loads(out)
    assert answer["created"] is True
    return str(answer["execution_id"])


def wait_status(env: dict[str, str], execution_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        execution: dict[str, Any] = json.loads(ok(cli(env, "get", execution_id, "--json")))
        if execution["status"] != "running" or time.monotonic() > deadline:
            return execution
        time.sleep(0.2)


def test_start_wait_history_and_listing(server: dict[str, str]) -> None:
    out = ok(cli(server, "start", "order_flow", "--input", "@examples/order_input.json", "--wait"))
    assert "ExecutionSucceeded" in out and "status: succeeded" in out
    execution_id = out.split()[1]

    listed = json.loads(ok(cli(server, "executions", "--workflow", "order_flow", "--json")))
    assert execution_id in [item["execution_id"] for item in listed["items"]]
    table = ok(cli(server, "executions", "--status", "succeeded"))
    assert execution_id in table and table.startswith("ID")

    history = json.loads(ok(cli(server, "history", execution_id, "--json")))
    assert [e["sequence"] for e in history] == list(range(1, len(history) + 1))
    retries = ok(cli(server, "history", execution_id, "--type", "StepFailed"))
    assert "charge_payment" in retries and "retry in" in retries

    state = json.loads(ok(cli(server, "state", execution_id, "--at", "3", "--json")))
    assert state["sequence"] == 3 and state["status"] == "running"
    assert "order_flow" in ok(cli(server, "definitions"))


def test_idempotency_key_starts_once(server: dict[str, str]) -> None:
    args = (
        "start",
        "order_flow",
        "--input",
        "@examples/order_input.json",
        "--idempotency-key",
        "order-ord-1001",
        "--json",
    )
    first, second = (json.loads(ok(cli(server, *args))) for _ in range(2))
    assert first["execution_id"] == second["execution_id"]
    assert (first["created"], second["created"]) == (True, False)


def test_signal_approves_a_waiting_request(server: dict[str, str]) -> None:
    execution_id = start(server, "approval", {"request_id": "sig-1", "requester": "a", "amount": 5})
    out = ok(cli(server, "signal", execution_id, "approval", "--payload", '{"approved": true, "by": "ana"}'))
    assert execution_id in out
    execution = wait_status(server, execution_id)
    assert execution["status"] == "succeeded"
    assert execution["output"] == {"request_id": "sig-1", "decision": "approved", "by": "ana"}


def test_event_by_correlation_key_rejects_a_request(server: dict[str, str]) -> None:
    execution_id = start(server, "approval", {"request_id": "evt-1", "requester": "a", "amount": 5})
    deadline = time.monotonic() + 10
    while True:  # the event reaches only an execution that already waits for it
        out = ok(
            cli(
                server,
                "event",
                "approval",
                "--key",
                "evt-1",
                "--payload",
                '{"approved": false, "reason": "no budget"}',
            )
        )
        if execution_id in out or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    execution = wait_status(server, execution_id)
    assert execution["status"] == "failed"
    assert execution["error"]["type"] == "Rejected"
    found = json.loads(ok(cli(server, "executions", "--correlation-key", "evt-1", "--json")))
    assert [item["execution_id"] for item in found["items"]] == [execution_id]
    starter = found["items"][0]["started_by"]
    assert starter == "api"  # what the API records without authentication
    mine = json.loads(ok(cli(server, "executions", "--started-by", starter, "--status", "failed", "--json")))
    assert execution_id in [item["execution_id"] for item in mine["items"]]
    assert json.loads(ok(cli(server, "executions", "--started-by", "webhook:none", "--json")))["items"] == []


def test_cancel_a_waiting_execution(server: dict[str, str]) -> None:
    execution_id = start(server, "approval", {"request_id": "can-1", "requester": "a", "amount": 5})
    out = ok(cli(server, "cancel", execution_id, "--reason", "changed my mind"))
    assert "status: cancelled" in out
    result = cli(server, "cancel", execution_id)
    ok(result, 1)
    assert "already cancelled" in result.stderr


def test_remote_errors_are_one_clear_line(server: dict[str, str]) -> None:
    result = cli(server, "get", "no-such-execution")
    ok(result, 1)
    assert result.stderr.startswith("error: no execution no-such-execution")
    result = cli(server, "start", "approval", "--input", "{}")
    ok(result, 2)
    assert "input: 'request_id' is a required property" in result.stderr


def test_reasons_reach_the_history_and_the_audit_trail(server: dict[str, str]) -> None:
    execution_id = start(server, "approval", {"request_id": "why-1", "requester": "a", "amount": 5})
    ok(cli(server, "signal", execution_id, "nudge", "--reason", "checking on it"))
    events = json.loads(ok(cli(server, "history", execution_id, "--json")))
    signal = next(e for e in events if e["type"].endswith(".SignalReceived"))
    assert (signal["data"]["reason"], signal["actor"]) == ("checking on it", "api")

    store = {k: v for k, v in server.items() if k != "ORCHESTRATOR_URL"}  # straight on the server's store
    listed = json.loads(ok(cli(store, "audit", "list", "--resource", f"executions/{execution_id}", "--json")))
    seen = [(r["action"], r["reason"], r["outcome"]) for r in listed["items"]]
    assert seen[:2] == [("executions:start", None, "ok"), ("executions:signal", "checking on it", "ok")]
