"""The app factory: one aiohttp application from route providers.

``create_app`` registers every provider's :class:`~orchestrator.api.routes.Route`s plus the
OpenAPI document generated from them, keeps the route table on the app (``route_permission``
reads it) and refuses to build when an ``/api/`` route declares no permission. Middlewares run
inside ``error_middleware``, so an authentication/authorization middleware given here answers
with the same JSON errors; it sets ``request["actor"]`` and ``request["tenant"]``, which the
execution routes take before anything else (see ``requests.request_actor`` and
``requests.request_tenant``), and looks the permission up with ``routes.route_permission``.

``api_providers`` are the REST API's own providers. The process root adds the webhook endpoint
and the trigger manager (``orchestrator.process.build_app``); this package never imports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from orchestrator.api.analytics import AnalyticsApi
from orchestrator.api.audit import AuditApi
from orchestrator.api.cluster import ClusterApi
from orchestrator.api.dead_letters import DeadLettersApi
from orchestrator.api.definitions import DefinitionsApi
from orchestrator.api.doctor import DoctorApi
from orchestrator.api.errors import error_middleware
from orchestrator.api.executions import ExecutionsApi
from orchestrator.api.feed_stream import FeedStreamApi
from orchestrator.api.health import HealthApi
from orchestrator.api.jobs import JobsApi
from orchestrator.api.limits import LimitsApi
from orchestrator.api.openapi import OpenApi
from orchestrator.api.quotas import QuotasApi
from orchestrator.api.replay import ReplayApi
from orchestrator.api.routes import ROUTE_TABLE, RouteProvider, RouteTable, unguarded
from orchestrator.api.secrets import SecretsApi
from orchestrator.api.templates import TemplatesApi
from orchestrator.api.triggers import TriggerControl, TriggersApi
from orchestrator.runtime import Runtime

BODY_HEADROOM = 64 * 1024  # so handlers with their own limits (webhooks) report them first


class UnguardedRoute(ValueError):
    """An ``/api/`` route declares no permission: it would be served to anyone."""


def create_app(
    providers: Iterable[RouteProvider],
    *,
    max_body_bytes: int,
    middlewares: Sequence[Middleware] = (),
    outer: Sequence[Middleware] = (),
) -> web.Application:
    """The app serving every provider's routes and ``/api/v1/openapi.json``; UnguardedRoute.

    ``outer`` middlewares run outside ``error_middleware`` (they see the final status: metrics)."""
    table = RouteTable(route for provider in (*providers, OpenApi()) for route in provider.routes())
    missing = unguarded(table.routes)
    if missing:
        names = ", ".join(f"{route.method} {route.path}" for route in missing)
        raise UnguardedRoute(f"these API routes declare no permission: {names}")
    app = web.Application(
        middlewares=[*outer, error_middleware, *middlewares], client_max_size=max_body_bytes + BODY_HEADROOM
    )
    table.register(app.router)
    app[ROUTE_TABLE] = table
    return app


def api_providers(runtime: Runtime, triggers: TriggerControl) -> list[RouteProvider]:
    """The REST API over one runtime: definitions, executions and events, jobs, replay, triggers,
    probes, dead letters, the cluster view, the audit trail, quotas, the doctor, analytics, secrets, the
    live feed stream."""
    return [
        DefinitionsApi(runtime),
        ExecutionsApi(runtime),
        HealthApi(runtime),
        JobsApi(runtime),
        ReplayApi(runtime),
        TriggersApi(triggers),
        DeadLettersApi(runtime),
        ClusterApi(runtime),
        AuditApi(runtime.audit),
        QuotasApi(runtime),
        LimitsApi(runtime),
        DoctorApi(runtime),
        AnalyticsApi(runtime),
        SecretsApi(runtime),
        FeedStreamApi(runtime.feed),
        TemplatesApi(runtime),
    ]
