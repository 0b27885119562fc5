"""Request helpers shared by every HTTP route (REST API and webhooks): strict JSON, validated
bodies and query parameters, CloudEvent bodies, and who is asking in which tenant.

Every failure is an ``HTTPBadRequest`` naming what is wrong (or a ``ValueError`` / ``BadMessage``
from the parsers, for callers that answer with their own error codes), never a 500.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from schemas import cloudevents, strict_json
from schemas.definition import MAX_VERSION as MAX_DEFINITION_VERSION
from schemas.tenant import DEFAULT_TENANT, TENANT_PATTERN, TenantInvalid, check_tenant

ACTOR_KEY = "actor"  # set on the request by the (future) authentication middleware
DEFAULT_ACTOR = "api"
TENANT_KEY = "tenant"  # likewise
TENANT_HEADER = "X-Orchestrator-Tenant"
TENANT_PARAM = {  # the OpenAPI parameter of the routes that work within a tenant
    "name": TENANT_HEADER,
    "in": "header",
    "schema": {"type": "string", "pattern": TENANT_PATTERN, "default": DEFAULT_TENANT},
    "description": "The tenant the request works in; another tenant's executions are 404.",
}
MAX_KEY_LENGTH = 256  # the longest idempotency key accepted (header or webhook body field)
MAX_DEPTH = strict_json.MAX_DEPTH  # deeper input would risk RecursionError later
# Integer parameters are bounded by what every backend stores: sequences are 64-bit (SQLite
# INTEGER, Cassandra bigint), definition versions 32-bit (Cassandra int).
MAX_SEQUENCE = 2**63 - 1
MAX_VERSION = MAX_DEFINITION_VERSION
JSON_TYPES = frozenset({"application/json", "application/cloudevents+json"})
M = TypeVar("M", bound=BaseModel)


def request_actor(request: web.Request) -> str:
    """Who issues a command: the authenticated principal once auth exists, else ``"api"``."""
    actor = request.get(ACTOR_KEY)
    return actor if isinstance(actor, str) and actor else DEFAULT_ACTOR


def request_tenant(request: web.Request) -> str:
    """The tenant a request works in: ``request["tenant"]`` (set by authentication), else the
    ``X-Orchestrator-Tenant`` header, else ``default``. 400 ``invalid_tenant`` for a bad name."""
    tenant = request.get(TENANT_KEY)
    if tenant is None:
        tenant = request.headers.get(TENANT_HEADER, DEFAULT_TENANT)
    try:
        return check_tenant(tenant)
    except TenantInvalid as exc:
        raise web.HTTPBadRequest(reason="Invalid Tenant", text=f"{TENANT_HEADER}: {exc}") from None


# -- JSON -----------------------------------------------------------------------------------------


def is_json_type(content_type: str) -> bool:
    """application/json, application/cloudevents+json or any application/*+json."""
    kind = content_type.lower()
    return kind in JSON_TYPES or (kind.startswith("application/") and kind.endswith("+json"))


def parse_json(body: bytes) -> Any:
    """Strict JSON (``schemas.strict_json``: no NaN/Infinity or numbers beyond a float, integers
    of bounded length, at most MAX_DEPTH levels, UTF-8); ValueError with a short reason."""
    return strict_json.loads(body)


def read_payload(
    request: web.Request, body: bytes, binary_event: bool
) -> tuple[Any, dict[str, Any] | None]:
    """The payload and the CloudEvent's attributes (None for a plain JSON body).

    JSON is parsed strictly first (ValueError); CloudEvent problems raise BadMessage."""
    parsed: Any = None
    if is_json_type(request.content_type) and (body.strip() or not binary_event):
        parsed = parse_json(body)
    decoded = cloudevents.from_http(body, request.headers)  # strict JSON too: BadMessage
    if decoded.attributes is None:
        return parsed, None
    return decoded.data, decoded.attributes


# -- validated bodies and parameters --------------------------------------------------------------


def describe(exc: ValidationError, show_input: bool) -> str:
    """One line naming each invalid field (and, for parameters, the value given)."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "body"
        given = error["input"]
        got = f" (got {_excerpt(given)})" if show_input and isinstance(given, str) else ""
        parts.append(f"{where}: {error['msg']}{got}")
    return "; ".join(parts)


def _excerpt(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:40] + "...") + f" ({len(text)} characters)"


def query_params(request: web.Request, model: type[M]) -> M:
    """Validated query parameters; 400 naming each bad parameter."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise web.HTTPBadRequest(reason="Invalid Parameter", text=describe(exc, True)) from None


async def json_body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """A validated JSON object body; with ``optional``, an empty body means ``{}``."""
    raw = await request.read()
    if not raw.strip():
        if not optional:
            raise web.HTTPBadRequest(reason="Invalid Body", text="the body is empty; send a JSON object")
        data: Any = {}
    else:
        try:
            data = parse_json(raw)  # strict JSON, nesting bounded: the webhooks' parser
        except ValueError as exc:
            raise web.HTTPBadRequest(reason="Invalid Body", text=f"the body is not JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise web.HTTPBadRequest(reason="Invalid Body", text=describe(exc, False)) from None


async def cloudevent_body(request: web.Request) -> tuple[dict[str, Any], Any] | None:
    """(attributes, data) of a CloudEvent request (HTTP binding), else None; 400 when invalid."""
    binary = cloudevents.is_binary_cloudevent(request.headers)
    if not binary and not request.content_type.lower().startswith("application/cloudevents"):
        return None
    raw = await request.read()
    try:
        payload, attributes = read_payload(request, raw, binary)
    except cloudevents.BadMessage as exc:
        raise web.HTTPBadRequest(reason="Invalid CloudEvent", text=f"invalid CloudEvent: {exc}") from None
    except ValueError as exc:
        raise web.HTTPBadRequest(reason="Invalid Body", text=f"the body is not JSON: {exc}") from None
    assert attributes is not None
    return attributes, payload
