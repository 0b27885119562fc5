"""HttpConnector against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.base import ConnectorError, StepCall
from connectors.egress import EgressPolicy
from connectors.http import HttpConnector

KEY = "exec-1:fetch:0"
MAX_BYTES = 4096
LOCAL = EgressPolicy(["127.0.0.1"])  # the test server is on loopback, which is refused by default


def make_call(config: dict[str, Any], args: Any = None, timeout: float | None = None) -> StepCall:
    return StepCall(
        execution_id="exec-1",
        workflow="wf",
        step="fetch",
        attempt=1,
        idempotency_key=KEY,
        config=config,
        args=args,
        timeout_seconds=timeout,
    )


def make_app(release: asyncio.Event) -> web.Application:
    async def json_route(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"}, headers={"X-Trace": "t-1"})

    async def text_route(request: web.Request) -> web.Response:
        return web.Response(text="plain text")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "method": request.method,
                "idempotency_key": request.headers.get("Idempotency-Key"),
                "content_type": request.headers.get("Content-Type"),
                "auth": request.headers.get("Authorization"),
                "query": [[k, v] for k, v in request.query.items()],
                "body": await request.text(),
            }
        )

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        size = int(request.query.get("size", "1000"))
        return web.Response(status=code, text=f"status {code} " + "x" * size)

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length to check up front
        await response.prepare(request)
        for _ in range(8):
            await response.write(b"y" * 1024)
        await response.write_eof()
        return response

    async def big_declared(request: web.Request) -> web.Response:
        return web.Response(body=b"y" * 8192)  # Content-Length says it is too large

    async def peer(request: web.Request) -> web.Response:
        assert request.transport is not None
        return web.json_response({"port": request.transport.get_extra_info("peername")[1]})

    async def bad_json(request: web.Request) -> web.Response:
        return web.Response(text="{not json", content_type="application/json")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/json")

    app = web.Application()
    app.router.add_get("/json", json_route)
    app.router.add_get("/text", text_route)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    app.router.add_get("/big-declared", big_declared)
    app.router.add_get("/peer", peer)
    app.router.add_get("/bad-json", bad_json)
    app.router.add_get("/redirect", redirect)
    return app


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    release = asyncio.Event()
    server = TestServer(make_app(release), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        release.set()
        await server.close()


@pytest.fixture
async def http() -> AsyncIterator[HttpConnector]:
    async with HttpConnector(max_response_bytes=MAX_BYTES, egress=LOCAL) as connector:
        yield connector


async def failure(http: HttpConnector, call: StepCall) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        await http.invoke(call)
    return info.value


async def test_json_response(http: HttpConnector, base_url: str) -> None:
    out = await http.invoke(make_call({"url": f"{base_url}/json"}))
    assert out["status"] == 200
    assert out["body"] == {"hello": "world"}
    assert out["headers"]["x-trace"] == "t-1"
    assert out["headers"]["content-type"].startswith("application/json")


async def test_selected_response_headers(http: HttpConnector, base_url: str) -> None:
    config = {"url": f"{base_url}/json", "response_headers": ["X-Trace"]}
    assert (await http.invoke(make_call(config)))["headers"] == {"x-trace": "t-1"}


async def test_text_response(http: HttpConnector, base_url: str) -> None:
    out = await http.invoke(make_call({"url": f"{base_url}/text"}))
    assert (out["status"], out["body"]) == (200, "plain text")


async def test_server_receives_idempotency_key(http: HttpConnector, base_url: str) -> None:
    body = (await http.invoke(make_call({"url": f"{base_url}/echo"})))["body"]
    assert body["idempotency_key"] == KEY
    assert body["method"] == "GET"


async def test_user_idempotency_key_is_kept(http: HttpConnector, base_url: str) -> None:
    config = {"url": f"{base_url}/echo", "headers": {"idempotency-key": "mine"}}
    assert (await http.invoke(make_call(config)))["body"]["idempotency_key"] == "mine"


async def test_json_body_defaults_to_post_and_args_override_config(
    http: HttpConnector, base_url: str
) -> None:
    config = {
        "url": f"{base_url}/echo",
        "headers": {"Authorization": "Bearer t"},
        "query": {"a": "config"},
    }
    args = {"json": {"n": 1}, "query": {"a": "args", "tag": ["x", "y"], "on": True}}
    body = (await http.invoke(make_call(config, args)))["body"]
    assert body["method"] == "POST"
    assert body["content_type"] == "application/json"
    assert body["auth"] == "Bearer t"
    assert body["body"] == '{"n": 1}'
    assert body["query"] == [["a", "args"], ["tag", "x"], ["tag", "y"], ["on", "true"]]


async def test_string_body_with_explicit_method(http: HttpConnector, base_url: str) -> None:
    call = make_call({"url": f"{base_url}/echo", "method": "put", "body": "raw"})
    body = (await http.invoke(call))["body"]
    assert (body["method"], body["body"]) == ("PUT", "raw")
    assert body["content_type"].startswith("text/plain")


async def test_503_is_retryable(http: HttpConnector, base_url: str) -> None:
    error = await failure(http, make_call({"url": f"{base_url}/status/503"}))
    assert (error.type, error.retryable) == ("http.503", True)
    assert "status 503" in error.message
    assert len(error.message) < 600  # a short excerpt, not the whole body


async def test_404_is_not_retryable(http: HttpConnector, base_url: str) -> None:
    error = await failure(http, make_call({"url": f"{base_url}/status/404"}))
    assert (error.type, error.retryable) == ("http.404", False)


@pytest.mark.parametrize("code", [408, 425, 429, 500, 502])
async def test_retryable_statuses(http: HttpConnector, base_url: str, code: int) -> None:
    error = await failure(http, make_call({"url": f"{base_url}/status/{code}"}))
    assert (error.type, error.retryable) == (f"http.{code}", True)


async def test_expect_status_counts_as_success(http: HttpConnector, base_url: str) -> None:
    out = await http.invoke(make_call({"url": f"{base_url}/status/404", "expect_status": [404]}))
    assert out["status"] == 404
    assert out["body"].startswith("status 404")


async def test_redirect_is_output_when_not_followed(http: HttpConnector, base_url: str) -> None:
    call = make_call({"url": f"{base_url}/redirect", "follow_redirects": False})
    out = await http.invoke(call)
    assert out["status"] == 302
    assert out["headers"]["location"] == "/json"
    followed = await http.invoke(make_call({"url": f"{base_url}/redirect"}))
    assert followed["body"] == {"hello": "world"}


async def test_timeout_from_config(http: HttpConnector, base_url: str) -> None:
    error = await failure(http, make_call({"url": f"{base_url}/slow", "timeout_seconds": 0.2}))
    assert (error.type, error.retryable) == ("timeout", True)


async def test_timeout_defaults_to_step_timeout(http: HttpConnector, base_url: str) -> None:
    error = await failure(http, make_call({"url": f"{base_url}/slow"}, timeout=0.2))
    assert error.type == "timeout"


async def test_connection_refused_is_retryable(http: HttpConnector) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await failure(http, make_call({"url": f"http://127.0.0.1:{port}/"}))
    assert (error.type, error.retryable) == ("http.connection", True)


@pytest.mark.parametrize(
    "config",
    [{}, {"url": ""}, {"url": "not a url"}, {"url": "ftp://example.com/"}, {"url": 5}],
)
async def test_missing_or_invalid_url(http: HttpConnector, config: dict[str, Any]) -> None:
    error = await failure(http, make_call(config))
    assert (error.type, error.retryable) == ("http.bad_request", False)


@pytest.mark.parametrize(
    "extra",
    [
        {"json": {}, "body": "x"},
        {"body": {"not": "a string"}},
        {"timeout_seconds": 0},
        {"expect_status": "404"},
        {"headers": ["x"]},
    ],
)
async def test_invalid_request_settings(
    http: HttpConnector, base_url: str, extra: dict[str, Any]
) -> None:
    error = await failure(http, make_call({"url": f"{base_url}/echo", **extra}))
    assert (error.type, error.retryable) == ("http.bad_request", False)


@pytest.mark.parametrize("path", ["/big", "/big-declared"])
async def test_response_size_is_limited(http: HttpConnector, base_url: str, path: str) -> None:
    error = await failure(http, make_call({"url": f"{base_url}{path}"}))
    assert (error.type, error.retryable) == ("http.response_too_large", False)


async def test_large_error_body_gives_an_excerpt(http: HttpConnector, base_url: str) -> None:
    error = await failure(http, make_call({"url": f"{base_url}/status/500?size={MAX_BYTES * 4}"}))
    assert error.type == "http.500"
    assert "status 500 xxx" in error.message and len(error.message) < 600


async def test_invalid_json_body(http: HttpConnector, base_url: str) -> None:
    error = await failure(http, make_call({"url": f"{base_url}/bad-json"}))
    assert (error.type, error.retryable) == ("http.invalid_json", False)


async def test_query_secrets_stay_out_of_messages(http: HttpConnector, base_url: str) -> None:
    call = make_call({"url": f"{base_url}/status/500?token=s3cret", "query": {"key": "k3y"}})
    error = await failure(http, call)
    assert "s3cret" not in error.message and "k3y" not in error.message


async def test_connections_are_pooled(http: HttpConnector, base_url: str) -> None:
    calls = [make_call({"url": f"{base_url}/peer"}) for _ in range(3)]
    ports = {(await http.invoke(call))["body"]["port"] for call in calls}
    assert len(ports) == 1  # one keep-alive connection, reused


async def test_invoke_needs_start(base_url: str) -> None:
    connector = HttpConnector(egress=LOCAL)
    with pytest.raises(RuntimeError):
        await connector.invoke(make_call({"url": f"{base_url}/json"}))
    async with connector:
        assert (await connector.invoke(make_call({"url": f"{base_url}/json"})))["status"] == 200
    with pytest.raises(RuntimeError):
        await connector.invoke(make_call({"url": f"{base_url}/json"}))
