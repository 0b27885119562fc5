"""The OpenAPI 3.1 document, served at ``/api/v1/openapi.json``.

Request bodies and query parameters come from the pydantic models the handlers validate with;
a test checks that the paths here are exactly the routes the app registers.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from orchestrator.api import definitions as defs
from orchestrator.api import executions as ex
from orchestrator.api import replay as replay_api
from orchestrator.ports import ExecutionSummary
from schemas.definition import WorkflowDefinition

REF = "#/components/schemas/{model}"
JSON = "application/json"
Schema = dict[str, Any]
STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
OBJ: Schema = {"type": "object"}
NUM: Schema = {"type": "number"}
ANY: Schema = {}
TIME = {"type": "string", "format": "date-time"}


def ref(name: str) -> Schema:
    return {"$ref": REF.format(model=name)}


def _obj(properties: dict[str, Schema], required: str = "") -> Schema:
    """An object schema; ``required`` names the required properties, space-separated."""
    return {"type": "object", "properties": properties, "required": required.split()}


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


IDENTITY = "execution_id workflow version tenant"
_IDENTITY = {"execution_id": STR, "workflow": STR, "version": INT, "tenant": STR}
PROBLEM = _obj({"location": STR, "message": STR})
STATUS = {"enum": ["running", "succeeded", "failed", "cancelled"]}
SCHEMAS: dict[str, Schema] = {
    "Error": _obj(
        {"error": _obj({"code": STR, "message": STR, "details": _array(PROBLEM)}, "code message")},
        "error",
    ),
    "DefinitionBrief": _obj({"name": STR, "version": INT, "description": STR, "triggers": _array(OBJ)}),
    "DefinitionList": _obj({"items": _array(ref("DefinitionBrief"))}, "items"),
    "DefinitionVersions": _obj({"name": STR, "versions": _array(INT)}, "name versions"),
    "ExecutionState": _obj(
        {
            **_IDENTITY,
            "status": STATUS,
            "sequence": {"type": "integer", "description": "Events folded into this state."},
            "input": ANY,
            "output": ANY,
            "error": _nullable(OBJ),
            "steps": {"type": "object", "description": "Output of every finished step, by name."},
            "active": {"type": "object", "description": "Steps started and not finished."},
            "timers": OBJ,
            "parent": _nullable(OBJ),
        },
        f"{IDENTITY} status sequence",
    ),
    "Execution": {
        "allOf": [ref("ExecutionSummary"), ref("ExecutionState"), _obj({"links": _array(ref("Link"))})]
    },
    "Link": _obj(
        {
            "execution_id": STR,
            "other_id": STR,
            "relation": {"enum": ["redrive_of", "redriven_as"]},
            "created_at": TIME,
        },
        "execution_id other_id relation created_at",
    ),
    "LinkList": _obj({"links": _array(ref("Link"))}, "links"),
    "RedriveResult": _obj(
        {
            "execution_id": STR,
            "created": BOOL,
            "redrive_of": STR,
            "from_step": _nullable(STR),
            "version": INT,
            "reused": {**_array(STR), "description": "Steps whose recorded output the redrive takes."},
        },
        "execution_id created redrive_of",
    ),
    "BulkRedriveResult": _obj(
        {
            "matched": _array(STR),
            "count": INT,
            "started": _array(STR),
            "existing": _array(STR),
            "errors": _array(_obj({"execution_id": STR, "error": STR})),
            "batch_key": STR,
            "dry_run": BOOL,
        },
        "matched count started",
    ),
    "ExecutionPage": _obj({"items": _array(ref("ExecutionSummary")), "next_cursor": _nullable(STR)}, "items"),
    "CloudEvent": _obj(
        {
            **dict.fromkeys(("specversion", "id", "source", "type", "subject"), STR),
            "time": TIME,
            **dict.fromkeys(("datacontenttype", "workflow", "tenant", "codec", "actor"), STR),
            **dict.fromkeys(("causationid", "chainhash"), STR),
            **dict.fromkeys(("sequence", "workflowversion", "schemaversion"), INT),
            "data": ANY,
        },
        "specversion id source type subject time sequence",
    ),
    "Timeline": _obj(
        {
            "status": STATUS,
            "events": _array(
                _obj({"sequence": INT, "offset_seconds": NUM, "type": STR, "step": ANY, "attempt": ANY,
                      "detail": STR})
            ),
            "steps": _array(
                _obj({"step": STR, "kind": STR, "visit": INT, "status": STR, "attempts": INT, "retries": INT,
                      "duration_seconds": ANY, "waited_seconds": NUM})
            ),
        },
        "status events steps",
    ),
    "InboundCloudEvent": _obj(  # structured mode; extensions beyond these are allowed
        {
            **dict.fromkeys(("specversion", "id", "source", "type", "subject"), STR),
            **dict.fromkeys(("datacontenttype", "correlationkey", "data_base64"), STR),
            "time": TIME,
            "data": ANY,
        },
        "specversion id source type",
    ),
    "HistoryPage": _obj({"events": _array(ref("CloudEvent")), "next_after": _nullable(INT)}, "events"),
    "StartResult": _obj({"execution_id": STR, "created": BOOL, "status_url": STR}, "execution_id created"),
    "SignalAccepted": _obj({"execution_id": STR, "status": STATUS, "buffered": BOOL}),
    "Delivered": _obj({"delivered_to": _array(STR)}, "delivered_to"),
    "Hook": _obj(
        {
            **dict.fromkeys(("name", "workflow"), STR),
            "version": INT,
            "preset": _nullable(STR),
            **dict.fromkeys(("signed", "enabled"), BOOL),
        }
    ),
    "HookList": _obj({"hooks": _array(ref("Hook"))}, "hooks"),
    "Trigger": _obj(
        {
            **dict.fromkeys(("workflow", "name"), STR),
            "version": INT,
            "type": {"enum": ["webhook", "kafka", "amqp", "kafka_window"]},
            "enabled": {**BOOL, "description": "The override when set, else the definition's flag."},
            "override": _nullable(BOOL),
            "running": {**BOOL, "description": "A source runs in this process (webhooks: when enabled)."},
            "running_version": _nullable(INT),
            "details": {"type": "object", "description": "path; or connection, topics/queue, group, ..."},
            "stats": _nullable(OBJ),
            "error": _nullable(STR),
        },
        "workflow version name type enabled running details",
    ),
    "TriggerList": _obj({"triggers": _array(ref("Trigger")), "runs_sources": BOOL}, "triggers runs_sources"),
    "Health": _obj({"status": STR, "reason": STR}, "status"),
    "OpenApiDocument": OBJ,
    "ExecutionDiff": _obj(
        {
            "a": OBJ,
            "b": OBJ,
            "identical": BOOL,
            "history": {
                "type": "object",
                "description": "first_divergence, same_types, per-event changes (JSON paths), only_in_a/b.",
            },
            "state": {"type": "object", "description": "status/input/output/error changes; steps added/removed/changed."},
        },
        "a b identical history state",
    ),
    "DefinitionDiff": _obj(
        {
            "name": STR,
            "from": INT,
            "to": INT,
            "identical": BOOL,
            "compatibility": {"enum": ["safe", "conditional", "breaking"]},
            "steps": OBJ,
            "changes": _array(
                _obj(
                    {"path": STR, "kind": STR, "from": ANY, "to": ANY, "impact": STR, "reason": STR},
                    "path kind impact reason",
                )
            ),
        },
        "name from to identical compatibility changes",
    ),
    "ReplayReport": _obj(
        {
            "workflow": STR,
            "version": _nullable(INT),
            "sample": INT,
            "ok": BOOL,
            "summary": _obj({"checked": INT, "ok": INT, "diverged": INT}),
            "executions": _array(OBJ),
        },
        "workflow ok summary executions",
    ),
    "VerifyBody": replay_api.VerifyBody.model_json_schema(ref_template=REF),
}


def _model_schemas(*models: type[BaseModel]) -> dict[str, Schema]:
    """Models as components, their nested ``$defs`` hoisted so every ``$ref`` resolves."""
    found: dict[str, Schema] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def _query(model: type[BaseModel]) -> list[Schema]:
    properties = model.model_json_schema()["properties"]
    return [{"name": name, "in": "query", "schema": prop} for name, prop in properties.items()]


def _path(name: str, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": STR, "description": description}


def _op(
    op_id: str,
    summary: str,
    responses: str,
    params: list[Schema] | None = None,
    body: Schema | None = None,
) -> Schema:
    """One operation. ``responses``: ``"201:Schema 400 ..."``; a bare status has an Error body."""
    answers: Schema = {}
    for item in responses.split():
        status, _, name = item.partition(":")
        content = {JSON: {"schema": ref(name or "Error")}}
        answers[status] = {"description": HTTPStatus(int(status)).phrase, "content": content}
    operation: Schema = {"operationId": op_id, "summary": summary, "responses": answers}
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = body
    return operation


def _body(name: str, *media: str, required: bool = True) -> Schema:
    return {"required": required, "content": {m: {"schema": ref(name)} for m in (JSON, *media)}}


NAME, ID = _path("name", "Workflow name."), _path("id", "Execution id.")
VERSION = {"name": "version", "in": "query", "schema": {"type": "integer", "minimum": 1}}
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "schema": {"type": "string", "minLength": 1, "maxLength": ex.MAX_IDEMPOTENCY_KEY},
    "description": "Starts of one workflow with the same key share one execution.",
}
DEFS, EXS = "/api/v1/definitions", "/api/v1/executions"
WEBHOOK_BODY = {"required": False, "content": {JSON: {"schema": ANY}}}
DEFINITION = "WorkflowDefinition"
TRIGGER_PARAMS = [_path("workflow", "Workflow name."), _path("name", "Trigger name.")]

PATHS: dict[str, Schema] = {
    DEFS: {
        "post": _op(
            "registerDefinition",
            "Register a definition (JSON or YAML); a name and version is immutable.",
            f"201:{DEFINITION} 200:{DEFINITION} 400 409 413",
            body=_body(DEFINITION, "application/yaml", "text/yaml"),
        ),
        "get": _op("listDefinitions", "The latest version of every workflow.", "200:DefinitionList"),
    },
    DEFS + "/{name}": {
        "get": _op(
            "getDefinition",
            "The latest or ?version=N.",
            f"200:{DEFINITION} 400 404",
            [NAME, VERSION],
        )
    },
    DEFS + "/{name}/diff": {
        "get": _op(
            "diffDefinitionVersions",
            "What changed between ?from=V1 and ?to=V2 (default: the latest and the one before), "
            "each change with its impact on recorded executions (safe, conditional, breaking).",
            "200:DefinitionDiff 400 404",
            [NAME, *_query(defs.DiffParams)],
        )
    },
    DEFS + "/{name}/versions": {
        "get": _op("listDefinitionVersions", "Every version.", "200:DefinitionVersions 404", [NAME])
    },
    EXS: {
        "post": _op(
            "startExecution",
            "Start an execution: 202 once durable; 200 for a repeated Idempotency-Key.",
            "202:StartResult 200:StartResult 400 404",
            [IDEMPOTENCY],
            _body("StartBody"),
        ),
        "get": _op(
            "listExecutions",
            "Newest first, paged by next_cursor.",
            "200:ExecutionPage 400",
            _query(ex.ListParams),
        ),
    },
    EXS + "/{id}": {"get": _op("getExecution", "Summary and current state.", "200:Execution 404", [ID])},
    EXS + "/{id}/history": {
        "get": _op(
            "getHistory",
            "A page of the execution's events as CloudEvents (type: comma-separated filter).",
            "200:HistoryPage 400 404",
            [ID, *_query(ex.HistoryParams)],
        )
    },
    EXS + "/{id}/timeline": {
        "get": _op(
            "getTimeline",
            "The history as a readable timeline: events, then step spans with durations, waits, retries.",
            "200:Timeline 404",
            [ID],
        )
    },
    EXS + "/{id}/diff/{other}": {
        "get": _op(
            "diffExecutions",
            "Compare two executions: history (first divergence, per-event changes) and state.",
            "200:ExecutionDiff 404",
            [ID, _path("other", "The other execution's id.")],
        )
    },
    EXS + "/{id}/state": {
        "get": _op(
            "getState",
            "The state folded from the first ?at=SEQ events (default: all).",
            "200:ExecutionState 400 404",
            [ID, *_query(ex.StateParams)],
        )
    },
    EXS + "/{id}/cancel": {
        "post": _op(
            "cancelExecution",
            "Cancel a running execution; 409 when it has finished.",
            "200:ExecutionState 400 404 409",
            [ID],
            _body("CancelBody", required=False),
        )
    },
    EXS + "/{id}/signals": {
        "post": _op(
            "signalExecution",
            "Send a named signal; buffered until the execution waits for it.",
            "202:SignalAccepted 400 404 409",
            [ID],
            _body("SignalBody"),
        )
    },
    EXS + "/{id}/redrive": {
        "post": _op(
            "redriveExecution",
            "Re-run a finished execution as a new, linked one, reusing the steps that succeeded "
            "before from_step (or the failed step); 200 for a repeated Idempotency-Key, 409 while it runs.",
            "202:RedriveResult 200:RedriveResult 400 404 409",
            [ID, {**IDEMPOTENCY, "description": "Redrives of one execution with the same key share one."}],
            _body("RedriveBody", required=False),
        )
    },
    EXS + "/redrive": {
        "post": _op(
            "redriveExecutions",
            "Bulk redrive: list matching finished executions (dry_run, the default) or redrive each, "
            "paced; the same request again starts nothing new.",
            "200:BulkRedriveResult 202:BulkRedriveResult 400 404",
            [{**IDEMPOTENCY, "description": "The batch key (default: derived from the filters)."}],
            _body("BulkRedriveBody", required=False),
        )
    },
    EXS + "/{id}/links": {
        "get": _op(
            "getLinks", "Links to other executions (redrive_of, redriven_as).", "200:LinkList 404", [ID]
        )
    },
    "/api/v1/replay/verify": {
        "post": _op(
            "verifyReplay",
            "Replay up to `sample` recorded executions of a workflow with the graph of `version`; "
            "the report names each divergence (ok is false when any).",
            "200:ReplayReport 400 404",
            body=_body("VerifyBody"),
        )
    },
    "/api/v1/events": {
        "post": _op(
            "publishEvent",
            "Deliver an event to the executions waiting on its name and correlation key. A "
            "CloudEvent (binary mode with ce-* headers, or structured application/cloudevents+json) "
            "is taken as name = type, payload = data, correlation key = the correlationkey "
            "extension, else subject; an execution takes one CloudEvent (source + id) at most once.",
            "202:Delivered 400",
            body={
                "required": True,
                "content": {
                    JSON: {"schema": ref("EventBody")},
                    "application/cloudevents+json": {"schema": ref("InboundCloudEvent")},
                },
            },
        )
    },
    "/api/v1/triggers": {
        "get": _op(
            "listTriggers",
            "Every trigger of every workflow's latest version: enabled, running here, stats, errors.",
            "200:TriggerList",
        )
    },
    "/api/v1/triggers/{workflow}/{name}/enable": {
        "post": _op(
            "enableTrigger",
            "Enable a trigger (a persisted override; every process applies it within a poll interval).",
            "200:Trigger 404",
            TRIGGER_PARAMS,
        )
    },
    "/api/v1/triggers/{workflow}/{name}/disable": {
        "post": _op(
            "disableTrigger",
            "Disable a trigger: its source stops; a disabled webhook answers 404.",
            "200:Trigger 404",
            TRIGGER_PARAMS,
        )
    },
    "/hooks": {"get": _op("listWebhooks", "Webhooks of the latest definitions.", "200:HookList")},
    "/hooks/{name}": {
        "post": _op(
            "deliverWebhook",
            "Start the workflow that declares this webhook (signature checked when configured). "
            "A CloudEvent (binary ce-* headers or structured application/cloudevents+json) starts "
            "it with its data; its source + id is the dedup key unless an idempotency key is given.",
            "202:StartResult 200:StartResult 400 401 404 408 413 415",
            [_path("name", "Webhook name.")],
            WEBHOOK_BODY,
        )
    },
    "/healthz": {"get": _op("healthz", "The process is alive.", "200:Health")},
    "/readyz": {"get": _op("readyz", "The runtime runs; its event log answers.", "200:Health 503:Health")},
    "/api/v1/openapi.json": {"get": _op("openapi", "This document.", "200:OpenApiDocument")},
}


def document() -> Schema:
    """The whole OpenAPI 3.1 document."""
    models = _model_schemas(
        WorkflowDefinition,
        ex.StartBody,
        ex.CancelBody,
        ex.SignalBody,
        ex.EventBody,
        ex.RedriveBody,
        ex.BulkRedriveBody,
    )
    models["ExecutionSummary"] = TypeAdapter(ExecutionSummary).json_schema(ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Workflow orchestrator",
            "version": "1",
            "description": "Errors have one shape: {error: {code, message, details?}}.",
        },
        "paths": PATHS,
        "components": {"schemas": {**models, **SCHEMAS}},
    }


class OpenApi:
    """Serves the document, built once per app."""

    def __init__(self) -> None:
        self.document = document()

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v1/openapi.json", self.serve)]

    async def serve(self, request: web.Request) -> web.Response:
        return web.json_response(self.document)
