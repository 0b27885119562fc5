"""Tenant and actor at the HTTP edge: the X-Orchestrator-Tenant header (or what authentication
puts on the request), definitions owned by a tenant, webhooks named per tenant, dead letters of
a tenant, and the CLI's --tenant. A workflow name belongs to one tenant: each tenant here has its
own ``<tenant>-parked``."""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.cli.main import main
from orchestrator.core.commands import CancelExecution
from orchestrator.ports import ExecutionQuery
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

Client = TestClient[web.Request, web.Application]
TENANT = "X-Orchestrator-Tenant"
ACME = {TENANT: "acme"}
PARKED = {
    "name": "parked",
    "steps": [
        {
            "name": "hold",
            "type": "wait_for_event",
            "event": "go",
            "correlation_key": "input.key",
            "next": "done",
        },
        {"name": "done", "type": "succeed", "output": "steps.hold"},
    ],
}
HOOKED = {
    "name": "hooked",
    "triggers": [{"type": "webhook", "name": "orders"}, {"type": "webhook", "name": "plain-orders"}],
    "steps": [{"name": "done", "type": "succeed", "output": "input"}],
}
ACME_HOOKED = {**HOOKED, "name": "acme-hooked", "triggers": [{"type": "webhook", "name": "orders"}]}
OWNED = [  # (tenant, definition)
    ("default", PARKED),
    ("acme", {**PARKED, "name": "acme-parked"}),
    ("globex", {**PARKED, "name": "globex-parked"}),
    ("default", HOOKED),
    ("acme", ACME_HOOKED),
]


def parked(headers: dict[str, str] | None) -> str:
    """The parked workflow of the tenant the headers name."""
    tenant = (headers or {}).get(TENANT, "default")
    return "parked" if tenant == "default" else f"{tenant}-parked"


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with Runtime(Settings(auth=False, event_log_url="memory://", retention_interval=0)) as runtime:
        yield runtime


async def serve(runtime: Runtime, app: web.Application | None = None) -> Client:
    client = TestClient(TestServer(app or build_app(runtime, runtime.settings)))
    await client.start_server()
    if app is not None:  # registered by the client fixture
        return client
    for tenant, definition in OWNED:
        response = await client.post("/api/v1/definitions", json=definition, headers={TENANT: tenant})
        assert response.status == 201, await response.text()
    return client


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    client = await serve(runtime)
    try:
        yield client
    finally:
        await client.close()


async def answer(response: Any, status: int) -> Any:
    text = await response.text()
    assert response.status == status, text
    assert "Traceback" not in text
    return json.loads(text)


async def start(
    client: Client, key: str, headers: dict[str, str] | None = None, workflow: str | None = None
) -> str:
    body = {"workflow": workflow or parked(headers), "input": {"key": key}}
    started = await answer(await client.post("/api/v1/executions", json=body, headers=headers), 202)
    return str(started["execution_id"])


# -- the header --------------------------------------------------------------------------------


async def test_without_the_header_an_execution_is_in_the_default_tenant(
    client: Client, runtime: Runtime
) -> None:
    execution_id = await start(client, "k")
    got = await answer(await client.get(f"/api/v1/executions/{execution_id}"), 200)
    assert got["tenant"] == "default" and got["started_by"] == "api"
    events = await runtime.history(execution_id)
    assert {(e.tenant, e.actor) for e in events} == {("default", "api")}


async def test_the_header_names_the_tenant_of_every_route(client: Client, runtime: Runtime) -> None:
    execution_id = await start(client, "k", ACME)
    base = f"/api/v1/executions/{execution_id}"
    assert (await answer(await client.get(base, headers=ACME), 200))["tenant"] == "acme"
    for path in ("/history", "/state", "/timeline", "/links", f"/diff/{execution_id}"):
        await answer(await client.get(base + path, headers=ACME), 200)
    listed = await answer(await client.get("/api/v1/executions", headers=ACME), 200)
    assert [item["execution_id"] for item in listed["items"]] == [execution_id]
    # an event published in the default tenant does not reach it; in its own it does
    event = {"name": "go", "correlation_key": "k", "payload": {"v": 1}}
    assert (await answer(await client.post("/api/v1/events", json=event), 202))["delivered_to"] == []
    delivered = await answer(await client.post("/api/v1/events", json=event, headers=ACME), 202)
    assert delivered["delivered_to"] == [execution_id]
    final = await runtime.wait(execution_id, timeout=5, tenant="acme")
    assert final.status == "succeeded" and final.output == {"v": 1}
    events = await runtime.history(execution_id, tenant="acme")
    assert {(e.tenant, e.actor) for e in events} == {("acme", "api")}


async def test_another_tenants_execution_is_404_everywhere(client: Client, runtime: Runtime) -> None:
    execution_id = await start(client, "k", ACME)
    mine = await start(client, "k")
    base = f"/api/v1/executions/{execution_id}"
    for path in ("", "/history", "/state", "/timeline", "/links", f"/diff/{mine}"):
        body = await answer(await client.get(base + path), 404)
        assert body["error"]["code"] == "unknown_execution"
    for path, body in (("/cancel", {}), ("/signals", {"name": "go"}), ("/redrive", {})):
        got = await answer(await client.post(base + path, json=body), 404)
        assert got["error"]["code"] == "unknown_execution"
    assert await answer(await client.get(f"/api/v1/executions/{mine}", headers=ACME), 404)
    listed = await answer(await client.get("/api/v1/executions"), 200)
    assert [item["execution_id"] for item in listed["items"]] == [mine]
    state = await runtime.state(execution_id, tenant="acme")
    assert state.status == "running" and state.signals == ()  # nothing reached it


@pytest.mark.parametrize("bad", ["Acme", "-acme", "a" * 64, "a b", "ac.me", ""])
async def test_an_invalid_tenant_header_is_400(client: Client, runtime: Runtime, bad: str) -> None:
    headers = {TENANT: bad}
    for method, path, body in (
        ("POST", "/api/v1/executions", {"workflow": "parked", "input": {"key": "k"}}),
        ("GET", "/api/v1/executions", None),
        ("GET", "/api/v1/executions/some-id", None),
        ("POST", "/api/v1/events", {"name": "go", "correlation_key": "k"}),
        ("POST", "/api/v1/replay/verify", {"workflow": "parked"}),
    ):
        response = await client.request(method, path, json=body, headers=headers)
        got = await answer(response, 400)
        assert got["error"]["code"] == "invalid_tenant", got
        assert TENANT in got["error"]["message"]
    assert (await runtime.log.list_executions(ExecutionQuery())).items == []


@pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")  # the keys are plain strings
async def test_what_authentication_sets_on_the_request_comes_first(runtime: Runtime, client: Client) -> None:
    @web.middleware
    async def authenticated(request: web.Request, handler: Any) -> web.StreamResponse:
        request["tenant"], request["actor"] = "globex", "user:ada"
        response: web.StreamResponse = await handler(request)
        return response

    app = build_app(runtime, runtime.settings)
    app.middlewares.append(authenticated)
    authed = await serve(runtime, app)
    try:
        execution_id = await start(
            authed, "k", ACME, "globex-parked"
        )  # the header loses to the principal's tenant
        events = await runtime.history(execution_id, tenant="globex")
        assert {(e.tenant, e.actor) for e in events} == {("globex", "user:ada")}
    finally:
        await authed.close()


async def test_replay_verify_reads_only_the_tenants_executions(client: Client) -> None:
    await start(client, "k", ACME)
    await start(client, "k")
    await start(client, "k")
    acme = await answer(
        await client.post("/api/v1/replay/verify", json={"workflow": "acme-parked"}, headers=ACME), 200
    )
    default = await answer(await client.post("/api/v1/replay/verify", json={"workflow": "parked"}), 200)
    assert (len(acme["executions"]), len(default["executions"])) == (1, 2)
    for workflow, headers in (("parked", ACME), ("acme-parked", None)):  # the other tenant's: not found
        got = await answer(
            await client.post("/api/v1/replay/verify", json={"workflow": workflow}, headers=headers), 404
        )
        assert got["error"]["code"] == "unknown_workflow"


async def test_the_openapi_document_names_the_header(client: Client) -> None:
    document = await answer(await client.get("/api/v1/openapi.json"), 200)
    names = {
        path: [p["name"] for p in op.get("parameters", [])]
        for path, ops in document["paths"].items()
        for op in ops.values()
    }
    assert TENANT in names["/api/v1/executions"] and TENANT in names["/api/v1/events"]
    assert TENANT in names["/api/v1/executions/{id}/history"]
    assert TENANT in names["/api/v1/definitions"] and TENANT in names["/api/v1/definitions/{name}"]
    assert TENANT in names["/api/v1/dead-letters/commands"]
    assert TENANT not in names["/hooks/{name}"] and "tenant" in names["/hooks/{tenant}/{name}"]


# -- webhooks ----------------------------------------------------------------------------------


async def test_a_webhook_starts_in_its_definitions_tenant_as_the_hook(
    client: Client, runtime: Runtime
) -> None:
    started = await answer(await client.post("/hooks/acme/orders", json={"n": 1}), 202)
    events = await runtime.history(started["execution_id"], tenant="acme")
    assert {(e.tenant, e.actor, e.workflow) for e in events} == {("acme", "webhook:orders", "acme-hooked")}
    plain = await answer(await client.post("/hooks/plain-orders", json={"n": 2}, headers=ACME), 202)
    events = await runtime.history(plain["execution_id"])  # the header is not a webhook's to set
    assert {(e.tenant, e.actor) for e in events} == {("default", "webhook:plain-orders")}


async def test_two_tenants_each_have_a_hook_of_the_same_name(client: Client, runtime: Runtime) -> None:
    mine = await answer(await client.post("/hooks/orders", json={"n": 1}), 202)
    also_mine = await answer(await client.post("/hooks/default/orders", json={"n": 2}), 202)
    theirs = await answer(await client.post("/hooks/acme/orders", json={"n": 3}), 202)
    for execution_id, tenant, workflow in (
        (mine["execution_id"], "default", "hooked"),
        (also_mine["execution_id"], "default", "hooked"),
        (theirs["execution_id"], "acme", "acme-hooked"),
    ):
        assert (await runtime.summary(execution_id, tenant=tenant)).workflow == workflow
    for path in ("/hooks/acme/plain-orders", "/hooks/globex/orders", "/hooks/Bad%20Tenant/orders"):
        got = await answer(await client.post(path, json={}), 404)
        assert got["error"]["code"] == "unknown_hook", path
    listed = await answer(await client.get("/hooks", headers=ACME), 200)
    assert [(h["name"], h["workflow"]) for h in listed["hooks"]] == [("orders", "acme-hooked")]
    listed = await answer(await client.get("/hooks"), 200)
    assert [(h["name"], h["workflow"]) for h in listed["hooks"]] == [
        ("orders", "hooked"),
        ("plain-orders", "hooked"),
    ]


async def test_a_hook_name_is_taken_only_within_its_tenant(client: Client) -> None:
    again = {**ACME_HOOKED, "name": "acme-other"}
    got = await answer(await client.post("/api/v1/definitions", json=again, headers=ACME), 409)
    assert got["error"]["code"] == "hook_taken"
    globex = {**ACME_HOOKED, "name": "globex-hooked"}
    await answer(await client.post("/api/v1/definitions", json=globex, headers={TENANT: "globex"}), 201)


# -- definitions -------------------------------------------------------------------------------


async def test_definitions_are_seen_only_in_their_tenant(client: Client) -> None:
    for headers, mine, theirs in (
        (None, ["hooked", "parked"], "acme-parked"),
        (ACME, ["acme-hooked", "acme-parked"], "parked"),
    ):
        listed = await answer(await client.get("/api/v1/definitions", headers=headers), 200)
        assert [d["name"] for d in listed["items"]] == mine
        base = f"/api/v1/definitions/{theirs}"
        for path in ("", "?version=1", "/versions", "/diff?from=1&to=1"):
            got = await answer(await client.get(base + path, headers=headers), 404)
            assert got["error"]["code"] == "unknown_workflow", path
        body = {"workflow": theirs, "input": {"key": "k"}}
        got = await answer(await client.post("/api/v1/executions", json=body, headers=headers), 404)
        assert got["error"]["code"] == "unknown_workflow"
        got = await answer(
            await client.post("/api/v1/executions", json={**body, "version": 1}, headers=headers), 404
        )
        assert got["error"]["code"] == "unknown_workflow"
        own = await answer(await client.get(f"/api/v1/definitions/{mine[1]}", headers=headers), 200)
        assert own["tenant"] == ("acme" if headers else "default")
    # the same message for a name that is not registered at all: nothing tells the two apart
    missing = await answer(await client.get("/api/v1/definitions/nothing-here"), 404)
    other = await answer(await client.get("/api/v1/definitions/acme-parked"), 404)
    assert missing["error"]["message"].replace("nothing-here", "X") == other["error"]["message"].replace(
        "acme-parked", "X"
    )


async def test_a_name_another_tenant_owns_is_409_without_saying_whose(client: Client) -> None:
    got = await answer(await client.post("/api/v1/definitions", json={**PARKED, "name": "acme-parked"}), 409)
    assert got["error"]["code"] == "workflow_name_taken" and "acme" not in got["error"]["message"].replace(
        "acme-parked", ""
    )
    got = await answer(await client.post("/api/v1/definitions", json={**PARKED, "tenant": "acme"}), 400)
    assert got["error"]["details"][0]["location"] == "tenant"  # the body cannot pick another tenant
    same = await answer(
        await client.post(
            "/api/v1/definitions", json={**PARKED, "name": "acme-parked", "tenant": "acme"}, headers=ACME
        ),
        200,
    )
    assert same["version"] == 1 and same["tenant"] == "acme"


async def test_a_trigger_belongs_to_its_definitions_tenant(client: Client) -> None:
    foreign = {
        **HOOKED,
        "name": "foreign",
        "triggers": [{"type": "webhook", "name": "f", "tenant": "globex"}],
    }
    got = await answer(await client.post("/api/v1/definitions", json=foreign, headers=ACME), 400)
    assert got["error"]["details"][0]["location"] == "triggers[0].tenant"
    stored = await answer(await client.get("/api/v1/definitions/acme-hooked", headers=ACME), 200)
    assert [t["tenant"] for t in stored["triggers"]] == ["acme"]  # the default took the definition's


async def test_a_child_workflow_of_another_tenant_is_unknown(client: Client) -> None:
    parent = {
        "name": "acme-parent",
        "steps": [{"name": "child", "type": "subworkflow", "workflow": "parked"}],
    }
    got = await answer(await client.post("/api/v1/definitions", json=parent, headers=ACME), 400)
    assert got["error"]["code"] == "invalid_definition" and "parked" in json.dumps(got["error"]["details"])


# -- dead letters ------------------------------------------------------------------------------


async def test_dead_letters_are_listed_and_redriven_in_their_tenant(client: Client, runtime: Runtime) -> None:
    acme = await start(client, "k", ACME)
    for execution_id in (acme, "nowhere"):
        command = CancelExecution(execution_id=execution_id, now=0.0)
        tenant = "acme" if execution_id == acme else "default"
        await runtime.dead_letters.park(command, RuntimeError("poison"), 1, tenant)
    for headers, mine, theirs in ((ACME, acme, "nowhere"), (None, "nowhere", acme)):
        listed = await answer(await client.get("/api/v1/dead-letters/commands", headers=headers), 200)
        assert [(d["execution_id"], d["tenant"]) for d in listed["items"]] == [
            (mine, (headers or {}).get(TENANT, "default"))
        ]
        other = "0" if theirs == acme else "1"
        got = await answer(
            await client.post(f"/api/v1/dead-letters/commands/{other}/redrive", headers=headers), 404
        )
        assert got["error"]["code"] == "unknown_dead_letter"


# -- the CLI -----------------------------------------------------------------------------------


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``orchestrator ARGV`` (it runs its own event loop: in a thread beside the server's)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_the_cli_tenant_option_is_sent_as_the_header(
    client: Client, runtime: Runtime, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(client.make_url("")).rstrip("/")
    code, out, _ = await cli(
        capsys, "start", "acme-parked", "--input", '{"key": "c"}', "--url", url, "--tenant", "acme", "--json"
    )
    assert code == 0
    execution_id = json.loads(out)["execution_id"]
    assert (await runtime.summary(execution_id, tenant="acme")).tenant == "acme"

    code, out, _ = await cli(capsys, "executions", "--url", url, "--tenant", "acme", "--json")
    assert code == 0 and [i["execution_id"] for i in json.loads(out)["items"]] == [execution_id]
    code, out, _ = await cli(capsys, "executions", "--url", url, "--json")
    assert code == 0 and json.loads(out)["items"] == []
    code, _, err = await cli(capsys, "get", execution_id, "--url", url)
    assert code == 1 and "unknown_execution" in err and "HTTP 404" in err
    monkeypatch.setenv("ORCHESTRATOR_TENANT", "acme")
    code, out, _ = await cli(capsys, "signal", execution_id, "go", "--payload", '{"ok": 1}', "--url", url)
    assert code == 0 and "delivered" in out
    assert (await runtime.wait(execution_id, timeout=5, tenant="acme")).output == {"ok": 1}


async def test_an_invalid_cli_tenant_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = await cli(capsys, "executions", "--url", "http://127.0.0.1:9", "--tenant", "No Such")
    assert code == 2 and "invalid tenant" in err


async def test_cli_run_records_the_os_user_as_the_actor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "ada")
    monkeypatch.setenv("LOGNAME", "ada")
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"name": "flow", "steps": [{"name": "done", "type": "succeed"}]}))
    db = f"sqlite:///{tmp_path / 'run.db'}"
    code, out, _ = await cli(capsys, "run", str(flow), "--event-log", db, "--json")
    assert code == 0
    history = json.loads(out)["history"]
    assert getpass.getuser() == "ada"
    assert {(e["tenant"], e["actor"]) for e in history} == {("default", "cli:ada")}
