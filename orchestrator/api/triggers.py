"""Trigger routes: list every trigger of the latest definitions, enable or disable one.

Enable/disable is an override of the definition's ``enabled`` flag, stored in the registry: this
process applies it at once, every other process within one trigger poll interval.
"""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.errors import error_response
from triggers.manager import TriggerManager, UnknownTrigger

TRIGGERS = "/api/v1/triggers"


class TriggersApi:
    """``/api/v1/triggers`` over a TriggerManager (which runs the sources, or not, in this process)."""

    def __init__(self, manager: TriggerManager) -> None:
        self.manager = manager

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(TRIGGERS, self.list_triggers),
            web.post(TRIGGERS + "/{workflow}/{name}/enable", self.enable),
            web.post(TRIGGERS + "/{workflow}/{name}/disable", self.disable),
        ]

    async def list_triggers(self, request: web.Request) -> web.Response:
        views = await self.manager.views()
        return web.json_response(
            {"triggers": [v.to_dict() for v in views], "runs_sources": self.manager.run_sources}
        )

    async def enable(self, request: web.Request) -> web.Response:
        return await self._set(request, True)

    async def disable(self, request: web.Request) -> web.Response:
        return await self._set(request, False)

    async def _set(self, request: web.Request, enabled: bool) -> web.Response:
        workflow, name = request.match_info["workflow"], request.match_info["name"]
        try:
            view = await self.manager.set_enabled(workflow, name, enabled)
        except UnknownTrigger as exc:
            return error_response(404, "unknown_trigger", str(exc))
        return web.json_response(view.to_dict())
