"""The http connector's egress policy against a real server on 127.0.0.1: names that resolve
to loopback, redirects to refused addresses, the allow-list, sensitive response headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.base import ConnectorError, StepCall
from connectors.egress import EgressPolicy
from connectors.http import HttpConnector


def make_call(config: dict[str, Any]) -> StepCall:
    return StepCall("exec-1", "wf", "fetch", 1, "exec-1:fetch:0", config=config)


def make_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        response = web.json_response({"auth": request.headers.get("Authorization")}, headers={"X-Trace": "t"})
        response.set_cookie("session", "s3ss10n")
        return response

    async def to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["target"])

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_get("/to", to)
    return app


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    server = TestServer(make_app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def refused(connector: HttpConnector, url: str) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        await connector.invoke(make_call({"url": url}))
    assert (info.value.type, info.value.retryable) == ("http.egress_denied", False), info.value
    return info.value


async def test_a_name_resolving_to_loopback_is_refused_by_default(server: TestServer) -> None:
    async with HttpConnector() as connector:
        error = await refused(connector, f"http://localhost:{server.port}/hello")
    assert "loopback" in error.message


async def test_the_allow_list_lets_the_local_server_through(server: TestServer) -> None:
    async with HttpConnector(egress=EgressPolicy(["127.0.0.1/32", "::1"])) as connector:
        out = await connector.invoke(make_call({"url": f"http://localhost:{server.port}/hello"}))
    assert out["status"] == 200


async def test_a_redirect_to_the_metadata_address_is_refused(server: TestServer) -> None:
    async with HttpConnector(egress=EgressPolicy(["127.0.0.1"])) as connector:
        target = "http://169.254.169.254/latest/meta-data/"
        error = await refused(connector, f"http://127.0.0.1:{server.port}/to?target={target}")
    assert "metadata" in error.message


async def test_a_redirect_to_an_address_outside_the_allow_list_is_refused(server: TestServer) -> None:
    async with HttpConnector(egress=EgressPolicy(["127.0.0.1"])) as connector:
        target = f"http://10.0.0.1:{server.port}/hello"
        error = await refused(connector, f"http://127.0.0.1:{server.port}/to?target={target}")
        assert "private" in error.message
        followed = await connector.invoke(
            make_call({"url": f"http://127.0.0.1:{server.port}/to?target=/hello"})
        )
    assert followed["status"] == 200  # an allowed target is followed


async def test_credentials_are_not_sent_to_another_origin(server: TestServer) -> None:
    async with HttpConnector(egress=EgressPolicy(["127.0.0.1", "localhost"])) as connector:
        target = f"http://localhost:{server.port}/hello"
        config = {"url": f"http://127.0.0.1:{server.port}/to?target={target}", "headers": {"Authorization": "Bearer x"}}
        moved = await connector.invoke(make_call(config))
        same = await connector.invoke(make_call({**config, "url": f"http://127.0.0.1:{server.port}/hello"}))
    assert moved["body"]["auth"] is None and same["body"]["auth"] == "Bearer x"


async def test_set_cookie_is_not_stored_unless_asked_for(server: TestServer) -> None:
    async with HttpConnector(egress=EgressPolicy(["127.0.0.1"])) as connector:
        url = f"http://127.0.0.1:{server.port}/hello"
        default = await connector.invoke(make_call({"url": url}))
        asked = await connector.invoke(make_call({"url": url, "response_headers": ["Set-Cookie", "X-Trace"]}))
    assert "set-cookie" not in default["headers"] and default["headers"]["x-trace"] == "t"
    assert "s3ss10n" in asked["headers"]["set-cookie"]
