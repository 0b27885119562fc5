"""The authentication and authorization middleware of the HTTP API.

For a route that declares a permission (``permission_of``; public routes such as probes and
webhooks pass untouched), the chain of authenticators is asked in order; the first principal
wins. Then the request's tenant is the principal's own, or the ``X-Orchestrator-Tenant`` header
when the principal has roles bound there, and the roles bound in that tenant must grant the
route's permission (for a grant restricted to some workflows, on the workflows the request
names: ``targets``). It sets ``request["principal"]``, ``["actor"]``, ``["tenant"]``,
``["access"]`` and ``["payloads"]`` (whether inputs, outputs and event data may be shown).

Answers: 401 with ``WWW-Authenticate: Bearer`` (no or a refused credential), 403 (not
permitted, or a tenant without roles); a resource of another tenant is the handler's 404.
Before either, ``request["auth_failure"]`` is set to the error code (for the audit trail).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from orchestrator.auth.policy import PAYLOADS_READ, Access, RoleCatalog
from orchestrator.auth.principal import AuthenticationFailed, Authenticator, Principal
from schemas.tenant import TenantInvalid, check_tenant

TENANT_HEADER = "X-Orchestrator-Tenant"
PRINCIPAL_KEY, ACTOR_KEY, TENANT_KEY = "principal", "actor", "tenant"
ACCESS_KEY, PAYLOADS_KEY, FAILURE_KEY = "access", "payloads", "auth_failure"
EXECUTIONS_READ = "executions:read"
# The execution routes declaring payloads:read answer with payloads redacted to whoever may read
# executions but not payloads (orchestrator.api.redaction), rather than refusing them. Any other
# route declaring payloads:read (one that cannot redact) needs payloads:read itself.
ENTRY = {PAYLOADS_READ: EXECUTIONS_READ}
REDACTING_PREFIX = "/api/v1/executions/"
CHALLENGE = 'Bearer realm="orchestrator"'

PermissionOf = Callable[[web.Request], str | None]
Targets = Callable[[web.Request], Awaitable[Sequence[str] | None]]


def error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """The API's error shape (orchestrator.api.errors): ``{"error": {"code", "message"}}``."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def refused(request: web.Request, status: int, code: str, message: str) -> web.Response:
    request[FAILURE_KEY] = code
    if status != 401:
        return error(status, code, message)
    challenge = CHALLENGE if code == "unauthenticated" else f'{CHALLENGE}, error="invalid_token"'
    return error(401, code, message, {"WWW-Authenticate": challenge})


async def authenticate(
    authenticators: Sequence[Authenticator], headers: Mapping[str, str], cookies: Mapping[str, str]
) -> Principal | None:
    """The first principal an authenticator answers; AuthenticationFailed from the first that
    refuses the credential it understood."""
    for authenticator in authenticators:
        principal = await authenticator.authenticate(headers, cookies)
        if principal is not None:
            return principal
    return None


def tenant_of(request: web.Request, principal: Principal) -> str | None:
    """The tenant the request works in; None when the header names one without roles (a bad
    name raises TenantInvalid)."""
    asked = request.headers.get(TENANT_HEADER)
    if asked is None or asked == principal.tenant:
        return principal.tenant
    check_tenant(asked)
    return asked if principal.roles_in(asked) else None


def auth_middleware(
    authenticators: Sequence[Authenticator],
    catalog: RoleCatalog,
    permission_of: PermissionOf,
    targets: Targets,
) -> Middleware:
    """The middleware over a chain of authenticators (the list may grow after this call)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        permission = permission_of(request)
        if permission is None:  # a public route, or none matched (aiohttp answers 404/405)
            return await handler(request)
        try:
            principal = await authenticate(authenticators, request.headers, request.cookies)
        except AuthenticationFailed as exc:
            return refused(request, 401, exc.code, str(exc))
        if principal is None:
            return refused(request, 401, "unauthenticated", "authentication required: send Authorization: Bearer <API key>")
        request[PRINCIPAL_KEY] = principal
        request[ACTOR_KEY] = principal.actor
        try:
            tenant = tenant_of(request, principal)
        except TenantInvalid as exc:
            return error(400, "invalid_tenant", f"{TENANT_HEADER}: {exc}")
        if tenant is None:
            return refused(request, 403, "tenant_forbidden", f"no roles in tenant {request.headers[TENANT_HEADER]!r}")
        request[TENANT_KEY] = tenant
        access = await catalog.access(tenant, principal.roles_in(tenant))
        request[ACCESS_KEY] = access
        needed = ENTRY.get(permission, permission) if request.path.startswith(REDACTING_PREFIX) else permission
        if not await permitted(access, needed, request, targets):
            return refused(request, 403, "forbidden", f"{principal.actor} lacks {needed} in tenant {tenant!r}")
        request[PAYLOADS_KEY] = await permitted(access, PAYLOADS_READ, request, targets)
        return await handler(request)

    return middleware


async def permitted(access: Access, permission: str, request: web.Request, targets: Targets) -> bool:
    """``permission`` on the workflows the request names; asked only for a restricted grant."""
    if access.unrestricted(permission):
        return True
    if not access.covers(permission):
        return False
    cached: Any = request.get("auth_targets", ...)
    if cached is ...:
        cached = request["auth_targets"] = await targets(request)
    return access.allows(permission, cached)
