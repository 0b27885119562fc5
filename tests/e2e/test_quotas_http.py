"""Quotas per tenant over HTTP: a hard limit answers 403 naming the quota, a rate 429 with
Retry-After, each visible with its usage at GET /api/v1/quotas; other tenants are untouched."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.base import Connectors
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings, SettingsError
from tests.e2e.gate import Gate

Client = TestClient[web.Request, web.Application]
HELD: dict[str, Any] = {"name": "held", "steps": [{"name": "wait", "type": "task", "connector": "gate"}]}
ACME = {"X-Orchestrator-Tenant": "acme"}



@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    quotas = tmp_path / "quotas.json"
    quotas.write_text(json.dumps({"*": {"payload_bytes": 64}, "acme": {"running": 2, "starts_per_minute": 3}}))
    settings = Settings(auth=False, event_log_url="memory://", quotas_file=str(quotas))
    gate = Gate()
    runtime = Runtime(settings, connectors=Connectors([gate]))
    async with runtime, TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        assert (await client.post("/api/v1/definitions", json=HELD)).status == 201
        assert (await client.post("/api/v1/definitions", json={**HELD, "name": "acme-held"}, headers=ACME)).status == 201
        yield client


async def start(client: Client, headers: dict[str, str], data: Any = None) -> Any:
    workflow = "acme-held" if headers else "held"  # a workflow name belongs to one tenant
    return await client.post("/api/v1/executions", json={"workflow": workflow, "input": data}, headers=headers)


async def test_running_and_rate_quotas_refuse_with_their_names(client: Client) -> None:
    assert [(await start(client, ACME)).status for _ in range(2)] == [202, 202]
    refused = await start(client, ACME)
    body = await refused.json()
    assert refused.status == 403 and body["error"]["code"] == "quota_exceeded"
    assert body["error"]["details"][0]["quota"] == "running" and body["error"]["details"][0]["limit"] == 2
    usage = await (await client.get("/api/v1/quotas", headers=ACME)).json()
    assert usage["quotas"]["running"] == {"limit": 2, "usage": 2}
    assert usage["quotas"]["starts_per_minute"]["usage"] == 2
    other = await start(client, {})  # the default tenant has no running quota
    assert other.status == 202


async def test_the_start_rate_answers_429_with_retry_after(client: Client, tmp_path: Path) -> None:
    settings_file = tmp_path / "rate.json"
    settings_file.write_text(json.dumps({"acme": {"starts_per_minute": 2}}))
    runtime = Runtime(Settings(auth=False, event_log_url="memory://", quotas_file=str(settings_file)))
    async with runtime, TestClient(TestServer(build_app(runtime, runtime.settings))) as rate_client:
        noop = {"name": "quick", "steps": [{"name": "s", "type": "task", "connector": "noop"}]}
        assert (await rate_client.post("/api/v1/definitions", json=noop, headers=ACME)).status == 201
        codes = [
            (await rate_client.post("/api/v1/executions", json={"workflow": "quick"}, headers=ACME)).status
            for _ in range(3)
        ]
        assert codes == [202, 202, 429]
        last = await rate_client.post("/api/v1/executions", json={"workflow": "quick"}, headers=ACME)
        assert last.status == 429 and int(last.headers["Retry-After"]) >= 1
        assert (await last.json())["error"]["details"][0]["quota"] == "starts_per_minute"


async def test_a_payload_past_its_quota_is_refused_for_every_tenant(client: Client) -> None:
    big = {"text": "x" * 100}
    for headers in ({}, ACME):
        refused = await start(client, headers, big)
        assert refused.status == 403
        assert (await refused.json())["error"]["details"][0]["quota"] == "payload_bytes"
    assert (await start(client, {}, {"text": "small"})).status == 202


def test_a_bad_quotas_file_stops_the_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    for text, problem in (("acme: {running: 0}", "positive integer"), ("acme: {cpus: 1}", "unknown quota"), ("- 1", "must map")):
        bad.write_text(text)
        with pytest.raises(SettingsError, match=problem):
            Runtime(Settings(auth=False, event_log_url="memory://", quotas_file=str(bad)))


async def test_queue_triggers_dead_letter_a_permanent_quota_and_retry_a_passing_one(tmp_path: Path) -> None:
    from orchestrator.limits.quotas import QuotaExceeded
    from schemas.builder import Workflow
    from schemas.definition import KafkaTrigger
    from triggers.inbound import InboundMessage, Router

    quotas = tmp_path / "q.json"
    quotas.write_text(json.dumps({"*": {"payload_bytes": 32, "running": 1}}))
    gate = Gate()
    runtime = Runtime(Settings(auth=False, event_log_url="memory://", quotas_file=str(quotas)), connectors=Connectors([gate]))
    async with runtime:
        await runtime.register(Workflow("held").task("wait", "gate").build())
        router = Router(runtime, "held", KafkaTrigger(name="t", topics=["orders"]))
        big = await router.accept(InboundMessage(data={"text": "x" * 64}, identity="kafka:orders/0/1"))
        assert big.kind == "dead" and "payload_bytes" in big.reason
        first = await router.accept(InboundMessage(data={"n": 1}, identity="kafka:orders/0/2"))
        assert first.kind == "started"
        with pytest.raises(QuotaExceeded):  # the running quota passes later: not acknowledged, tried again
            await router.accept(InboundMessage(data={"n": 2}, identity="kafka:orders/0/3"))
