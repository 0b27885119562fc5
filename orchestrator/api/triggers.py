"""Trigger routes: list every trigger of the latest definitions, enable or disable one.

Enable/disable is an override of the definition's ``enabled`` flag, stored in the registry: this
process applies it at once, every other process within one trigger poll interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from aiohttp import web

from orchestrator.api.requests import TENANT_PARAM, request_tenant
from orchestrator.api.routes import Permission, Route, path_param
from orchestrator.api.visibility import visible
from orchestrator.ports import UnknownTrigger

TRIGGERS = "/api/v1/triggers"
PARAMS = (path_param("workflow", "Workflow name."), path_param("name", "Trigger name."))


class TriggerListing(Protocol):
    """One trigger as the listing shows it."""

    @property
    def workflow(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def tenant(self) -> str:
        """The tenant of the executions it starts: the one that sees and switches it."""

    def to_dict(self) -> dict[str, Any]: ...


class TriggerControl(Protocol):
    """What the routes need from the process's triggers (``triggers.manager.TriggerManager``)."""

    @property
    def run_sources(self) -> bool:
        """Whether this process runs trigger sources."""

    async def views(self) -> Sequence[TriggerListing]:
        """Every trigger of every workflow's latest version."""

    async def set_enabled(self, workflow: str, name: str, enabled: bool) -> TriggerListing:
        """Persist and apply an override; UnknownWorkflow, UnknownTrigger (both 404)."""


class TriggersApi:
    """``/api/v1/triggers`` over a TriggerControl (which runs the sources, or not, in this process)."""

    def __init__(self, control: TriggerControl) -> None:
        self.control = control

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET", TRIGGERS, self.list_triggers, Permission.TRIGGERS_READ, "listTriggers",
                "Every trigger of the latest definitions of the request's tenant that the caller's grants "
                "select: enabled, running here, stats, errors.",
                "200:TriggerList", (TENANT_PARAM,), filtered=True,
            ),
            Route(
                "POST", TRIGGERS + "/{workflow}/{name}/enable", self.enable, Permission.TRIGGERS_WRITE,
                "enableTrigger",
                "Enable a trigger (a persisted override; every process applies it within a poll interval).",
                "200:Trigger 404", (*PARAMS, TENANT_PARAM),
            ),
            Route(
                "POST", TRIGGERS + "/{workflow}/{name}/disable", self.disable, Permission.TRIGGERS_WRITE,
                "disableTrigger", "Disable a trigger: its source stops; a disabled webhook answers 404.",
                "200:Trigger 404", (*PARAMS, TENANT_PARAM),
            ),
        ]

    async def list_triggers(self, request: web.Request) -> web.Response:
        """The triggers that start executions in the request's tenant."""
        tenant, shown = request_tenant(request), visible(request, Permission.TRIGGERS_READ)
        views = [v.to_dict() for v in await self.control.views() if v.tenant == tenant and shown(v.workflow)]
        return web.json_response({"triggers": views, "runs_sources": self.control.run_sources})

    async def enable(self, request: web.Request) -> web.Response:
        return await self._set(request, True)

    async def disable(self, request: web.Request) -> web.Response:
        return await self._set(request, False)

    async def _set(self, request: web.Request, enabled: bool) -> web.Response:
        workflow, name = request.match_info["workflow"], request.match_info["name"]
        tenant = request_tenant(request)
        if any(
            view.workflow == workflow and view.name == name and view.tenant != tenant
            for view in await self.control.views()
        ):  # another tenant's: as unknown as one that does not exist
            raise UnknownTrigger(f"workflow {workflow!r} has no trigger {name!r}")
        view = await self.control.set_enabled(workflow, name, enabled)
        return web.json_response(view.to_dict())
