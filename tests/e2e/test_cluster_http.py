"""The cluster view across real processes: two servers on one SQLite file see each other; one
killed with SIGKILL turns dead after missed heartbeats, one stopped cleanly has left; each event
names the node that committed it, and ``orchestrator trace`` shows it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.main import main
from tests.e2e.serverproc import ServerProcess, cli_env, http_json

INTERVAL = "0.2"
GREET: dict[str, Any] = {
    "name": "greet",
    "steps": [{"name": "hello", "type": "task", "connector": "noop", "input": {"who": "input.name"}}],
}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    (tmp_path / "greet.json").write_text(json.dumps(GREET))
    procs = []
    for name in ("one", "two"):
        env = cli_env(
            f"sqlite:///{tmp_path}/shared.db",
            {"ORCHESTRATOR_HEARTBEAT_INTERVAL": INTERVAL, "ORCHESTRATOR_NODE_ID": f"node-{name}",
             "ORCHESTRATOR_SECRET_GITHUB": "never-shown-value"},
        )
        procs.append(ServerProcess(env, ["--definitions", str(tmp_path / "greet.json")], tmp_path / f"{name}.log"))
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()
            print(proc.output())


def cluster(url: str) -> dict[str, Any]:
    status, body = http_json("GET", url + "/api/v1/cluster")
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def statuses(url: str) -> dict[str, str]:
    return {n["node_id"]: n["status"] for n in cluster(url)["nodes"]}


def test_two_servers_see_each_other_and_a_killed_one_turns_dead(servers: list[ServerProcess]) -> None:
    one, two = servers
    eventually(lambda: statuses(one.url) == {"node-one": "alive", "node-two": "alive"})
    view = cluster(one.url)
    assert view["self"] == "node-one" and view["counts"]["alive"] == 2
    [me] = [n for n in view["nodes"] if n["node_id"] == "node-one"]
    assert me["role"] == "serve" and me["pid"] == one.pid and me["shards"] is None
    assert me["config"]["secrets"] == ["GITHUB"] and "never-shown-value" not in json.dumps(view)
    two.kill()
    eventually(lambda: statuses(one.url)["node-two"] == "dead")  # three missed heartbeats
    one_alive = statuses(one.url)["node-one"]
    assert one_alive == "alive"


def test_a_stopped_server_has_left(servers: list[ServerProcess]) -> None:
    one, two = servers
    eventually(lambda: statuses(one.url).get("node-two") == "alive")
    two.stop()
    eventually(lambda: statuses(one.url)["node-two"] == "left")


def test_events_name_their_node_and_the_trace_shows_it(
    servers: list[ServerProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    one, _ = servers
    status, started = http_json("POST", one.url + "/api/v1/executions", {"workflow": "greet", "input": {"name": "a"}})
    assert status in (200, 201, 202), started
    execution_id = started["execution_id"]
    eventually(lambda: http_json("GET", f"{one.url}/api/v1/executions/{execution_id}")[1]["status"] == "succeeded")
    status, history = http_json("GET", f"{one.url}/api/v1/executions/{execution_id}/history")
    assert status == 200 and {e["node"] for e in history["events"]} == {"node-one"}
    status, trace = http_json("GET", f"{one.url}/api/v1/executions/{execution_id}/trace")
    assert status == 200 and trace["partition"] == 0 and trace["events_by_node"] == {"node-one": len(history["events"])}
    assert trace["handoffs"] == []  # one node did it all
    capsys.readouterr()
    assert main(["trace", execution_id, "--url", one.url]) == 0
    out = capsys.readouterr().out
    assert "node-one" in out and "StepSucceeded" in out and "partition 0" in out
    assert main(["cluster", "--url", one.url]) == 0
    out = capsys.readouterr().out
    assert "node-one *" in out and "node-two" in out and "alive" in out
    assert http_json("GET", f"{one.url}/api/v1/executions/nope/trace")[0] == 404
    assert http_json("GET", f"{one.url}/api/v1/cluster?config=maybe")[0] == 400
