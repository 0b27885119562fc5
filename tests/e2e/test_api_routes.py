"""Route metadata over HTTP: a middleware reads each matched route's permission, the served
OpenAPI document carries it, and a route kept out of the document is still served."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler

from orchestrator.api.app import api_providers, create_app
from orchestrator.api.routes import Route, route_permission
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from triggers.manager import TriggerManager

Client = TestClient[web.Request, web.Application]
SEEN = web.AppKey("seen", list)


class Metrics:
    """A non-API route, served but not documented."""

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(text="up 1\n")

    def routes(self) -> list[Route]:
        return [Route("GET", "/metrics", self.metrics, None, "metrics", "Metrics.", "200", in_openapi=False)]


@web.middleware
async def record_permission(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What an authorization middleware would do first: look the permission up."""
    request.app[SEEN].append((request.method, request.path, route_permission(request)))
    return await handler(request)


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Runtime(Settings(event_log_url="memory://")) as runtime:
        manager = TriggerManager(runtime, run_sources=False)
        providers = [*api_providers(runtime, manager), Metrics()]
        app = create_app(providers, max_body_bytes=1024 * 1024, middlewares=[record_permission])
        app[SEEN] = []
        async with TestClient(TestServer(app)) as client:
            yield client


def seen(client: Client) -> list[Any]:
    assert client.app is not None
    return client.app[SEEN]


async def test_a_middleware_reads_the_matched_routes_permission(client: Client) -> None:
    await client.post("/api/v1/executions", json={"workflow": "nope"})
    await client.get("/api/v1/executions/some-id/history")
    await client.head("/api/v1/executions")
    await client.get("/healthz")
    await client.get("/api/v1/nowhere")
    await client.delete("/api/v1/executions")
    assert seen(client) == [
        ("POST", "/api/v1/executions", "executions:start"),
        ("GET", "/api/v1/executions/some-id/history", "payloads:read"),
        ("HEAD", "/api/v1/executions", "executions:read"),
        ("GET", "/healthz", None),
        ("GET", "/api/v1/nowhere", None),  # no route: aiohttp answers 404
        ("DELETE", "/api/v1/executions", None),  # 405
    ]


async def test_the_served_document_has_permissions_and_leaves_out_excluded_routes(client: Client) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    document = json.loads(await response.text())
    assert document["paths"]["/api/v1/executions"]["post"]["x-permission"] == "executions:start"
    assert document["paths"]["/api/v1/triggers"]["get"]["x-permission"] == "triggers:read"
    assert document["paths"]["/api/v1/openapi.json"]["get"]["x-permission"] is None
    assert "/metrics" not in document["paths"]
    metrics = await client.get("/metrics")
    assert metrics.status == 200 and await metrics.text() == "up 1\n"
