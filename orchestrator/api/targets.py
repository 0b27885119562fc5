"""The workflows a request acts on, for grants restricted to some workflows (``executions:start:
deploy-*``): from the path (a definition's name, a trigger's workflow, an execution's, looked up
in the request's tenant) or the body (a start, a registration, a replay). None when the request
names no workflow: only an unrestricted grant allows it then. A listing that filters its items
(``Route.filtered``) names the workflow of its ``?workflow=`` query, else none that it could be
refused for (an empty list): it shows the workflows the grants select."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from orchestrator.api.definitions import read_definition_data
from orchestrator.api.requests import parse_json, request_tenant
from orchestrator.api.routes import declared_route
from orchestrator.runtime import Runtime

BODY_NAMES = {  # (method, path) -> the body field naming the workflow
    ("POST", "/api/v1/executions"): "workflow",
    ("POST", "/api/v1/replay/verify"): "workflow",
}


class RequestTargets:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def __call__(self, request: web.Request) -> Sequence[str] | None:
        route = declared_route(request)
        if route is None:
            return None
        info = request.match_info
        if route.filtered:
            workflow = request.query.get("workflow")
            return [workflow] if workflow else []
        if route.path.startswith("/api/v1/definitions/{name}"):
            return [info["name"]]
        if "workflow" in info:
            return [info["workflow"]]
        if route.path.startswith("/api/v1/executions/{id}"):
            return await self._executions([info[name] for name in ("id", "other") if name in info], request)
        if (route.method, route.path) == ("POST", "/api/v1/definitions"):
            data = await read_definition_data(request)
            return [data["name"]] if isinstance(data, dict) and isinstance(data.get("name"), str) else None
        field = BODY_NAMES.get((route.method, route.path))
        if field is not None:
            return _field(await request.read(), field)
        return None

    async def _executions(self, ids: list[str], request: web.Request) -> list[str]:
        """The workflows of those executions of the tenant (another tenant's: none, the
        handler answers 404)."""
        tenant = request_tenant(request)
        names = []
        for execution_id in ids:
            summary = await self.runtime.log.summary(execution_id)
            if summary is not None and summary.tenant == tenant:
                names.append(summary.workflow)
        return names


def _field(raw: bytes, field: str) -> list[str] | None:
    try:
        data: Any = parse_json(raw)
    except ValueError:
        return None
    value = data.get(field) if isinstance(data, dict) else None
    return [value] if isinstance(value, str) else None
