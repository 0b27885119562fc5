"""Trigger routes: list every trigger of the latest definitions, enable or disable one, read the
dead letters a Kafka or RabbitMQ trigger parked and move one back (``triggers.dead_letter_queues``).

Enable/disable is an override of the definition's ``enabled`` flag, stored in the registry: this
process applies it at once, every other process within one trigger poll interval. Dead letters
are read from the broker by the process answering, whether it runs the trigger's source or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api import redaction
from orchestrator.api.auditing import note
from orchestrator.api.errors import error_response
from orchestrator.api.requests import TENANT_PARAM, query_params, request_tenant
from orchestrator.api.routes import Permission, Route, path_param
from orchestrator.api.visibility import visible
from orchestrator.ports import NoDeadLetters, UnknownDeadLetter, UnknownTrigger

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


class Parked(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class DeadLetters(Protocol):
    """Where one trigger parks what it cannot take (``triggers.dead_letter_queues``)."""

    @property
    def destination(self) -> str: ...

    async def list(self, limit: int) -> Sequence[Parked]: ...

    async def move_back(self, letter_id: str) -> str: ...


class DeadLetterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=500, description="At most this many (newest first on Kafka).")


class TriggerControl(Protocol):
    """What the routes need from the process's triggers (``triggers.manager.TriggerManager``)."""

    @property
    def run_sources(self) -> bool:
        """Whether this process runs trigger sources."""

    async def views(self) -> Sequence[TriggerListing]:
        """Every trigger of every workflow's latest version."""

    async def set_enabled(self, workflow: str, name: str, enabled: bool) -> TriggerListing:
        """Persist and apply an override; UnknownWorkflow, UnknownTrigger (both 404)."""

    async def dead_letters(self, workflow: str, name: str) -> DeadLetters:
        """The trigger's dead letters; UnknownWorkflow, UnknownTrigger, NoDeadLetters."""


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
            Route(
                "GET", TRIGGERS + "/{workflow}/{name}/dead-letters", self.list_dead_letters,
                Permission.DEADLETTERS_READ, "listTriggerDeadLetters",
                "The messages a Kafka or RabbitMQ trigger parked, read where they are parked (bodies "
                "redacted without payloads:read); 404 no_dead_letters for other kinds.",
                "200 404 503", (*PARAMS, TENANT_PARAM), query=DeadLetterParams,
            ),
            Route(
                "POST", TRIGGERS + "/{workflow}/{name}/dead-letters/{id}/redrive", self.move_back,
                Permission.DEADLETTERS_REDRIVE, "redriveTriggerDeadLetter",
                "Send a parked message to the trigger's input again (Kafka: a copy to its topic; RabbitMQ: "
                "to its queue, then removed from the dead queue); audited.",
                "200 404 503", (*PARAMS, path_param("id", "The dead letter's id (see the listing)."), TENANT_PARAM),
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
        workflow, name = await self._own(request)
        view = await self.control.set_enabled(workflow, name, enabled)
        return web.json_response(view.to_dict())

    async def _own(self, request: web.Request) -> tuple[str, str]:
        """The path's workflow and trigger, refused as unknown when another tenant's."""
        workflow, name = request.match_info["workflow"], request.match_info["name"]
        tenant = request_tenant(request)
        if any(
            view.workflow == workflow and view.name == name and view.tenant != tenant
            for view in await self.control.views()
        ):  # another tenant's: as unknown as one that does not exist
            raise UnknownTrigger(f"workflow {workflow!r} has no trigger {name!r}")
        return workflow, name

    async def _queue(self, request: web.Request) -> DeadLetters | web.Response:
        workflow, name = await self._own(request)
        try:
            return await self.control.dead_letters(workflow, name)
        except NoDeadLetters as exc:
            return error_response(404, "no_dead_letters", str(exc))

    async def list_dead_letters(self, request: web.Request) -> web.Response:
        params = query_params(request, DeadLetterParams)
        queue = await self._queue(request)
        if isinstance(queue, web.Response):
            return queue
        items = [letter.to_dict() for letter in await queue.list(params.limit)]
        if not redaction.payloads_visible(request):
            items = [{**item, "value": redaction.REDACTED, "key": redaction.REDACTED} for item in items]
        return web.json_response({"destination": queue.destination, "items": items})

    async def move_back(self, request: web.Request) -> web.Response:
        queue = await self._queue(request)
        if isinstance(queue, web.Response):
            return queue
        letter_id = request.match_info["id"]
        note(request, resource_id=f"{request.match_info['workflow']}/{request.match_info['name']}/{letter_id}")
        try:
            moved_to = await queue.move_back(letter_id)
        except UnknownDeadLetter as exc:
            return error_response(404, "unknown_dead_letter", str(exc))
        return web.json_response({"id": letter_id, "from": queue.destination, "moved_to": moved_to})
