"""``GET /api/v1/limits``: each concurrency key the tenant's executions hold or wait for."""

from __future__ import annotations

from aiohttp import web

from orchestrator.api import redaction
from orchestrator.api.requests import request_tenant
from orchestrator.api.routes import Permission, Route
from orchestrator.runtime import Runtime


class LimitsApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET", "/api/v1/limits", self.limits, Permission.LIMITS_READ, "getLimits",
                "Concurrency keys in use: each with its limit, holders, waiters and the oldest wait.",
                "200:Limits",
            ),
        ]  # fmt: skip

    async def limits(self, request: web.Request) -> web.Response:
        tenant = request_tenant(request)
        rows = await self.runtime.admission.limits(tenant)
        shown = rows if redaction.payloads_visible(request) else redaction.limits(rows)
        return web.json_response({"tenant": tenant, "limits": shown})
