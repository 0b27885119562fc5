"""``GET /api/v1/quotas``: the request tenant's quotas and their current usage."""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.requests import request_tenant
from orchestrator.api.routes import Permission, Route
from orchestrator.runtime import Runtime


class QuotasApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET", "/api/v1/quotas", self.quotas, Permission.QUOTAS_READ, "getQuotas",
                "The tenant's quotas (running executions, starts per minute, payload size, events per execution, stored bytes) and their usage.",
                "200:Quotas",
            ),
        ]

    async def quotas(self, request: web.Request) -> web.Response:
        return web.json_response(await self.runtime.quotas.usage(request_tenant(request)))
