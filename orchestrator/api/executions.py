"""Execution routes: start, list, inspect, history, state at a sequence, cancel, signal, events.

Every data-plane command records its actor. Until authentication exists, it is ``"api"``;
an authentication middleware will set ``request["actor"]`` (see ``requests.request_actor``).
Every route works within one tenant (``requests.request_tenant``): ``request["tenant"]`` once
that middleware exists, else the ``X-Orchestrator-Tenant`` header, else ``default``; another
tenant's execution is 404.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from orchestrator.api import redaction
from orchestrator.api.auditing import note
from orchestrator.api.errors import error_response
from orchestrator.api.jobs import busy, job_answer
from orchestrator.api.requests import (
    MAX_KEY_LENGTH,
    MAX_SEQUENCE,
    MAX_VERSION,
    TENANT_PARAM,
    cloudevent_body,
    json_body,
    query_params,
    request_actor,
    request_tenant,
)
from orchestrator.api.routes import JSON, Body, Permission, Route, body, path_param
from orchestrator.api.step_states import step_states
from orchestrator.api.visibility import tenant_definition, visible
from orchestrator.core.events import ALL_TYPES
from orchestrator.core.timefmt import rfc3339
from orchestrator.history.jobs import JobsBusy
from orchestrator.history.redrive import KEEP, Batch, ExecutionRunning, RedriveInvalid, link_to_dict
from orchestrator.ports import ExecutionQuery
from orchestrator.runtime import Runtime
from schemas import cloudevents, traceparent
from schemas.envelope import TYPE_PREFIX

MAX_IDEMPOTENCY_KEY = MAX_KEY_LENGTH
TIMELINE_PAGE = 1000  # timeline rows per page, at most
MAX_REASON = 1000  # characters of an operator's reason
MAX_SCAN = 10_000  # executions a bulk dry run looks at, at most (truncated: true when it stops there)
EXECUTIONS = "/api/v1/executions"
ID = path_param("id", "Execution id.")
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
    "description": "Starts of one workflow with the same key share one execution.",
}


# A next_cursor as every backend writes it (orchestrator.backends.paging): "<started_at>|<id>".
CURSOR = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z\|.+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StartBody(_Strict):
    workflow: str = Field(min_length=1)
    input: Any = None
    version: int | None = Field(None, ge=1, le=MAX_VERSION)


def _reason() -> Any:
    return Field(None, max_length=MAX_REASON, description="Why: recorded on the event and in the audit trail.")


class CancelBody(_Strict):
    reason: str = Field("", max_length=MAX_REASON, description="Why: recorded on ExecutionCancelled.")


class SignalBody(_Strict):
    name: str = Field(min_length=1)
    payload: Any = None
    reason: str | None = _reason()


class EventBody(_Strict):
    name: str = Field(min_length=1)
    correlation_key: StrictStr | StrictInt | None = None
    payload: Any = None
    reason: str | None = _reason()


class RedriveBody(_Strict):
    """From the input (neither step option), from a step, or from the step that failed it."""

    from_step: str | None = Field(None, min_length=1)
    from_failure: bool = False
    input: Any = Field(None, description="Replaces the original's input; absent: keep it.")
    version: int | None = Field(
        None, ge=1, le=MAX_VERSION, description="Definition version; default: the original's."
    )
    reason: str | None = _reason()


class BulkRedriveBody(_Strict):
    workflow: str | None = Field(None, min_length=1)
    status: Literal["failed", "succeeded", "cancelled"] = "failed"
    started_after: AwareDatetime | None = None
    started_before: AwareDatetime | None = None
    failing_step: str | None = Field(None, min_length=1, description="The step ExecutionFailed names.")
    from_failure: bool = False
    from_step: str | None = Field(None, min_length=1)
    dry_run: bool = True
    rate_per_second: float = Field(10.0, gt=0, le=1000)
    limit: int = Field(100, ge=1, le=1000)
    reason: str | None = _reason()


class ListParams(_Strict):
    workflow: str | None = None
    version: int | None = Field(None, ge=1, le=MAX_VERSION, description="Of this definition version only.")
    status: Literal["running", "succeeded", "failed", "cancelled"] | None = None
    started_after: AwareDatetime | None = None
    started_before: AwareDatetime | None = None
    started_by: str | None = Field(
        None, min_length=1, max_length=512, description="The start's actor, e.g. trigger:orders/paid."
    )
    correlation_key: str | None = Field(
        None, max_length=1024, description="The key of the execution's latest wait_for_event."
    )
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=1024, pattern=CURSOR)


class HistoryParams(_Strict):
    after: int = Field(0, ge=0, le=MAX_SEQUENCE)
    limit: int = Field(100, ge=1, le=1000)
    type: str | None = None


class TimelineParams(_Strict):
    after: int = Field(0, ge=0, le=2**63 - 1, description="Rows of the events after this sequence.")
    limit: int = Field(TIMELINE_PAGE, ge=1, le=TIMELINE_PAGE, description="Rows per page.")


class StateParams(_Strict):
    at: int | None = Field(None, ge=1, le=MAX_SEQUENCE)


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise web.HTTPBadRequest(
            reason="Invalid Header",
            text=f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
        )
    return key


def _event_types(raw: str | None) -> set[str] | None:
    if raw is None:
        return None
    types = {part.strip().removeprefix(TYPE_PREFIX) for part in raw.split(",") if part.strip()}
    unknown = sorted(types - ALL_TYPES)
    if unknown or not types:
        what = f"unknown event type(s) {', '.join(unknown)}" if unknown else "no event type given"
        known = ", ".join(sorted(ALL_TYPES))
        raise web.HTTPBadRequest(reason="Invalid Parameter", text=f"type: {what}; known: {known}")
    return types


def _timestamp(value: datetime | None, name: str, reason: str = "Invalid Parameter") -> str | None:
    """The index's time format (UTC, microseconds, ``Z``), so string comparison is time order;
    400 for a time whose UTC form leaves the years 1 to 9999 (``0001-01-01T00:00:00+14:00``)."""
    try:
        return None if value is None else rfc3339(value.timestamp())
    except (ValueError, OverflowError):
        raise web.HTTPBadRequest(reason=reason, text=f"{name}: {value} is out of range in UTC") from None


class ExecutionsApi:
    """``/api/v1/executions`` and ``/api/v1/events`` over the runtime's library API."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def routes(self) -> list[Route]:
        """Every route works within the request's tenant, so each takes the tenant header."""
        return [dataclasses.replace(route, params=(*route.params, TENANT_PARAM)) for route in self._routes()]

    def _routes(self) -> list[Route]:
        P, base = Permission, EXECUTIONS
        return [
            Route(
                "POST", base, self.start, P.EXECUTIONS_START, "startExecution",
                "Start an execution: 202 once durable; 200 for a repeated Idempotency-Key.",
                "202:StartResult 200:StartResult 400 404",
                (IDEMPOTENCY,), body=body(StartBody),
            ),
            Route(
                "GET", base, self.list_executions, P.EXECUTIONS_READ, "listExecutions",
                "Newest first, paged by next_cursor; only the workflows the caller's grants select "
                "(a page may then hold fewer than limit items).",
                "200:ExecutionPage 400", query=ListParams, filtered=True,
            ),
            Route(
                "GET", base + "/{id}", self.get, P.PAYLOADS_READ, "getExecution",
                "Summary and current state.", "200:Execution 404", (ID,),
            ),
            Route(
                "GET", base + "/{id}/history", self.history, P.PAYLOADS_READ, "getHistory",
                "A page of the execution's events as CloudEvents (type: comma-separated filter).",
                "200:HistoryPage 400 404", (ID,), query=HistoryParams,
            ),
            Route(
                "GET", base + "/{id}/state", self.state, P.PAYLOADS_READ, "getState",
                "The state folded from the first ?at=SEQ events (default: all).",
                "200:ExecutionState 400 404", (ID,), query=StateParams,
            ),
            Route(
                "GET", base + "/{id}/diff/{other}", self.diff, P.PAYLOADS_READ, "diffExecutions",
                "Compare two executions: history (first divergence, per-event changes) and state.",
                "200:ExecutionDiff 404", (ID, path_param("other", "The other execution's id.")),
            ),
            Route(
                "GET", base + "/{id}/timeline", self.timeline, P.PAYLOADS_READ, "getTimeline",
                "A page of the history as a readable timeline: events, then step spans with durations, "
                "waits, retries; next_after is null on the last page.",
                "200:Timeline 400 404", (ID,), query=TimelineParams,
            ),
            Route(
                "POST", base + "/{id}/cancel", self.cancel, P.EXECUTIONS_CANCEL, "cancelExecution",
                "Cancel a running execution; 409 when it has finished.",
                "200:ExecutionState 400 404 409", (ID,), body=body(CancelBody, required=False),
            ),
            Route(
                "POST", base + "/{id}/signals", self.signal, P.EXECUTIONS_SIGNAL, "signalExecution",
                "Send a named signal; buffered until the execution waits for it. The same "
                "Idempotency-Key delivers it once; 409 signal_buffer_full past 1,000 buffered signals.",
                "202:SignalAccepted 400 404 409",
                (ID, {**IDEMPOTENCY, "description": "Signals to one execution with the same key are delivered once."}),
                body=body(SignalBody),
            ),
            Route(
                "POST", "/api/v1/events", self.publish, P.EVENTS_PUBLISH, "publishEvent",
                "Deliver an event to the executions waiting on its name and correlation key. A "
                "CloudEvent (binary mode with ce-* headers, or structured application/cloudevents+json) "
                "is taken as name = type, payload = data, correlation key = the correlationkey "
                "extension, else subject; an execution takes one CloudEvent (source + id) at most once.",
                "202:Delivered 400",
                body=Body(((JSON, EventBody), (cloudevents.STRUCTURED, "InboundCloudEvent"))),
            ),
            Route(
                "POST", base + "/{id}/redrive", self.redrive, P.EXECUTIONS_REDRIVE, "redriveExecution",
                "Re-run a finished execution as a new, linked one, reusing the steps that succeeded "
                "before from_step (or the failed step); 200 for a repeated Idempotency-Key, 409 while it runs.",
                "202:RedriveResult 200:RedriveResult 400 404 409",
                (ID, {**IDEMPOTENCY, "description": "Redrives of one execution with the same key share one."}),
                body=body(RedriveBody, required=False),
            ),
            Route(
                "POST", base + "/redrive", self.redrive_bulk, P.EXECUTIONS_REDRIVE, "redriveExecutions",
                "Bulk redrive: list matching finished executions (dry_run, the default: 200) or redrive "
                "each, paced, in a background job (202 with the job; follow GET /api/v1/jobs/{id}); "
                "the same request again starts nothing new.",
                "200:BulkRedriveResult 202:Job 400 429",
                ({**IDEMPOTENCY, "description": "The batch key (default: derived from the filters)."},),
                body=body(BulkRedriveBody, required=False),
            ),
            Route(
                "GET", base + "/{id}/links", self.links, P.EXECUTIONS_READ, "getLinks",
                "Links to other executions (redrive_of, redriven_as).", "200:LinkList 404", (ID,),
            ),
        ]

    async def start(self, request: web.Request) -> web.Response:
        """202 once the start is durable; 200 with the existing id for a repeated key."""
        body = await json_body(request, StartBody)
        tenant = request_tenant(request)
        await tenant_definition(self.runtime.registry, body.workflow, tenant, body.version)  # else 404
        result = await self.runtime.start_execution(
            body.workflow,
            body.input,
            version=body.version,
            dedup_key=_idempotency_key(request),
            actor=request_actor(request),
            tenant=tenant,
            metadata=traceparent.start_metadata(request.headers.get(traceparent.HEADER)),
        )
        details: dict[str, str | bool] = {"workflow": body.workflow, "created": result.created, "debounced": result.debounced}
        note(request, resource_id=result.execution_id, details=details)
        answer: dict[str, str | bool] = {"execution_id": result.execution_id, "created": result.created}
        if result.debounced:  # recorded on a quiet execution: it runs once, with the last input
            answer["debounced"] = True
        return web.json_response(
            answer,
            status=202 if result.created or result.debounced else 200,
            headers={"Location": f"/api/v1/executions/{result.execution_id}"},
        )

    async def list_executions(self, request: web.Request) -> web.Response:
        params = query_params(request, ListParams)
        if params.started_after and params.started_before and params.started_after > params.started_before:
            raise web.HTTPBadRequest(
                reason="Invalid Parameter",
                text="started_after must not be later than started_before",
            )
        payloads = redaction.payloads_visible(request)
        if params.correlation_key is not None and not payloads:  # keys come from the input
            return error_response(403, "forbidden", "filtering by correlation_key needs payloads:read")
        page = await self.runtime.list_executions(
            ExecutionQuery(
                workflow=params.workflow,
                version=params.version,
                status=params.status,
                started_after=_timestamp(params.started_after, "started_after"),
                started_before=_timestamp(params.started_before, "started_before"),
                started_by=params.started_by,
                correlation_key=params.correlation_key,
                limit=params.limit,
                cursor=params.cursor,
            ),
            tenant=request_tenant(request),
        )
        shown = visible(request, Permission.EXECUTIONS_READ)
        items = [self._queued(summary.to_dict()) for summary in page.items if shown(summary.workflow)]
        if not payloads:
            items = [redaction.summary(item) for item in items]
        return web.json_response({"items": items, "next_cursor": page.next_cursor})

    def _queued(self, view: dict[str, Any]) -> dict[str, Any]:
        """A running execution that waits for concurrency slots shows as ``queued``, with its
        place in the queue (``docs/resources.md``)."""
        position = self.runtime.admission.position(view["execution_id"])
        if position is not None and view.get("status") in ("running", "queued"):
            view.update(status="queued", queue_position=position)
        return view

    async def get(self, request: web.Request) -> web.Response:
        """The summary row plus the current state."""
        execution_id, tenant = request.match_info["id"], request_tenant(request)
        summary = await self.runtime.summary(execution_id, tenant=tenant)
        state = await self.runtime.state(execution_id, tenant=tenant)
        links = [link_to_dict(link) for link in await self.runtime.links(execution_id, tenant=tenant)]
        view = self._queued({**summary.to_dict(), **state.to_dict(), "links": links})
        view["step_states"] = step_states(view)
        return web.json_response(view if redaction.payloads_visible(request) else redaction.state(view))

    async def history(self, request: web.Request) -> web.Response:
        """One page of CloudEvents after ``after``; ``next_after`` is null on the last page."""
        params = query_params(request, HistoryParams)
        types = _event_types(params.type)
        execution_id = request.match_info["id"]
        events = await self.runtime.history(
            execution_id, params.after, params.limit + 1, types, tenant=request_tenant(request)
        )
        more = len(events) > params.limit
        events = events[: params.limit]
        shown = [event.to_cloudevent() for event in events]
        if not redaction.payloads_visible(request):
            shown = [redaction.event(event) for event in shown]
        return web.json_response(
            {
                "events": shown,
                "next_after": events[-1].sequence if more else None,
            }
        )

    async def timeline(self, request: web.Request) -> web.Response:
        """A page of the history as a timeline: one row per event after ``after`` (at most
        ``limit``), then the step spans of those events with durations, waits and retries."""
        params = query_params(request, TimelineParams)
        built = await self.runtime.timeline(
            request.match_info["id"], params.after, params.limit, tenant=request_tenant(request)
        )
        view = built.to_dict()
        return web.json_response(view if redaction.payloads_visible(request) else redaction.timeline(view))

    async def state(self, request: web.Request) -> web.Response:
        """The state folded from the first ``at`` events (the current state without ``at``)."""
        params = query_params(request, StateParams)
        state = await self.runtime.state(request.match_info["id"], params.at, tenant=request_tenant(request))
        if params.at is not None and state.sequence < params.at:
            raise web.HTTPBadRequest(
                reason="Invalid Parameter",
                text=f"at: the execution has only {state.sequence} events (got {params.at})",
            )
        view = state.to_dict()
        view["step_states"] = step_states(view)
        return web.json_response(view if redaction.payloads_visible(request) else redaction.state(view))

    async def diff(self, request: web.Request) -> web.Response:
        """Two executions compared: history event by event (first divergence, per-event changes
        with JSON paths; ids and times ignored) and state (status, input, output, error, steps)."""
        found = await self.runtime.diff_executions(
            request.match_info["id"], request.match_info["other"], tenant=request_tenant(request)
        )
        view = found.to_dict()
        return web.json_response(view if redaction.payloads_visible(request) else redaction.diff(view))

    async def cancel(self, request: web.Request) -> web.Response:
        """200 with the cancelled state; 409 when the execution has already finished."""
        body = await json_body(request, CancelBody, optional=True)
        note(request, reason=body.reason)
        state = await self.runtime.cancel(
            request.match_info["id"], body.reason, request_actor(request), tenant=request_tenant(request)
        )
        view = state.to_dict()
        return web.json_response(view if redaction.payloads_visible(request) else redaction.state(view))

    async def signal(self, request: web.Request) -> web.Response:
        """Deliver to the waiting step, or buffer until the execution waits for that name."""
        body = await json_body(request, SignalBody)
        note(request, reason=body.reason, details={"signal": body.name})
        execution_id = request.match_info["id"]
        key = _idempotency_key(request)
        state = await self.runtime.signal(
            execution_id,
            body.name,
            body.payload,
            request_actor(request),
            tenant=request_tenant(request),
            event_id=key,
            reason=body.reason,
        )
        # A step waiting for this name would have taken any buffered one, so a buffered
        # signal of this name now means this one was buffered.
        buffered = any(name == body.name for name, _ in state.signals)
        return web.json_response(
            {"execution_id": execution_id, "status": state.status, "buffered": buffered}, status=202
        )

    async def publish(self, request: web.Request) -> web.Response:
        """Deliver to every execution waiting on (name, correlation key).

        A CloudEvent (binary or structured mode) is taken as name = ``type``, payload = data,
        correlation key = ``correlationkey`` (else ``subject``); its source + id is the event id,
        so an execution takes a re-sent CloudEvent at most once."""
        event = await cloudevent_body(request)
        if event is not None:
            attributes, payload = event
            raw_key = attributes.get("correlationkey", attributes.get("subject"))
            delivered = await self.runtime.publish_event(
                attributes["type"],
                None if raw_key is None else str(raw_key),
                payload,
                actor=request_actor(request),
                event_id="ce:" + cloudevents.identity(attributes),
                tenant=request_tenant(request),
            )
            return web.json_response({"delivered_to": delivered}, status=202)
        body = await json_body(request, EventBody)
        key = None if body.correlation_key is None else str(body.correlation_key)
        note(request, resource_id=body.name, reason=body.reason)
        delivered = await self.runtime.publish_event(
            body.name,
            key,
            body.payload,
            actor=request_actor(request),
            tenant=request_tenant(request),
            reason=body.reason,
        )
        note(request, details={"delivered": len(delivered)})
        return web.json_response({"delivered_to": delivered}, status=202)

    async def redrive(self, request: web.Request) -> web.Response:
        """202 with the new execution; 200 with the earlier one for a repeated Idempotency-Key;
        409 while the original runs; 400 for a step the definition lacks or no failed step."""
        body = await json_body(request, RedriveBody, optional=True)
        note(request, reason=body.reason)
        try:
            result = await self.runtime.redrive(
                request.match_info["id"],
                from_step=body.from_step,
                from_failure=body.from_failure,
                input=body.input if "input" in body.model_fields_set else KEEP,
                version=body.version,
                dedup_key=_idempotency_key(request),
                actor=request_actor(request),
                tenant=request_tenant(request),
                reason=body.reason,
            )
        except RedriveInvalid as exc:
            raise web.HTTPBadRequest(reason="Invalid Redrive", text=str(exc)) from None
        except ExecutionRunning as exc:
            raise web.HTTPConflict(reason="Execution Running", text=str(exc)) from None
        note(request, details={"redriven_as": result.execution_id, "created": result.created})
        return web.json_response(
            result.to_dict(),
            status=202 if result.created else 200,
            headers={"Location": f"/api/v1/executions/{result.execution_id}"},
        )

    async def redrive_bulk(self, request: web.Request) -> web.Response:
        """A dry run (the default) lists the matches (looking at ``MAX_SCAN`` executions at most);
        otherwise 202 with a background job that redrives each, paced (429 when too many jobs
        run). The same request again (or the same Idempotency-Key) starts nothing new."""
        body = await json_body(request, BulkRedriveBody, optional=True)
        if body.started_after and body.started_before and body.started_after > body.started_before:
            raise web.HTTPBadRequest(
                reason="Invalid Body", text="started_after must not be later than started_before"
            )
        batch = Batch(
            ExecutionQuery(
                workflow=body.workflow,
                status=body.status,
                started_after=_timestamp(body.started_after, "started_after", "Invalid Body"),
                started_before=_timestamp(body.started_before, "started_before", "Invalid Body"),
            ),
            failing_step=body.failing_step,
            from_failure=body.from_failure,
            from_step=body.from_step,
            rate_per_second=body.rate_per_second,
            limit=body.limit,
            batch_key=_idempotency_key(request),
            actor=request_actor(request),
            reason=body.reason,
        )
        note(request, reason=body.reason, details={"dry_run": body.dry_run, "batch": batch.key})
        tenant = request_tenant(request)
        try:
            if not body.dry_run:
                return job_answer(*self.runtime.redrive_job(batch, tenant=tenant))
            result = await self.runtime.redrive_many(
                batch.query,
                failing_step=batch.failing_step,
                from_failure=batch.from_failure,
                from_step=batch.from_step,
                limit=batch.limit,
                batch_key=batch.batch_key,
                tenant=tenant,
                scan_limit=MAX_SCAN,
                reason=batch.reason,
            )
        except RedriveInvalid as exc:
            raise web.HTTPBadRequest(reason="Invalid Redrive", text=str(exc)) from None
        except JobsBusy as exc:
            return busy(exc)
        return web.json_response(result.to_dict())

    async def links(self, request: web.Request) -> web.Response:
        """Links recorded under the execution (``redrive_of``, ``redriven_as``), oldest first."""
        links = await self.runtime.links(request.match_info["id"], tenant=request_tenant(request))
        return web.json_response({"links": [link_to_dict(link) for link in links]})
