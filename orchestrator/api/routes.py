"""The route table: every HTTP route is one frozen :class:`Route` that declares its method, path,
handler, permission and the OpenAPI description of its operation.

Every route source (the REST API classes, the webhook endpoint) returns ``Route``s from
``routes()``; the app factory (:func:`orchestrator.api.app.create_app`) registers them, keeps the
:class:`RouteTable` on the app and refuses an ``/api/`` route that declares no permission.
The OpenAPI document (:mod:`orchestrator.api.openapi`) is generated from the same table.

For an authorization middleware: :func:`route_permission` gives the permission the matched route
declares (``None``: a public route, or no route matched and aiohttp answers 404/405);
:func:`declared_route` gives the whole declaration. aiohttp resolves the route before any
middleware runs, so both work in middlewares.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Schema = dict[str, Any]
Model = type[BaseModel] | str | Schema  # a pydantic model, a component name, or an inline schema
JSON = "application/json"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
API_PREFIX = "/api/"
OPENAPI_PATH = "/api/v1/openapi.json"
PUBLIC_API = frozenset({("GET", OPENAPI_PATH)})  # the only /api/ routes without a permission


class Permission(StrEnum):
    """What a route needs: ``resource:action``. Payload reads (inputs, outputs, event data) are
    their own permission, apart from reading an execution's status."""

    EXECUTIONS_START = "executions:start"
    EXECUTIONS_READ = "executions:read"
    EXECUTIONS_CANCEL = "executions:cancel"
    EXECUTIONS_SIGNAL = "executions:signal"
    EXECUTIONS_REDRIVE = "executions:redrive"
    EVENTS_PUBLISH = "events:publish"
    PAYLOADS_READ = "payloads:read"
    DEFINITIONS_READ = "definitions:read"
    DEFINITIONS_WRITE = "definitions:write"
    TRIGGERS_READ = "triggers:read"
    TRIGGERS_WRITE = "triggers:write"
    SCHEDULES_READ = "schedules:read"
    SCHEDULES_WRITE = "schedules:write"
    REPLAY_VERIFY = "replay:verify"
    DEADLETTERS_READ = "deadletters:read"
    DEADLETTERS_REDRIVE = "deadletters:redrive"
    CLUSTER_READ = "cluster:read"
    QUOTAS_READ = "quotas:read"
    LIMITS_READ = "limits:read"
    KEYS_READ = "keys:read"
    KEYS_WRITE = "keys:write"
    ROLES_READ = "roles:read"
    ROLES_WRITE = "roles:write"
    AUDIT_READ = "audit:read"
    ANALYTICS_READ = "analytics:read"
    SECRETS_READ = "secrets:read"  # names and metadata: no route returns a value
    SECRETS_WRITE = "secrets:write"
    TEMPLATES_READ = "templates:read"
    TEMPLATES_WRITE = "templates:write"
    TEMPLATES_INSTALL = "templates:install"
    CATALOG_READ = "catalog:read"
    CATALOG_REVIEW = "catalog:review"
    CATALOG_PUBLISH = "catalog:publish"
    CATALOG_MODERATE = "catalog:moderate"
    SESSIONS_REVOKE = "sessions:revoke"
    DOCTOR_RUN = "doctor:run"  # find (GET) and release (POST) what finished executions still hold

    @property
    def resource(self) -> str:
        return self.value.partition(":")[0]

    @property
    def action(self) -> str:
        return self.value.partition(":")[2]


@dataclass(frozen=True, slots=True)
class Body:
    """A request body: (media type, schema) pairs, and whether it may be absent."""

    content: tuple[tuple[str, Model], ...]
    required: bool = True


def body(model: Model, *media: str, required: bool = True) -> Body:
    """A body of ``model`` as application/json and as each other media type named."""
    return Body(tuple((kind, model) for kind in (JSON, *media)), required)


def path_param(name: str, description: str) -> Schema:
    """A documented path parameter (undocumented ones are listed without a description)."""
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """One route and its operation.

    ``permission`` is required: ``None`` declares a public route (webhooks, probes, this API's
    OpenAPI document). ``responses`` is compact: ``"202:StartResult 200:StartResult 400 404"``,
    a status with a component name, or a bare status answered with an Error. ``params`` are
    parameter objects (documented path parameters, headers); ``query`` is the model the handler
    validates the query with. ``in_openapi=False`` keeps a non-API route out of the document.
    ``authenticates=True`` (with no permission) marks a route whose handler checks the credential
    itself: the session login and logout, reachable before a principal exists, answering 401
    for a missing or wrong credential; it is not public data. ``filtered=True`` marks a listing
    that shows only the workflows the caller's grants select (:mod:`orchestrator.api.visibility`),
    so a grant restricted to some workflows (``executions:read:orders-*``) may call it."""

    method: str
    path: str
    handler: Handler
    permission: Permission | None
    operation_id: str
    summary: str
    responses: str
    params: tuple[Schema, ...] = ()
    query: type[BaseModel] | None = None
    body: Body | None = None
    in_openapi: bool = True
    authenticates: bool = False
    filtered: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"{self.operation_id}: unknown method {self.method!r}")
        if not self.path.startswith("/"):
            raise ValueError(f"{self.operation_id}: the path {self.path!r} must start with '/'")
        if self.authenticates and self.permission is not None:
            raise ValueError(f"{self.operation_id}: a route that authenticates itself declares no permission")

    @property
    def public(self) -> bool:
        return self.permission is None


class RouteProvider(Protocol):
    """Anything that serves routes: ``routes()`` is called once, when the app is built."""

    def routes(self) -> Sequence[Route]: ...


def unguarded(routes: Iterable[Route]) -> list[Route]:
    """The ``/api/`` routes that declare no permission, other than the known public ones and
    those that authenticate the request themselves."""
    return [
        route
        for route in routes
        if route.path.startswith(API_PREFIX)
        and route.permission is None
        and not route.authenticates
        and (route.method, route.path) not in PUBLIC_API
    ]


class RouteTable:
    """The routes an app serves, and which declaration each aiohttp route came from."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)
        self._declared: dict[AbstractRoute, Route] = {}

    def register(self, router: web.UrlDispatcher) -> None:
        """Add every route (a GET also answers HEAD, as aiohttp's ``add_get`` does)."""
        for route in self.routes:
            for method in ("HEAD", "GET") if route.method == "GET" else (route.method,):
                self._declared[router.add_route(method, route.path, route.handler)] = route

    def declared(self, route: AbstractRoute) -> Route | None:
        return self._declared.get(route)


ROUTE_TABLE = web.AppKey("route_table", RouteTable)


def declared_route(request: web.Request) -> Route | None:
    """The declaration of the route this request matched; None when none did (404/405)."""
    table = request.app.get(ROUTE_TABLE)
    return None if table is None else table.declared(request.match_info.route)


def route_permission(request: web.Request) -> str | None:
    """The permission the matched route declares; None for a public route or no match."""
    route = declared_route(request)
    return None if route is None or route.permission is None else route.permission.value
