"""``GET /metrics`` on the server's app: requests counted by route template and final status,
and the real ``serve`` process exposing it (or not, with ORCHESTRATOR_METRICS=false)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.observability.prometheus import PrometheusInstruments
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.e2e.serverproc import Port0Server, cli_env, http_json

Client = TestClient[web.Request, web.Application]


def parsed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_requests_are_counted_by_route_template_and_status() -> None:
    settings = Settings(auth=False, event_log_url="memory://")
    metrics = PrometheusInstruments(process_metrics=False)
    async with (
        Runtime(settings, instruments=metrics) as runtime,
        TestClient(TestServer(build_app(runtime, settings, metrics=metrics))) as client,
    ):
        for _ in range(2):
            assert (await client.get("/api/v1/executions/no-such-id")).status == 404
        assert (await client.get("/no/such/route")).status == 404
        assert (await client.post("/api/v1/executions", data=b"{not json")).status == 400
        assert (await client.get("/healthz")).status == 200
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        found = parsed(await response.text())

    def requests(method: str, route: str, status: str) -> float:
        labels = (("method", method), ("route", route), ("status", status))
        return found[("orchestrator_http_requests_total", labels)]

    assert requests("GET", "/api/v1/executions/{id}", "404") == 2
    assert requests("GET", "unmatched", "404") == 1
    assert requests("POST", "/api/v1/executions", "400") == 1
    assert requests("GET", "/healthz", "200") == 1
    assert not [labels for name, labels in found if "no-such-id" in str(labels)]


async def test_the_metrics_route_is_public_and_not_in_the_openapi_document() -> None:
    settings = Settings(auth=False, event_log_url="memory://")
    metrics = PrometheusInstruments(process_metrics=False)
    async with Runtime(settings, instruments=metrics) as runtime:
        async with TestClient(TestServer(build_app(runtime, settings, metrics=metrics))) as client:
            document = await (await client.get("/api/v1/openapi.json")).json()
            assert "/metrics" not in document["paths"]
        async with TestClient(TestServer(build_app(runtime, settings))) as client:
            assert (await client.get("/metrics")).status == 404  # no metrics given: no route


def test_the_serve_process_exposes_metrics_unless_turned_off(tmp_path: Path) -> None:
    for setting, served in (("true", True), ("false", False)):
        env = cli_env(f"sqlite:///{tmp_path / setting}.db", {"ORCHESTRATOR_METRICS": setting})
        server = Port0Server(env, [], tmp_path / f"serve-{setting}.log")
        url = server.start()
        try:
            status, _ = http_json("GET", url + "/api/v1/executions")
            assert status == 200
            if not served:
                assert http_json("GET", url + "/metrics")[0] == 404
                continue
            with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
                found = parsed(response.read().decode())
            assert found[("orchestrator_http_requests_total", (("method", "GET"), ("route", "/api/v1/executions"), ("status", "200")))] >= 1
            assert ("orchestrator_executions_running", ()) in found
            assert any(name == "process_resident_memory_bytes" for name, _ in found)
        finally:
            server.stop()
