"""``/api/v1/triggers`` over build_app: listing, enable/disable (sources and webhooks), errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.definition import WorkflowDefinition
from tests.fake_sources import Fakes, eventually
from triggers.manager import TriggerManager

Client = TestClient[web.Request, web.Application]

ORDERS = {
    "name": "orders",
    "triggers": [
        {"type": "webhook", "name": "order-hook"},
        {"type": "kafka", "name": "paid", "topics": ["payments"]},
        {"type": "amqp", "name": "refunds", "queue": "refunds", "connection": "rabbit"},
        {"type": "kafka", "name": "later", "topics": ["later"], "enabled": False},
    ],
    "steps": [{"name": "done", "type": "succeed"}],
}


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with Runtime(Settings(auth=False, event_log_url="memory://", retention_interval=0)) as runtime:
        await runtime.register(WorkflowDefinition.model_validate(ORDERS))
        yield runtime


@pytest.fixture
def fakes() -> Fakes:
    fakes = Fakes()
    fakes.fail["refunds"] = "connection refused"
    return fakes


@pytest.fixture
async def manager(runtime: Runtime, fakes: Fakes) -> AsyncIterator[TriggerManager]:
    table = {"kafka": fakes, "amqp": fakes}
    async with TriggerManager(runtime, factories=table, poll_interval=0.05) as manager:
        yield manager


@pytest.fixture
async def client(runtime: Runtime, manager: TriggerManager) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(runtime, runtime.settings, manager))) as client:
        yield client


async def ok(response: Any, status: int = 200) -> Any:
    text = await response.text()
    assert response.status == status, text
    return json.loads(text)


async def listing(client: Client) -> dict[str, dict[str, Any]]:
    body = await ok(await client.get("/api/v1/triggers"))
    assert body["runs_sources"] is True
    return {t["name"]: t for t in body["triggers"]}


async def test_lists_every_trigger_with_its_state_here(client: Client) -> None:
    triggers = await listing(client)

    assert list(triggers) == ["order-hook", "paid", "refunds", "later"]
    assert triggers["paid"] == {
        "workflow": "orders",
        "version": 1,
        "name": "paid",
        "type": "kafka",
        "actor": "trigger:orders/paid",
        "enabled": True,
        "override": None,
        "running": True,
        "running_version": 1,
        "details": {
            "connection": "kafka", "topics": ["payments"], "group": "orchestrator.orders.paid",
            "start_from": "latest", "dead_letter_topic": "payments.dlq",
        },
        "stats": {
            "received": 7, "started": 0, "duplicates": 0, "delivered": 0, "filtered": 0,
            "dead_lettered": 0, "last_error": None,
        },
        "error": None,
    }  # fmt: skip
    refunds = triggers["refunds"]
    assert (refunds["enabled"], refunds["running"], refunds["stats"]) == (True, False, None)
    assert refunds["error"] == "cannot start: ConnectionError: connection refused"
    assert (triggers["later"]["enabled"], triggers["later"]["running"]) == (False, False)
    hook = triggers["order-hook"]
    assert (hook["type"], hook["running"], hook["details"]["path"]) == ("webhook", True, "/hooks/order-hook")


async def test_disable_and_enable_a_source(client: Client, fakes: Fakes, runtime: Runtime) -> None:
    view = await ok(await client.post("/api/v1/triggers/orders/paid/disable"))

    assert (view["name"], view["enabled"], view["override"], view["running"]) == ("paid", False, False, False)
    assert fakes.running == {}
    assert (await listing(client))["paid"]["enabled"] is False
    assert await runtime.registry.trigger_states() == {("orders", "paid"): False}

    view = await ok(await client.post("/api/v1/triggers/orders/later/enable"))
    assert (view["enabled"], view["running"]) == (True, True)
    assert list(fakes.running) == [("orders", "later")]


async def test_a_disabled_webhook_answers_404_until_enabled(client: Client) -> None:
    delivered = await client.post("/hooks/order-hook", json={"n": 1})
    assert delivered.status == 202
    actor = (await listing(client))["order-hook"]["actor"]  # what its starts record
    started = await ok(await client.get("/api/v1/executions", params={"started_by": actor}))
    assert [e["execution_id"] for e in started["items"]] == [(await delivered.json())["execution_id"]]

    view = await ok(await client.post("/api/v1/triggers/orders/order-hook/disable"))
    assert (view["enabled"], view["running"]) == (False, False)

    refused = await client.post("/hooks/order-hook", json={"n": 2})
    assert refused.status == 404 and (await refused.json())["error"]["code"] == "unknown_hook"
    hooks = (await ok(await client.get("/hooks")))["hooks"]
    assert [(h["name"], h["enabled"]) for h in hooks] == [("order-hook", False)]

    await ok(await client.post("/api/v1/triggers/orders/order-hook/enable"))
    assert (await client.post("/hooks/order-hook", json={"n": 3})).status == 202


async def test_a_webhook_disabled_by_another_process_is_refused_after_a_poll(
    client: Client, runtime: Runtime
) -> None:
    await runtime.registry.set_trigger_enabled("orders", "order-hook", False)  # another process

    async def refused() -> bool:
        return (await client.post("/hooks/order-hook", json={"n": 1})).status == 404

    await eventually(refused)


async def test_unknown_workflows_and_triggers_are_404(client: Client) -> None:
    for path, code in [
        ("/api/v1/triggers/nope/paid/disable", "unknown_workflow"),
        ("/api/v1/triggers/orders/nope/enable", "unknown_trigger"),
    ]:
        response = await client.post(path)
        body = await response.json()
        assert (response.status, body["error"]["code"]) == (404, code), body
    assert (await client.get("/api/v1/triggers/orders/paid/disable")).status == 405


async def test_an_app_without_a_manager_lists_and_changes_but_runs_no_source(runtime: Runtime) -> None:
    async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        body = await ok(await client.get("/api/v1/triggers"))
        assert body["runs_sources"] is False
        assert all(not t["running"] for t in body["triggers"] if t["type"] != "webhook")

        await ok(await client.post("/api/v1/triggers/orders/order-hook/disable"))
        assert (await client.post("/hooks/order-hook", json={})).status == 404
    await asyncio.sleep(0)
    assert runtime.definition_observers == []  # the app's own manager and hook index stopped
