"""Secure by default: ``orchestrator serve`` needs a key; the first admin key is made with the CLI
against the server's store; the remote CLI sends ORCHESTRATOR_API_KEY; turning authentication
off takes ORCHESTRATOR_AUTH=off and is refused on a non-loopback address."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.auth.control import Unprotected, loopback
from orchestrator.process import run_server
from orchestrator.settings import Settings
from tests.e2e.serverproc import REPO, ServerProcess, cli_env, http_json


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A server with authentication on (the default: ORCHESTRATOR_AUTH unset) and a pepper."""
    tmp = tmp_path_factory.mktemp("secured")
    env = cli_env(f"sqlite:///{tmp}/serve.db", {"ORCHESTRATOR_KEY_PEPPER": "pepper-for-tests"})
    del env["ORCHESTRATOR_AUTH"]
    proc = ServerProcess(env, ["--definitions", "examples/order_flow.yaml"], tmp / "server.log")
    try:
        url = proc.start()
        yield {**env, "ORCHESTRATOR_URL": url}
    finally:
        proc.stop()
        print(proc.output())


def test_the_server_needs_a_key_and_probes_do_not(secured: dict[str, str]) -> None:
    url = secured["ORCHESTRATOR_URL"]
    status, body = http_json("GET", url + "/api/v1/executions")
    assert status == 401 and body["error"]["code"] == "unauthenticated"
    assert http_json("GET", url + "/healthz")[0] == 200
    result = cli(secured, "executions")
    assert result.returncode == 1 and "ORCHESTRATOR_API_KEY" in result.stderr and "Traceback" not in result.stderr


def test_the_first_admin_key_from_the_cli_works_with_the_remote_cli(secured: dict[str, str]) -> None:
    key = ok(cli(secured, "keys", "create", "--role", "admin", "--name", "first admin")).strip()
    env = {**secured, "ORCHESTRATOR_API_KEY": key}
    out = ok(cli(env, "start", "order_flow", "--input", "@examples/order_input.json", "--wait"))
    assert "status: succeeded" in out
    listed = json.loads(ok(cli(env, "executions", "--json")))
    assert len(listed["items"]) == 1 and listed["items"][0]["workflow"] == "order_flow"
    [record] = [k for k in json.loads(ok(cli(secured, "keys", "list", "--json"))) if k["name"] == "first admin"]
    assert record["last_used_at"] is not None  # the server wrote it in the same store

    ok(cli(secured, "keys", "revoke", record["key_id"]))
    revoked = time.monotonic()
    # A revocation by another process is seen within the key cache time (5 s), plus a request.
    deadline = revoked + 10
    while True:
        status, body = http_json("GET", secured["ORCHESTRATOR_URL"] + "/api/v1/executions", headers={"Authorization": f"Bearer {key}"})
        if status != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 401 and body["error"]["code"] == "key_revoked"
    assert time.monotonic() - revoked <= 5 + 3  # the cache bound, and slack for a loaded machine


def test_a_viewer_key_is_forbidden_to_start(secured: dict[str, str]) -> None:
    key = ok(cli(secured, "keys", "create", "--role", "viewer")).strip()
    result = cli({**secured, "ORCHESTRATOR_API_KEY": key}, "start", "order_flow", "--input", "{}")
    assert result.returncode == 1 and "forbidden" in result.stderr and "HTTP 403" in result.stderr


def test_auth_off_is_refused_beyond_loopback(tmp_path: Path) -> None:
    env = cli_env(f"sqlite:///{tmp_path}/x.db")  # ORCHESTRATOR_AUTH=off
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "serve", "--host", "0.0.0.0", "--port", "0"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "ORCHESTRATOR_AUTH=off is allowed only on a loopback address" in result.stderr
    assert "Traceback" not in result.stderr


async def test_run_server_refuses_unauthenticated_on_a_public_address() -> None:
    with pytest.raises(Unprotected):
        await run_server(Settings(auth=False, event_log_url="memory://", host="0.0.0.0", port=0))
    assert loopback("127.0.0.1") and loopback("::1") and loopback("localhost") and loopback("127.8.0.1")
    assert not loopback("0.0.0.0") and not loopback("") and not loopback("10.0.0.1") and not loopback("::")
