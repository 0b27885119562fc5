"""The audit middleware: one audit record per API action, with the final status as the outcome.

Every request that matched a route declaring a permission (every ``/api/`` route but the OpenAPI
document) is recorded after its handler answered: action = the permission (``executions:cancel``,
``payloads:read``...), resource = the first path segment after ``/api/v1/`` and the route's path
parameters (``executions/<id>``), or what the handler noted with :func:`note` (the id of the
execution a start created). A 401 or 403 is recorded whatever the route (a webhook's bad
signature too), so denied requests and failed logins are never missing; a successful login
(``sessions:create``, actor the key or token that logged in) and a logout (``sessions:delete``)
are recorded too. Webhook deliveries that
start executions are not recorded here: each start is in that execution's history, with the
actor ``webhook:<name>``, already hash-chained.

Status -> outcome: below 400 ``ok``, 401/403 ``denied``, other 4xx ``failed``, 5xx ``error``. The
reason: the code the authentication middleware left in ``request["auth_failure"]``, else the
error code of the answer, else what the handler noted (an operator's ``reason``).

It runs outside the authentication middleware (``create_app(middlewares=[audit, auth])``), so
it sees what auth refused. The actor: ``request["principal"]`` (an ``orchestrator.auth`` Principal)
when set, else ``request["actor"]``, else ``api``. The request id: ``X-Request-Id`` when it is a
sane token, else a new one; echoed on every response and kept in ``request["request_id"]``.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from orchestrator.api.errors import exception_response
from orchestrator.api.requests import TENANT_HEADER, request_actor, request_tenant
from orchestrator.api.routes import API_PREFIX, declared_route
from orchestrator.audit.record import Actor, Detail, Outcome, Resource
from orchestrator.audit.trail import AuditTrail
from orchestrator.auth.principal import Principal

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_KEY = "request_id"  # plain string keys, as ``actor`` and ``tenant`` are
PRINCIPAL_KEY = "principal"  # set by the authentication middleware
AUTH_FAILURE_KEY = "auth_failure"  # likewise, on a refused credential: the reason code
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}")
DENIED = frozenset({401, 403})
# Routes that authenticate themselves and are recorded by operation: logins and logouts.
SESSION_ACTIONS = {"createSession": "sessions:create", "deleteCurrentSession": "sessions:delete"}


@dataclass(slots=True)
class Note:
    resource_id: str | None = None
    reason: str | None = None
    details: dict[str, Detail] = field(default_factory=dict)


NOTE_KEY = web.RequestKey("audit_note", Note)  # what a handler adds with note()


def note(
    request: web.Request,
    *,
    resource_id: str | None = None,
    reason: str | None = None,
    details: Mapping[str, Detail] | None = None,
) -> None:
    """Add to the request's audit record: the resource's id when the route does not name it,
    the operator's reason, details (a workflow name, a dry run)."""
    current = request.get(NOTE_KEY)
    if current is None:
        current = request[NOTE_KEY] = Note()
    if resource_id is not None:
        current.resource_id = resource_id
    if reason:
        current.reason = reason
    current.details.update(details or {})


def outcome_of(status: int) -> Outcome:
    if status < 400:
        return "ok"
    if status in DENIED:
        return "denied"
    return "failed" if status < 500 else "error"


def audit_middleware(trail: AuditTrail) -> Middleware:
    """The middleware recording into ``trail`` (see the module docstring)."""

    @web.middleware
    async def audit(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request[REQUEST_ID_KEY] = request_id
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                response = exception_response(request, exc)
            else:  # a redirect: aiohttp answers it
                exc.headers[REQUEST_ID_HEADER] = request_id
                await _record(trail, request, exc.status, None)
                raise
        except Exception as exc:
            response = exception_response(request, exc)
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        await _record(trail, request, response.status, response)
        return response

    return audit


async def _record(
    trail: AuditTrail, request: web.Request, status: int, response: web.StreamResponse | None
) -> None:
    route = declared_route(request)
    session_action = SESSION_ACTIONS.get(route.operation_id) if route is not None else None
    audited = route is not None and (route.permission is not None or session_action is not None)
    if not audited and status not in DENIED:
        return
    match = dict(request.match_info)
    noted = request.get(NOTE_KEY) or Note()
    if route is not None and route.permission is not None:
        action = route.permission.value
        kind = (
            route.path.removeprefix(API_PREFIX).split("/")[1] if route.path.startswith(API_PREFIX) else "http"
        )
    elif session_action is not None:
        action, kind = session_action, "sessions"
    elif route is not None and route.path.startswith("/hooks/"):
        action, kind = "webhooks:deliver", "webhooks"
    else:
        action, kind = "http:request", "http"
    resource_id = noted.resource_id or ("/".join(match.values()) if match else None)
    outcome = outcome_of(status)
    reason = request.get(AUTH_FAILURE_KEY) or (_error_code(response) if outcome != "ok" else None)
    details: dict[str, Detail] = {"method": request.method, "path": request.path[:500], "status": status}
    if route is not None:
        details["operation"] = route.operation_id
    details.update(noted.details)
    try:
        await trail.record(
            action,
            actor=_actor(request),
            resource=Resource(kind, resource_id),
            tenant=_tenant(request),
            outcome=outcome,
            reason=str(reason) if reason else noted.reason,
            request_id=request[REQUEST_ID_KEY],
            source=request.remote,
            details=details,
        )
    except Exception:  # the action has happened: answer it, and say loudly what is not recorded
        log.exception(
            "audit record NOT written: %s %s -> %s (%s)", request.method, request.path, status, action
        )


def _actor(request: web.Request) -> Actor:
    principal = request.get(PRINCIPAL_KEY)
    if isinstance(principal, Principal):
        return Actor(principal.subject, principal.kind, principal.credential_id)
    return Actor.parse(request_actor(request))


def _tenant(request: web.Request) -> str:
    try:
        return request_tenant(request)
    except web.HTTPBadRequest:  # recorded as given, the request itself was refused
        return request.headers.get(TENANT_HEADER, "")[:100]


def _error_code(response: web.StreamResponse | None) -> str | None:
    """The ``error.code`` of a JSON error answer."""
    body = getattr(response, "body", None)
    if not isinstance(body, bytes) or not body.startswith(b'{"error"'):
        return None
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None
