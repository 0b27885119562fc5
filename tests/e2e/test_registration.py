"""Registration refuses what could only fail later (orchestrator/engine/registration.py): unknown
connectors, unregistered child workflows or versions, a webhook name another workflow serves;
through the runtime, the REST API (400/409 with codes) and the definitions a server loads."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.base import Connectors
from connectors.noop import NoopConnector
from orchestrator.ports import HookTaken
from orchestrator.process import build_app, load_definitions, register_definitions
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.validation import DefinitionError, parse_definition

Client = TestClient[web.Request, web.Application]
DONE = {"name": "done", "type": "succeed"}


def wf(name: str, *steps: dict[str, Any], hooks: tuple[str, ...] = (), **top: Any) -> dict[str, Any]:
    triggers = [{"type": "webhook", "name": hook} for hook in hooks]
    return {"name": name, "triggers": triggers, "steps": [*steps, DONE], **top}


def child(workflow: str, version: int | None = None) -> dict[str, Any]:
    step = {"name": "kid", "type": "subworkflow", "workflow": workflow, "next": "done"}
    return step | ({"version": version} if version is not None else {})


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with Runtime(Settings(auth=False, event_log_url="memory://")) as runtime:
        yield runtime


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        yield client


async def error(response: Any, status: int, code: str) -> dict[str, Any]:
    text = await response.text()
    assert response.status == status, text
    assert "Traceback" not in text
    body: dict[str, Any] = json.loads(text)["error"]
    assert body["code"] == code, body
    return body


async def test_an_unknown_connector_is_refused_with_the_step_location(runtime: Runtime, client: Client) -> None:
    definition = wf("mail", {"name": "send", "type": "task", "connector": "smtp", "next": "done"})
    body = await error(await client.post("/api/v1/definitions", json=definition), 400, "invalid_definition")
    [detail] = body["details"]
    assert detail["location"] == "steps[0].connector"
    assert detail["message"].startswith("unknown connector 'smtp' (this process has: amqp.publish, http,")
    assert await runtime.registry.versions("mail") == []


async def test_the_connector_set_is_the_runtimes_own() -> None:
    definition = parse_definition(wf("plain", {"name": "t", "type": "task", "connector": "http", "next": "done"}))
    async with Runtime(Settings(auth=False, event_log_url="memory://"), connectors=Connectors([NoopConnector()])) as runtime:
        with pytest.raises(DefinitionError, match="unknown connector 'http' \\(this process has: noop\\)"):
            await runtime.register(definition)
        noop = parse_definition(wf("plain", {"name": "t", "type": "task", "connector": "noop", "next": "done"}))
        assert (await runtime.register(noop)).version == 1


async def test_a_child_workflow_and_a_pinned_version_must_exist(runtime: Runtime, client: Client) -> None:
    response = await client.post("/api/v1/definitions", json=wf("parent", child("kid")))
    [detail] = (await error(response, 400, "invalid_definition"))["details"]
    assert detail == {"location": "steps[0].workflow", "message": "unknown workflow 'kid': register it first"}

    assert (await client.post("/api/v1/definitions", json=wf("kid"))).status == 201
    assert (await client.post("/api/v1/definitions", json=wf("parent", child("kid")))).status == 201
    pinned = await client.post("/api/v1/definitions", json=wf("pinned", child("kid", 2)))
    [detail] = (await error(pinned, 400, "invalid_definition"))["details"]
    assert detail == {"location": "steps[0].version", "message": "workflow 'kid' has no version 2 (registered: 1)"}
    assert (await client.post("/api/v1/definitions", json=wf("pinned", child("kid", 1)))).status == 201


async def test_a_workflow_may_start_itself(client: Client) -> None:
    assert (await client.post("/api/v1/definitions", json=wf("tree", child("tree")))).status == 201


async def test_a_hook_name_of_another_workflow_is_a_409(runtime: Runtime, client: Client) -> None:
    assert (await client.post("/api/v1/definitions", json=wf("a", hooks=("orders",)))).status == 201
    body = await error(await client.post("/api/v1/definitions", json=wf("b", hooks=("orders",))), 409, "hook_taken")
    assert "'orders' is declared by workflow 'a'" in body["message"]
    assert await runtime.registry.versions("b") == []
    # The owner keeps its hook in a new version; once it drops it, the name is free.
    assert (await client.post("/api/v1/definitions", json=wf("a", hooks=("orders",), description="v2"))).status == 201
    assert (await client.post("/api/v1/definitions", json=wf("a", hooks=("other",)))).status == 201
    assert (await client.post("/api/v1/definitions", json=wf("b", hooks=("orders",)))).status == 201
    hooks = {h["name"]: h["workflow"] for h in (await (await client.get("/hooks")).json())["hooks"]}
    assert hooks == {"orders": "b", "other": "a"}


async def test_every_process_refuses_the_same_hook(tmp_path: Path) -> None:
    """Two processes on one registry: the check reads the registry, not an in-process index."""
    settings = Settings(auth=False, event_log_url=f"sqlite:///{tmp_path / 'shared.db'}")
    async with Runtime(settings) as first, Runtime(settings) as second:
        await first.register(parse_definition(wf("a", hooks=("orders",))))
        with pytest.raises(HookTaken, match="declared by workflow 'a'"):
            await second.register(parse_definition(wf("b", hooks=("orders",))))
        with pytest.raises(HookTaken):
            await first.register(parse_definition(wf("b", hooks=("orders",))))


def write(folder: Path, name: str, data: dict[str, Any]) -> None:
    (folder / name).write_text(json.dumps(data))


async def test_a_folder_is_registered_children_first(runtime: Runtime, tmp_path: Path) -> None:
    write(tmp_path, "a_parent.json", wf("parent", child("middle", 1)))
    write(tmp_path, "b_middle.json", wf("middle", child("leaf")))
    write(tmp_path, "c_leaf.json", wf("leaf"))
    write(tmp_path, "d_tree.json", wf("tree", child("tree")))
    await register_definitions(runtime, load_definitions((str(tmp_path),)))
    assert [d.name for d in await runtime.registry.list()] == ["leaf", "middle", "parent", "tree"]


async def test_a_folder_whose_workflows_start_each_other_lists_every_problem(runtime: Runtime, tmp_path: Path) -> None:
    write(tmp_path, "a.json", wf("a", child("b")))
    write(tmp_path, "b.json", wf("b", child("a")))
    write(tmp_path, "c.json", wf("c", {"name": "t", "type": "task", "connector": "smtp", "next": "done"}))
    write(tmp_path, "d.json", wf("d", hooks=("taken",)))
    await runtime.register(parse_definition(wf("owner", hooks=("taken",))))
    with pytest.raises(DefinitionError) as raised:
        await register_definitions(runtime, load_definitions((str(tmp_path),)))
    found = [(p.location, p.message) for p in raised.value.problems]
    assert found[0][0] == "(definitions)" and "'a', 'b' start each other" in found[0][1]
    assert (f"{tmp_path / 'c.json'}: steps[0].connector", found[1][1]) == found[1]
    assert found[2][0] == str(tmp_path / "d.json") and "declared by workflow 'owner'" in found[2][1]
    assert len(found) == 3


async def test_a_key_written_twice_in_a_body_is_refused_with_its_line(client: Client) -> None:
    as_json = '{"name": "a",\n "steps": [{"name": "done", "type": "succeed"}],\n "name": "b"}'
    yaml_text = "name: a\nsteps: [{name: done, type: succeed}]\nname: b\n"
    for text, content_type in ((as_json, "application/json"), (yaml_text, "application/yaml")):
        response = await client.post("/api/v1/definitions", data=text, headers={"Content-Type": content_type})
        body = await error(response, 400, "invalid_body")
        assert "line 3" in body["message"] and "duplicate key 'name' (first at line 1)" in body["message"]
