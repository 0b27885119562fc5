"""``GET /api/v1/me``: who the request authenticates as and which permissions it holds in the
request's tenant, so a client (the console) can disable what it may not do and say why.

It authenticates the request itself (like the session routes): any valid credential may ask
about itself; 401 without one. A permission is listed when some grant covers it (a grant
restricted to some workflows lists it in ``restricted`` too). With authentication off, every
permission is held.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from orchestrator.api.errors import error_response
from orchestrator.api.routes import Permission, Route
from orchestrator.auth.claims import EVERY_TENANT
from orchestrator.auth.middleware import TENANT_HEADER, authenticate, tenant_of
from orchestrator.auth.policy import RoleCatalog
from orchestrator.auth.principal import AuthenticationFailed, Authenticator
from schemas.tenant import DEFAULT_TENANT, TenantInvalid

ME = "/api/v1/me"


class MeApi:
    """``authenticators`` and ``catalog`` as the auth middleware has them; None: auth is off."""

    def __init__(self, authenticators: Sequence[Authenticator] | None, catalog: RoleCatalog | None) -> None:
        self.authenticators = authenticators
        self.catalog = catalog

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET", ME, self.me, None, "getMe",
                "The caller: subject, actor, tenant, roles there and the permissions they grant.",
                "200:Me 401", authenticates=True,
            )
        ]  # fmt: skip

    async def me(self, request: web.Request) -> web.Response:
        if self.authenticators is None or self.catalog is None:
            tenant = request.headers.get(TENANT_HEADER, DEFAULT_TENANT)
            every = sorted(p.value for p in Permission)
            return web.json_response(
                {"subject": "api", "actor": "api", "kind": "anonymous", "tenant": tenant, "roles": [],
                 "permissions": every, "restricted": [], "tenants": [tenant], "every_tenant": True,
                 "auth": False}
            )  # fmt: skip
        try:
            principal = await authenticate(self.authenticators, request.headers, request.cookies)
        except AuthenticationFailed as exc:
            return error_response(401, exc.code, str(exc), headers={"WWW-Authenticate": "Bearer"})
        if principal is None:
            return error_response(401, "unauthenticated", "send an API key, a token or the session cookie")
        try:
            found = tenant_of(request, principal)
        except TenantInvalid as exc:
            return error_response(400, "invalid_tenant", f"{TENANT_HEADER}: {exc}")
        if found is None:
            return error_response(403, "tenant_forbidden", f"no roles in tenant {request.headers[TENANT_HEADER]!r}")
        tenant = found
        roles = principal.roles_in(tenant)
        access = await self.catalog.access(tenant, roles)
        held = sorted(p.value for p in Permission if access.covers(p.value))
        return web.json_response(
            {
                "subject": principal.subject,
                "actor": principal.actor,
                "kind": principal.kind,
                "tenant": tenant,
                "roles": list(roles),
                "permissions": held,
                "restricted": [p for p in held if not access.unrestricted(p)],
                "tenants": sorted({principal.tenant, *principal.roles} - {EVERY_TENANT}),
                "every_tenant": EVERY_TENANT in principal.roles,
                "auth": True,
            }
        )
