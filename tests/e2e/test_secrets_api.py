"""Stored secrets over HTTP and the CLI: per tenant, values never answered, refused without a
key; and a step using one over HTTP, with the value absent from every API answer."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.secrets.sealing import new_key
from orchestrator.settings import Settings
from tests.e2e.serverproc import REPO, cli_env

Client = TestClient[web.Request, web.Application]
VALUE = "s3cr3t-over-http"
ACME = {"X-Orchestrator-Tenant": "acme"}
ECHO = {
    "name": "echo_secret",
    "steps": [{"name": "call", "type": "task", "connector": "noop", "input": {"token": "secret('TOKEN')"}}],
}


async def client_for(settings: Settings) -> AsyncIterator[Client]:
    async with Runtime(settings) as runtime:
        client = TestClient(TestServer(build_app(runtime, runtime.settings)))
        await client.start_server()
        try:
            yield client
        finally:
            await client.close()


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async for c in client_for(Settings(auth=False, event_log_url="memory://", retention_interval=0, secrets_key=new_key())):
        yield c


async def test_secrets_are_written_listed_and_deleted_per_tenant(client: Client) -> None:
    put = await client.put("/api/v1/secrets/TOKEN", json={"value": VALUE}, headers=ACME)
    assert put.status == 200, await put.text()
    assert (await put.json())["name"] == "TOKEN" and VALUE not in await put.text()
    listed = await client.get("/api/v1/secrets", headers=ACME)
    assert [i["name"] for i in (await listed.json())["items"]] == ["TOKEN"] and VALUE not in await listed.text()
    assert (await (await client.get("/api/v1/secrets")).json())["items"] == []  # the default tenant has none
    assert (await client.delete("/api/v1/secrets/TOKEN")).status == 404
    assert (await client.delete("/api/v1/secrets/TOKEN", headers=ACME)).status == 200


async def test_bad_requests_are_clear_errors(client: Client) -> None:
    bad = await client.put("/api/v1/secrets/bad-name", json={"value": VALUE})
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "invalid_secret_name"
    empty = await client.put("/api/v1/secrets/OK", json={"value": ""})
    assert empty.status == 400
    extra = await client.put("/api/v1/secrets/OK", json={"value": "x", "show": True})
    assert extra.status == 400


async def test_without_a_key_writes_are_refused() -> None:
    async for client in client_for(Settings(auth=False, event_log_url="memory://", retention_interval=0)):
        response = await client.put("/api/v1/secrets/TOKEN", json={"value": VALUE})
        assert response.status == 409
        error = (await response.json())["error"]
        assert error["code"] == "secrets_unavailable" and "ORCHESTRATOR_SECRETS_KEY" in error["message"]


async def test_a_step_gets_the_value_and_no_answer_shows_it(client: Client) -> None:
    assert (await client.put("/api/v1/secrets/TOKEN", json={"value": VALUE})).status == 200
    assert (await client.post("/api/v1/definitions", json=ECHO)).status == 201
    started = await client.post("/api/v1/executions?wait=10", json={"workflow": "echo_secret"})
    body = await started.json()
    execution_id = body["execution_id"]
    for _ in range(100):
        state = await (await client.get(f"/api/v1/executions/{execution_id}")).json()
        if state["status"] != "running":
            break
        await asyncio.sleep(0.05)
    assert state["status"] == "succeeded"
    history = await client.get(f"/api/v1/executions/{execution_id}/history")
    for text in (json.dumps(state), await history.text()):
        assert VALUE not in text
    assert state["output"] == {"token": "[redacted]"}  # noop echoed it; redacted before recording


def cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "orchestrator", "secrets", *args]
    return subprocess.run(command, cwd=REPO, env=env, input=stdin, capture_output=True, text=True, timeout=60)


def test_the_cli_reads_values_from_stdin_or_a_file_never_argv(tmp_path: Path) -> None:
    env = cli_env(f"sqlite:///{tmp_path}/log.db", {"ORCHESTRATOR_SECRETS_KEY": new_key()})
    assert cli(env, "set", "TOKEN", "--tenant", "acme", stdin=VALUE + "\n").returncode == 0
    (tmp_path / "value").write_text("from-file")
    assert cli(env, "set", "OTHER", "--from-file", str(tmp_path / "value")).returncode == 0
    listed = json.loads(cli(env, "list", "--tenant", "acme", "--json").stdout)
    assert [i["name"] for i in listed] == ["TOKEN"]
    assert VALUE not in (tmp_path / "log.db").read_bytes().decode("latin-1")
    usage = cli(env, "set", "TOKEN", VALUE)  # a value on the command line is not an option
    assert usage.returncode == 2
    assert cli(env, "delete", "TOKEN", "--tenant", "acme").returncode == 0
    assert cli(env, "delete", "TOKEN", "--tenant", "acme").returncode == 1
    keyless = cli({**env, "ORCHESTRATOR_SECRETS_KEY": ""}, "set", "X", stdin="v")
    assert keyless.returncode == 2 and "ORCHESTRATOR_SECRETS_KEY" in keyless.stderr
    audit = subprocess.run(
        [sys.executable, "-m", "orchestrator", "audit", "list", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    records = json.loads(audit.stdout)["items"]
    writes = [(r["action"], r["resource"]["id"], r["outcome"]) for r in records if r["action"].startswith("secrets:")]
    assert ("secrets:write", "TOKEN", "ok") in writes and ("secrets:delete", "TOKEN", "failed") in writes
    assert VALUE not in audit.stdout
