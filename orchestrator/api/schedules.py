"""Schedule routes: list and describe schedules, pause and unpause with a note, trigger now,
backfill a past range (``dry_run`` counts first). Docs: docs/schedules.md.

Every route works within the request's tenant; a schedule of another tenant is unknown (404).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from orchestrator.api.requests import json_body, query_params, request_actor, request_tenant
from orchestrator.api.routes import Permission, Route, body, path_param
from orchestrator.api.visibility import visible

SCHEDULES = "/api/v1/schedules"
ONE = SCHEDULES + "/{workflow}/{name}"
PARAMS = (path_param("workflow", "Workflow name."), path_param("name", "Schedule trigger name."))
Overlap = Literal["allow", "skip", "buffer_one", "cancel_previous", "terminate_previous"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DescribeQuery(_Strict):
    count: int = Field(5, ge=0, le=100, description="How many next fire times to list.")


class NoteBody(_Strict):
    note: str = Field("", max_length=1000, description="Why (kept on the schedule and shown by describe).")


class TriggerBody(_Strict):
    overlap: Overlap | None = Field(None, description="Overrides the schedule's overlap policy for this fire.")


class BackfillBody(_Strict):
    start: AwareDatetime = Field(description="First instant of the range (RFC 3339 with offset).")
    end: AwareDatetime = Field(description="Last instant of the range; must be in the past.")
    dry_run: bool = Field(True, description="Only count the fire times (the default: count first).")


class BackfillAnswer(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class ScheduleControl(Protocol):
    """What the routes need (``triggers.schedules.Schedules``). UnknownWorkflow, UnknownTrigger
    (404); a ValueError with a ``code`` attribute for a request that cannot be done (400)."""

    async def list(self, tenant: str) -> list[dict[str, Any]]: ...

    async def describe(self, workflow: str, name: str, tenant: str, count: int = 5) -> dict[str, Any]: ...

    async def pause(self, workflow: str, name: str, note: str, actor: str, tenant: str) -> dict[str, Any]: ...

    async def unpause(self, workflow: str, name: str, note: str, actor: str, tenant: str) -> dict[str, Any]: ...

    async def trigger(
        self, workflow: str, name: str, actor: str, tenant: str, overlap: Overlap | None = None
    ) -> dict[str, Any]: ...

    async def backfill(
        self, workflow: str, name: str, start: float, end: float, *, dry_run: bool, tenant: str
    ) -> BackfillAnswer: ...


class SchedulesApi:
    """``/api/v1/schedules`` over a ScheduleControl."""

    def __init__(self, control: ScheduleControl) -> None:
        self.control = control

    def routes(self) -> list[Route]:
        read, write = Permission.SCHEDULES_READ, Permission.SCHEDULES_WRITE
        return [
            Route(
                "GET", SCHEDULES, self.list_schedules, read, "listSchedules",
                "Every schedule trigger of the latest definitions that the caller's grants select: "
                "paused, last fire, next fire, counts.",
                "200:ScheduleList", filtered=True,
            ),
            Route(
                "GET", ONE, self.describe, read, "describeSchedule",
                "One schedule: its spec, state, recent skips and the next fire times (?count=N).",
                "200:Schedule 400 404", PARAMS, query=DescribeQuery,
            ),
            Route(
                "POST", ONE + "/pause", self.pause, write, "pauseSchedule",
                "Pause a schedule in every process, with a note; fires meanwhile are skipped (recorded).",
                "200:Schedule 400 404", PARAMS, body=body(NoteBody, required=False),
            ),
            Route(
                "POST", ONE + "/unpause", self.unpause, write, "unpauseSchedule",
                "Unpause: fires from now on; what was missed while paused is not caught up.",
                "200:Schedule 400 404", PARAMS, body=body(NoteBody, required=False),
            ),
            Route(
                "POST", ONE + "/trigger", self.trigger, write, "triggerSchedule",
                "Fire now, under the overlap policy (or the one given); answers the fire's outcome.",
                "200:ScheduleFire 400 404", PARAMS, body=body(TriggerBody, required=False),
            ),
            Route(
                "POST", ONE + "/backfill", self.backfill, write, "backfillSchedule",
                "Start the fire times of a past range that have not started; dry_run (default) counts.",
                "200:Backfill 400 404", PARAMS, body=body(BackfillBody),
            ),
        ]  # fmt: skip

    async def list_schedules(self, request: web.Request) -> web.Response:
        shown = visible(request, Permission.SCHEDULES_READ)
        schedules = [s for s in await self.control.list(request_tenant(request)) if shown(str(s.get("workflow")))]
        return web.json_response({"schedules": schedules})

    async def describe(self, request: web.Request) -> web.Response:
        query = query_params(request, DescribeQuery)
        workflow, name = _names(request)
        return web.json_response(await self.control.describe(workflow, name, request_tenant(request), query.count))

    async def pause(self, request: web.Request) -> web.Response:
        note = await json_body(request, NoteBody, optional=True)
        workflow, name = _names(request)
        view = await self.control.pause(workflow, name, note.note, request_actor(request), request_tenant(request))
        return web.json_response(view)

    async def unpause(self, request: web.Request) -> web.Response:
        note = await json_body(request, NoteBody, optional=True)
        workflow, name = _names(request)
        view = await self.control.unpause(workflow, name, note.note, request_actor(request), request_tenant(request))
        return web.json_response(view)

    async def trigger(self, request: web.Request) -> web.Response:
        asked = await json_body(request, TriggerBody, optional=True)
        workflow, name = _names(request)
        answer = await self.control.trigger(
            workflow, name, request_actor(request), request_tenant(request), asked.overlap
        )
        return web.json_response(answer)

    async def backfill(self, request: web.Request) -> web.Response:
        asked = await json_body(request, BackfillBody)
        workflow, name = _names(request)
        try:
            result = await self.control.backfill(
                workflow, name, _epoch(asked.start), _epoch(asked.end),
                dry_run=asked.dry_run, tenant=request_tenant(request),
            )  # fmt: skip
        except ValueError as exc:
            code = getattr(exc, "code", None)
            if not isinstance(code, str):
                raise
            reason = code.replace("_", " ").title()
            raise web.HTTPBadRequest(reason=reason, text=str(exc)) from None
        return web.json_response(result.to_dict())


def _names(request: web.Request) -> tuple[str, str]:
    return request.match_info["workflow"], request.match_info["name"]


def _epoch(moment: datetime) -> float:
    return moment.timestamp()
