"""The OpenAPI 3.1 document, generated from the app's route table and served at
``/api/v1/openapi.json``.

Paths, methods, summaries, parameters, request bodies and each operation's ``x-permission``
(null: public) come from the :class:`~orchestrator.api.routes.Route` declarations; request
models become components. The response schemas are the components below. Routes declared with
``in_openapi=False`` are left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from orchestrator.api.routes import JSON, OPENAPI_PATH, ROUTE_TABLE, Model, Route, Schema
from orchestrator.ports import ExecutionSummary

REF = "#/components/schemas/{model}"
BEARER = "bearerAuth"
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
SHOWN_STATUS = {"enum": ["queued", "running", "succeeded", "failed", "cancelled"], "description": "queued: waits for concurrency slots."}
SCHEMAS: dict[str, Schema] = {
    "Error": _obj(
        {"error": _obj({"code": STR, "message": STR, "details": _array(PROBLEM)}, "code message")},
        "error",
    ),
    "Session": _obj(
        {
            "session_id": STR,
            "subject": STR,
            "tenant": STR,
            "roles": {"type": "object", "description": "Role names by tenant ('*': every tenant)."},
            "logged_in_with": {"enum": ["key", "token"]},
            "expires_at": TIME,
            "csrf_token": {**STR, "description": "Send as X-CSRF-Token on state-changing requests."},
        },
        "session_id subject tenant roles expires_at csrf_token",
    ),
    "Me": _obj(
        {
            "subject": STR,
            "actor": STR,
            "kind": STR,
            "tenant": STR,
            "roles": _array(STR),
            "permissions": {**_array(STR), "description": "Permissions some grant covers in the tenant."},
            "restricted": {**_array(STR), "description": "Of those, the ones granted for some workflows only."},
            "tenants": {**_array(STR), "description": "The tenants it has roles in (send X-Orchestrator-Tenant)."},
            "every_tenant": {**BOOL, "description": "It has roles in every tenant."},
            "auth": BOOL,
        },
        "subject actor tenant roles permissions restricted tenants every_tenant auth",
    ),
    "DefinitionBrief": _obj(
        {"name": STR, "version": INT, "tenant": STR, "description": STR, "triggers": _array(OBJ)}
    ),
    "DefinitionList": _obj({"items": _array(ref("DefinitionBrief"))}, "items"),
    "DefinitionVersions": _obj({"name": STR, "versions": _array(INT)}, "name versions"),
    "ExecutionState": _obj(
        {
            **_IDENTITY,
            "status": SHOWN_STATUS,
            "sequence": {"type": "integer", "description": "Events folded into this state."},
            "input": ANY,
            "output": ANY,
            "error": _nullable(OBJ),
            "steps": {"type": "object", "description": "Output of every finished step, by name."},
            "active": {"type": "object", "description": "Steps started and not finished."},
            "step_states": {
                "type": "object",
                "additionalProperties": {"enum": ["succeeded", "failed", "running", "retrying", "waiting"]},
                "description": "Each started step's state (kept when payloads are redacted); absent: pending.",
            },
            "timers": OBJ,
            "parent": _nullable(OBJ),
            "started_by": {**_nullable(STR), "description": "The actor that started the execution."},
            "slots": {**OBJ, "description": "Under concurrency limits: keys, held, queued, queued_at, priority."},
            "queue_position": {**_nullable(INT), "description": "1: admitted next among its key's waiters."},
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
            "truncated": {**BOOL, "description": "The scan stopped at its limit: narrow the filters."},
        },
        "matched count started",
    ),
    "Job": {
        "allOf": [
            ref("BulkRedriveResult"),
            _obj(
                {
                    "job_id": STR,
                    "kind": {"enum": ["redrive"]},
                    "key": {**STR, "description": "The batch key: the same request again finds this job."},
                    "status": {"enum": ["running", "succeeded", "failed", "cancelled"]},
                    "progress": _obj({"total": _nullable(INT), "done": INT}, "total done"),
                    "created_at": TIME,
                    "finished_at": _nullable(TIME),
                    "error": _nullable(STR),
                    "created": {**BOOL, "description": "In the 202: false when the same job was running."},
                    "status_url": STR,
                },
                "job_id kind status progress created_at",
            ),
        ]
    },
    "ExecutionPage": _obj({"items": _array(ref("ExecutionSummary")), "next_cursor": _nullable(STR)}, "items"),
    "DeadLetter": _obj(
        {
            **dict.fromkeys(("id", "execution_id", "command_type", "error_type", "error_message"), STR),
            "command_id": _nullable(STR),
            "attempts": INT,
            "parked_at": TIME,
            "origin": {**STR, "description": "Where it was read from (Kafka: topic/partition/offset)."},
            "tenant": {**STR, "description": "The tenant of the parked command."},
        },
        "id execution_id command_type error_type error_message attempts parked_at",
    ),
    "DeadLetterPage": _obj({"items": _array(ref("DeadLetter")), "next_cursor": _nullable(STR)}, "items"),
    "SecretInfo": _obj(
        {"tenant": STR, "name": STR, "created_at": TIME, "updated_at": TIME, "key_id": STR},
        "tenant name created_at updated_at key_id",
    ),
    "SecretList": _obj({"items": _array(ref("SecretInfo"))}, "items"),
    "TemplateList": _obj({"items": _array(OBJ)}, "items"),
    "WorkflowTemplate": {"type": "object", "description": "schemas/workflow-template.schema.json"},
    "TemplateInstalled": _obj(
        {**dict.fromkeys(("workflow", "template", "template_version", "checksum", "tenant", "actor"), STR),
         "version": INT, "parameters": OBJ},
        "workflow version template template_version",
    ),
    "TemplateTestResults": _obj({"passed": BOOL, "items": _array(OBJ)}, "passed items"),
    "TemplateUpgrade": _obj(
        {"diff": ref("DefinitionDiff"), "compatibility": STR, "registered": _nullable(ref("TemplateInstalled"))},
        "diff compatibility registered",
    ),
    "SecretDeleted": _obj({"tenant": STR, "name": STR, "deleted": BOOL}, "tenant name deleted"),
    "CatalogKey": _obj({"algorithm": STR, "key": STR, "pem": STR}, "algorithm key pem"),
    "CatalogDocument": _obj(
        {
            "metadata": _obj(
                {"id": STR, "version": STR, "title": STR, "description": STR, "categories": _array(STR),
                 "tags": _array(STR), "author": STR, "licence": STR, "engine": STR},
                "id version title author licence",
            ),
            "parameters": OBJ, "extends": ANY, "include": ANY, "workflow": OBJ, "tests": ANY,
        },
        "metadata",
    ),
    "CatalogVersion": _obj(
        {"id": STR, "version": STR, "status": {"enum": ["pending", "approved", "rejected", "unlisted"]},
         "reason": _nullable(STR), "checksum": STR, "publisher": STR, "published_at": TIME},
        "id version status checksum publisher published_at",
    ),
    "CatalogVersionList": _obj({"items": _array(ref("CatalogVersion"))}, "items"),
    "CatalogDownload": {"allOf": [
        ref("CatalogVersion"),
        _obj({"document": ref("CatalogDocument"), "signature": STR, "key": STR}, "document signature key"),
    ]},
    "CatalogRating": _obj({"average": _nullable(NUM), "count": INT}, "average count"),
    "CatalogSummary": _obj(
        {"id": STR, "version": STR, "status": STR, "title": STR, "description": STR, "categories": _array(STR),
         "tags": _array(STR), "author": STR, "licence": STR, "engine": STR, "publisher": STR,
         "versions": _array(STR), "rating": ref("CatalogRating")},
        "id version status title author versions rating",
    ),
    "CatalogList": _obj({"items": _array(ref("CatalogSummary"))}, "items"),
    "CatalogReview": _obj(
        {"template_id": STR, "reviewer": STR, "rating": INT, "text": STR, "updated_at": TIME,
         "status": {"enum": ["visible", "reported", "hidden"]}, "reports": _array(STR)},
        "template_id reviewer rating text updated_at status",
    ),
    "CatalogTemplate": {"allOf": [ref("CatalogSummary"), _obj({"reviews": _array(ref("CatalogReview"))}, "reviews")]},
    "CatalogInstall": _obj(
        {"template": STR, "version": STR, "checksum": STR, "tenant": STR, "workflow": STR, "workflow_version": INT},
        "template version checksum",
    ),
    "DeadLetterRedriven": {"allOf": [ref("DeadLetter"), _obj({"redriven": BOOL}, "redriven")]},
    "CloudEvent": _obj(
        {
            **dict.fromkeys(("specversion", "id", "source", "type", "subject"), STR),
            "time": TIME,
            **dict.fromkeys(("datacontenttype", "workflow", "tenant", "codec", "actor"), STR),
            **dict.fromkeys(("causationid", "chainhash", "node"), STR),
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
                _obj({"step": STR, "kind": STR, "visit": INT, "status": STR, "started_seconds": NUM,
                      "attempts": INT, "retries": INT, "duration_seconds": ANY, "waited_seconds": NUM})
            ),
            "next_after": {**_nullable(INT), "description": "More rows follow: pass it as ?after=."},
        },
        "status events steps next_after",
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
    "StartResult": _obj({"execution_id": STR, "created": BOOL, "debounced": BOOL, "status_url": STR}, "execution_id created"),
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
            "type": {"enum": ["webhook", "kafka", "amqp", "kafka_window", "schedule"]},
            "actor": {**STR, "description": "What its starts record as started_by (a listing filter)."},
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
    "ApiKey": _obj(
        {
            "key_id": STR,
            "name": STR,
            "tenant": STR,
            "roles": {"type": "object", "description": "tenant (or *) -> role names bound there"},
            "status": {"enum": ["active", "expired", "revoked"]},
            "owner": _nullable(STR),
            "created_by": _nullable(STR),
            "created_at": NUM,
            "expires_at": _nullable(NUM),
            "revoked_at": _nullable(NUM),
            "last_used_at": _nullable(NUM),
            "rotated_from": _nullable(STR),
            "replaced_by": _nullable(STR),
        },
        "key_id name tenant roles status created_at",
    ),
    "ApiKeyList": _obj({"items": _array(ref("ApiKey"))}, "items"),
    "CreatedApiKey": {
        "allOf": [
            ref("ApiKey"),
            _obj(
                {"key": {**STR, "description": "The key itself, shown only now."}, "previous": ref("ApiKey")},
                "key",
            ),
        ]
    },
    "Role": _obj(
        {"name": STR, "source": {"enum": ["builtin", "file", "tenant"]}, "grants": _array(STR)},
        "name source grants",
    ),
    "RoleList": _obj({"items": _array(ref("Role"))}, "items"),
    "DeletedRole": _obj({"name": STR, "source": STR, "deleted": BOOL}, "name deleted"),
    "TriggerList": _obj({"triggers": _array(ref("Trigger")), "runs_sources": BOOL}, "triggers runs_sources"),
    "Schedule": _obj(
        {
            **dict.fromkeys(("workflow", "name", "tenant", "note"), STR),
            "spec": {"type": "object", "description": "cron or every, timezone, catchup, overlap, ..."},
            "enabled": BOOL,
            "paused": BOOL,
            "paused_by": _nullable(STR),
            **dict.fromkeys(("paused_at", "decided_until", "buffered"), _nullable(TIME)),
            "last": _nullable(_obj({"scheduled_time": TIME, "execution_id": STR})),
            "pending": INT,
            "counts": _obj({"started": INT, "skipped": INT, "failed": INT}),
            "recent_skips": _array(_obj({"time": TIME, "reason": STR, "count": INT}, "time reason")),
            "next": _array(_obj({"scheduled_time": TIME, "local": STR}, "scheduled_time local")),
        },
        "workflow name tenant spec enabled paused counts next",
    ),
    "ScheduleList": _obj({"schedules": _array(ref("Schedule"))}, "schedules"),
    "ScheduleFire": _obj(
        {
            "scheduled_time": TIME,
            "outcome": {"enum": ["started", "buffered", "skipped"]},
            "execution_id": _nullable(STR),
            "overlap": STR,
        },
        "scheduled_time outcome execution_id overlap",
    ),
    "Backfill": _obj(
        {
            "fire_times": INT,
            **dict.fromkeys(("first", "last"), _nullable(TIME)),
            **dict.fromkeys(("started", "existing", "failed"), INT),
            "dry_run": BOOL,
        },
        "fire_times first last started existing failed dry_run",
    ),
    "Health": _obj({"status": STR, "reason": STR}, "status"),
    "DoctorReport": _obj(
        {
            "checked": {"type": "object", "description": "kind (timer, wait, task, parked_command) -> items looked at."},
            "found": {"type": "object", "description": "kind -> leaks found."},
            "leaks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "{kind, execution_id, status (finished status or missing), detail, fixed}.",
                },
            },
            "fixed": BOOL,
        },
        "checked found leaks fixed",
    ),
    "Quotas": _obj(
        {
            "tenant": STR,
            "quotas": {
                "type": "object",
                "description": "running, starts_per_minute, payload_bytes, events_per_execution, stored_bytes: each {limit (null: none), usage}.",
            },
        },
        "tenant quotas",
    ),
    "Limits": _obj(
        {
            "tenant": STR,
            "limits": _array(
                _obj(
                    {
                        **dict.fromkeys(("key", "value", "on_limit"), STR),
                        "expression": {**STR, "description": "The definition's key expression."},
                        "scope": {"enum": ["workflow", "tenant", "global"]},
                        **dict.fromkeys(("tenant", "workflow"), _nullable(STR)),
                        **dict.fromkeys(("limit", "held", "queued"), INT),
                        "oldest_wait_seconds": {**_nullable(NUM), "description": "How long the oldest waiter waits."},
                    },
                    "key value scope limit held queued",
                )
            ),
        },
        "tenant limits",
    ),
    "ClusterNode": _obj(
        {
            **dict.fromkeys(("node_id", "role", "version", "host"), STR),
            "status": {"enum": ["alive", "late", "dead", "left"]},
            "pid": INT,
            **dict.fromkeys(("started_at", "heartbeat_at", "interval", "seconds_since_heartbeat"), NUM),
            "shards": {**_nullable(_array(INT)), "description": "Commands partitions owned; null: all (one process)."},
            "in_flight": INT,
            "lag": {"type": "object", "additionalProperties": INT, "description": "Consumer lag by topic/partition."},
            "stopped": BOOL,
            "config": {**OBJ, "description": "Effective configuration, secrets redacted (absent with ?config=false)."},
        },
        "node_id role status heartbeat_at",
    ),
    "Trace": _obj(
        {
            "execution_id": STR,
            "partition": {**INT, "description": "The commands partition (shard) of the execution."},
            "total_seconds": NUM,
            "events": _array(ref("TraceRow")),
            "handoffs": _array(_obj({"sequence": INT, "from": _nullable(STR), "to": _nullable(STR)})),
            "events_by_node": {"type": "object", "additionalProperties": INT},
            "seconds_by_type": {"type": "object", "additionalProperties": NUM},
            "slowest": _array(ref("TraceRow")),
        },
        "execution_id partition events",
    ),
    "TraceRow": _obj(
        {
            "sequence": INT,
            **dict.fromkeys(("time", "type"), STR),
            **dict.fromkeys(("step", "node"), _nullable(STR)),
            **dict.fromkeys(("offset_seconds", "delay_seconds"), NUM),
        },
        "sequence type offset_seconds delay_seconds",
    ),
    "Cluster": _obj(
        {
            "self": STR,
            "nodes": _array(ref("ClusterNode")),
            "counts": OBJ,
            "partitions": {"type": "object", "description": "Partition -> the live nodes that own it."},
            "contested": {"type": "object", "description": "Partitions more than one live node claims."},
            "lag": OBJ,
        },
        "self nodes counts partitions",
    ),
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
            "state": {
                "type": "object",
                "description": "status/input/output/error changes; steps added/removed/changed.",
            },
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
    # The figures of each analytics query (docs/analytics.md), with the scope they cover.
    "AnalyticsResult": _obj(
        {"tenant": STR, "workflow": _nullable(STR), "version": _nullable(INT), "since": TIME, "until": TIME},
        "tenant since until",
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
    "AuditRecord": _obj(
        {
            "sequence": INT,
            "time": TIME,
            "actor": _obj({"subject": STR, "kind": STR, "credential_id": _nullable(STR)}, "subject kind"),
            "action": STR,
            "resource": _obj({"type": STR, "id": _nullable(STR)}, "type"),
            "tenant": STR,
            "outcome": {"enum": ["ok", "denied", "failed", "error"]},
            "reason": _nullable(STR),
            "request_id": _nullable(STR),
            "source": _nullable(STR),
            "details": OBJ,
            "format": INT,
            "previous": STR,
            "hash": STR,
        },
        "sequence time actor action resource tenant outcome previous hash",
    ),
    "AuditPage": _obj({"items": _array(ref("AuditRecord")), "next_cursor": _nullable(STR)}, "items"),
}


def _model_schemas(models: Iterable[type[BaseModel]]) -> dict[str, Schema]:
    """Models as components, their nested ``$defs`` hoisted so every ``$ref`` resolves."""
    found: dict[str, Schema] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def query_params(model: type[BaseModel]) -> list[Schema]:
    """The query parameters a model validates."""
    properties = model.model_json_schema()["properties"]
    return [{"name": name, "in": "query", "schema": prop} for name, prop in properties.items()]


def _schema(model: Model) -> Schema:
    if isinstance(model, str):
        return ref(model)
    if isinstance(model, dict):
        return model
    return ref(model.__name__)


def _responses(compact: str) -> Schema:
    """``"201:Schema 400 ..."``; a bare status has an Error body."""
    answers: Schema = {}
    for item in compact.split():
        status, _, name = item.partition(":")
        content = {JSON: {"schema": ref(name or "Error")}}
        answers[status] = {"description": HTTPStatus(int(status)).phrase, "content": content}
    return answers


def operation(route: Route) -> Schema:
    """One route's operation object, with its ``x-permission``."""
    operation: Schema = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "x-permission": None if route.permission is None else route.permission.value,
        **({"x-authenticates": True} if route.authenticates else {}),
        "responses": _responses(route.responses),
        "security": [] if route.permission is None else [{BEARER: []}],
    }
    if route.permission is not None:  # no or a refused key; a permission it lacks
        for status, answer in _responses("401 403").items():
            operation["responses"].setdefault(status, answer)
    params = list(route.params)
    declared = {p["name"] for p in params if p.get("in") == "path"}
    params += [
        {"name": name, "in": "path", "required": True, "schema": STR}
        for name in re.findall(r"{(\w+)}", route.path)
        if name not in declared
    ]
    if route.query is not None:
        params += query_params(route.query)
    if params:
        operation["parameters"] = params
    if route.body is not None:
        content = {kind: {"schema": _schema(model)} for kind, model in route.body.content}
        operation["requestBody"] = {"required": route.body.required, "content": content}
    return operation


def _models(routes: Iterable[Route]) -> dict[str, type[BaseModel]]:
    """The request models the routes name, by name (each once)."""
    found: dict[str, type[BaseModel]] = {}
    for route in routes:
        content = route.body.content if route.body is not None else ()
        for _, model in content:
            if isinstance(model, type):
                found.setdefault(model.__name__, model)
    return found


def document(routes: Iterable[Route]) -> Schema:
    """The whole OpenAPI 3.1 document of the routes declared ``in_openapi``."""
    documented = [route for route in routes if route.in_openapi]
    paths: dict[str, Schema] = {}
    for route in documented:
        paths.setdefault(route.path, {})[route.method.lower()] = operation(route)
    models = _model_schemas(_models(documented).values())
    models["ExecutionSummary"] = TypeAdapter(ExecutionSummary).json_schema(ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Workflow orchestrator",
            "version": "1",
            "description": "Errors have one shape: {error: {code, message, details?}}. "
            "x-permission names what each operation needs (null: public; with x-authenticates "
            "the operation checks the credential itself); an operation with "
            "x-permission payloads:read answers with payloads redacted to a caller allowed only "
            "executions:read. Authenticate with Authorization: Bearer <API key or token>.",
        },
        "paths": paths,
        "security": [{BEARER: []}],
        "components": {
            "schemas": {**models, **SCHEMAS},
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "API key orch_<id>_<secret><checksum>",
                    "description": "An API key (orchestrator keys create); docs/security.md.",
                }
            },
        },
    }


class OpenApi:
    """Serves the document of the app's own route table, built on the first request."""

    def __init__(self) -> None:
        self._document: Schema | None = None

    def routes(self) -> list[Route]:
        return [
            Route("GET", OPENAPI_PATH, self.serve, None, "openapi", "This document.", "200:OpenApiDocument")
        ]

    async def serve(self, request: web.Request) -> web.Response:
        if self._document is None:
            self._document = document(request.app[ROUTE_TABLE].routes)
        return web.json_response(self._document)
