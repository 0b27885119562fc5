"""Serving the metrics: ``GET /metrics`` on the server's app, a small listener for workers, and
the HTTP middleware that counts requests by route template.

The route is public (``permission=None``) and outside ``/api/``, like the probes: scrapers carry
no API credentials, and the text names no execution, key or payload. Keep the port off the
public network if even the workflow names are sensitive.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import generate_latest

from orchestrator.api.routes import Route
from orchestrator.observability.prometheus import PrometheusInstruments

log = logging.getLogger(__name__)
METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"  # the route label of a request no route matched (404/405)
# The text format generate_latest writes, by the name every Prometheus version negotiates.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsApi:
    """``GET /metrics``: the Prometheus text format of one registry."""

    def __init__(self, metrics: PrometheusInstruments) -> None:
        self.metrics = metrics

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET", METRICS_PATH, self.serve, None, "metrics",
                "Prometheus metrics of this process (text format).", "200", in_openapi=False,
            )
        ]

    async def serve(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self.metrics.registry))
        response.headers["Content-Type"] = CONTENT_TYPE
        return response


def route_template(request: web.Request) -> str:
    """The matched route's path template (``/api/v1/executions/{id}``), never the
    path itself, so labels stay bounded."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


def metrics_middleware(metrics: PrometheusInstruments) -> Middleware:
    """Counts every request by method, route template and final status; the outermost
    middleware, so it sees the status the error middleware answered with."""

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        began = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.http_request(request.method, route_template(request), status, time.perf_counter() - began)

    return count


class MetricsListener:
    """A listener serving only ``GET /metrics`` (for processes without the API: workers).

    ``async with MetricsListener(metrics, host, port):``; ``url`` is the bound address (port 0
    picks one)."""

    def __init__(self, metrics: PrometheusInstruments, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.url: str | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        for route in MetricsApi(self.metrics).routes():
            app.router.add_get(route.path, route.handler)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = _address(runner, self.host, self.port)
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        log.info("metrics on %s%s", self.url, METRICS_PATH)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> MetricsListener:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


def _address(runner: web.AppRunner, host: str, port: int) -> tuple[str, int]:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return str(address[0]), int(address[1])
    return host, port
