"""``orchestrator triggers | trigger-enable | trigger-disable`` against real ``serve`` processes.

Two servers share one SQLite file, as two processes share a registry: a trigger disabled through
one is refused by the other within its poll interval. A queue trigger whose connection is not
configured shows its error and does not stop the server.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.serverproc import REPO, ServerProcess, cli_env, http_json
from tests.e2e.test_cli import cli, ok

ORDERS = """\
name: orders
triggers:
  - {type: webhook, name: order-hook}
  - {type: kafka, name: paid, connection: nowhere, topics: [payments]}
steps:
  - {name: done, type: succeed}
"""
POLL = 0.2


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], ServerProcess, str]]:
    """(env, first server, second server's URL): the first registers the definition at start."""
    tmp = tmp_path_factory.mktemp("triggers")
    (tmp / "defs").mkdir()
    (tmp / "defs" / "orders.yaml").write_text(ORDERS)
    env = cli_env(f"sqlite:///{tmp}/shared.db", {"ORCHESTRATOR_TRIGGER_POLL_INTERVAL": str(POLL)})
    first = ServerProcess(env, ["--definitions", str(tmp / "defs")], tmp / "first.log")
    second = ServerProcess(env, [], tmp / "second.log")
    try:
        first_url = first.start()
        second_url = second.start()
        yield {**env, "ORCHESTRATOR_URL": first_url}, first, second_url
    finally:
        first.stop()
        second.stop()
        print(first.output(), second.output())  # shown when a test fails


def hook_status(url: str) -> int:
    status, _ = http_json("POST", url + "/hooks/order-hook", {"n": 1})
    return status


def until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        time.sleep(0.05)


def test_lists_triggers_and_a_broken_source_does_not_stop_the_server(
    servers: tuple[dict[str, str], ServerProcess, str],
) -> None:
    env, first, _ = servers
    answer = json.loads(ok(cli(env, "triggers", "--json")))

    triggers = {t["name"]: t for t in answer["triggers"]}
    assert answer["runs_sources"] is True
    assert (triggers["order-hook"]["type"], triggers["order-hook"]["running"]) == ("webhook", True)
    paid = triggers["paid"]
    assert (paid["type"], paid["enabled"], paid["running"]) == ("kafka", True, False)
    assert paid["details"]["group"] == "orchestrator.orders.paid"
    assert "nowhere" in paid["error"], paid
    assert http_json("GET", first.url + "/readyz")[0] == 200

    time.sleep(5 * POLL)  # several failed retries...
    logged = [line for line in first.output().splitlines() if "ERROR" in line and "orders/paid" in line]
    assert len(logged) == 1, logged  # ...reported once

    table = ok(cli(env, "triggers"))
    assert "POST /hooks/order-hook" in table and "nowhere: payments (group orchestrator.orders.paid)" in table
    assert table.splitlines()[0].split()[:6] == ["WORKFLOW", "VERSION", "NAME", "TYPE", "ENABLED", "RUNNING"]


def test_disable_and_enable_reach_every_server(servers: tuple[dict[str, str], ServerProcess, str]) -> None:
    env, first, second_url = servers
    assert hook_status(first.url) == 202 and hook_status(second_url) == 202

    out = ok(cli(env, "trigger-disable", "orders", "order-hook"))

    assert out.strip() == "trigger orders/order-hook (webhook) disabled; not running here"
    assert hook_status(first.url) == 404  # at once where it was changed
    until(lambda: hook_status(second_url) == 404)  # within a poll elsewhere
    listed = json.loads(ok(cli({**env, "ORCHESTRATOR_URL": second_url}, "triggers", "--json")))
    hook = next(t for t in listed["triggers"] if t["name"] == "order-hook")
    assert (hook["enabled"], hook["override"]) == (False, False)

    view = json.loads(
        ok(cli({**env, "ORCHESTRATOR_URL": second_url}, "trigger-enable", "orders", "order-hook", "--json"))
    )

    assert (view["enabled"], view["override"], view["running"]) == (True, True, True)
    until(lambda: hook_status(first.url) == 202)


def test_unknown_triggers_are_reported_in_one_line(
    servers: tuple[dict[str, str], ServerProcess, str],
) -> None:
    env, _, _ = servers
    for args, code in [(("orders", "nope"), "unknown_trigger"), (("nope", "paid"), "unknown_workflow")]:
        result = cli(env, "trigger-disable", *args)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert f"({code}, HTTP 404)" in result.stderr, result.stderr


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    env = cli_env(f"sqlite:///{tmp_path}/x.db", {"ORCHESTRATOR_URL": "http://127.0.0.1:9"})
    result = cli(env, "triggers")
    assert result.returncode == 1 and "server not reachable" in result.stderr


def test_a_worker_runs_the_triggers_and_survives_a_broken_one(tmp_path: Path) -> None:
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "orders.yaml").write_text(ORDERS)
    env = cli_env(f"sqlite:///{tmp_path}/worker.db", {"ORCHESTRATOR_TRIGGER_POLL_INTERVAL": str(POLL)})
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "worker", "--definitions", str(tmp_path / "defs")],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        until(lambda: "worker running" in log_path.read_text())
        time.sleep(5 * POLL)
        assert worker.poll() is None, log_path.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(15)
    output = log_path.read_text()
    errors = [line for line in output.splitlines() if "ERROR" in line and "orders/paid" in line]
    assert len(errors) == 1 and "connection 'nowhere' is not configured" in errors[0], output
    assert code == 0 and "Traceback" not in output, output
