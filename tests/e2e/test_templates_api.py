"""The template routes: render with every parameter problem, install with provenance, upgrade diff."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings


async def test_render_install_and_upgrade_over_http() -> None:
    settings = Settings(event_log_url="memory://", retention_interval=0, auth=False)
    async with Runtime(settings) as runtime, TestClient(TestServer(build_app(runtime, settings))) as client:
        bad = await client.post("/api/v1/templates/render", json={"template": "webhook-relay", "parameters": {"attempts": 0}})
        assert bad.status == 400
        error = (await bad.json())["error"]
        assert error["code"] == "invalid_parameters" and len(error["details"]) == 2
        unknown = await client.post("/api/v1/templates/render", json={"template": "nope"})
        assert unknown.status == 404
        params = {"target_url": "https://example.com/in"}
        installed = await client.post("/api/v1/templates/install", json={"template": "webhook-relay", "parameters": params})
        assert installed.status == 201, await installed.text()
        answer = await installed.json()
        assert answer["workflow"] == "webhook_relay" and answer["template_version"] == "1.0.0"
        stored = await (await client.get("/api/v1/definitions/webhook_relay")).json()
        assert stored["provenance"]["parameters"]["target_url"] == "https://example.com/in"
        again = await client.post("/api/v1/templates/install", json={"template": "webhook-relay", "parameters": params})
        assert again.status == 200
        plan = await client.post("/api/v1/templates/upgrade", json={"workflow": "webhook_relay"})
        assert plan.status == 200 and (await plan.json())["compatibility"] == "safe"
        listed = await (await client.get("/api/v1/templates")).json()
        assert len(listed["items"]) >= 20
