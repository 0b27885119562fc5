"""Session routes for browsers, and the CSRF middleware that guards cookie-authenticated requests.

- ``POST /api/v1/sessions``: exchange the API key or token sent as ``Authorization: Bearer`` (checked
  by the authenticators given here, the same ones the API uses) for a session: 201 with the
  session and its CSRF token, and the cookie (HttpOnly, SameSite=Strict, Path=/, Secure over TLS,
  Max-Age the session's lifetime).
- ``GET /api/v1/sessions/current``: the session the cookie opens (and its CSRF token again).
- ``DELETE /api/v1/sessions/current``: log out: the session is revoked and the cookie cleared.
- ``DELETE /api/v1/sessions/{id}``: an admin (``sessions:revoke``) ends a session of its tenant.

The first three authenticate the request themselves (``authenticates=True``); the last is guarded
by the authorization middleware like any route.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from orchestrator.api.auditing import PRINCIPAL_KEY, note
from orchestrator.api.errors import error_response
from orchestrator.api.requests import TENANT_KEY, request_tenant
from orchestrator.api.routes import Permission, Route, path_param
from orchestrator.auth import csrf
from orchestrator.auth.principal import AuthenticationFailed, Authenticator, Principal
from orchestrator.auth.sessions import SESSION_COOKIE, Sessions, has_authorization
from orchestrator.core.timefmt import rfc3339
from orchestrator.ports import StoredSession

SESSIONS = "/api/v1/sessions"
CURRENT = SESSIONS + "/current"
ID = path_param("id", "Session id.")
# The authenticators a request is tried with, in order: bearer ones (API keys, OIDC tokens), then
# the session cookie. Set by the process root for the authentication middleware.
AUTHENTICATORS = web.AppKey("authenticators", tuple[Authenticator, ...])


def unauthenticated(code: str, message: str) -> web.Response:
    return error_response(401, code, message, headers={"WWW-Authenticate": "Bearer"})


class SessionsApi:
    """Login, the current session, logout, and revocation by id."""

    def __init__(self, sessions: Sessions, authenticators: Sequence[Authenticator]) -> None:
        self.sessions = sessions
        self.authenticators = tuple(authenticators)

    def routes(self) -> list[Route]:
        return [
            Route(
                "POST", SESSIONS, self.login, None, "createSession",
                "Exchange the API key or token sent as a Bearer credential for a browser session "
                "(cookie) and its CSRF token.",
                "201:Session 401", authenticates=True,
            ),
            Route(
                "GET", CURRENT, self.current, None, "currentSession",
                "The session the cookie opens, with its CSRF token.", "200:Session 401", authenticates=True,
            ),
            Route(
                "DELETE", CURRENT, self.logout, None, "deleteCurrentSession",
                "Log out: revoke the cookie's session and clear the cookie (needs X-CSRF-Token).",
                "204 403", authenticates=True,
            ),
            Route(
                "DELETE", SESSIONS + "/{id}", self.revoke, Permission.SESSIONS_REVOKE, "revokeSession",
                "End a session of the tenant.", "204 404", (ID,),
            ),
        ]  # fmt: skip

    async def login(self, request: web.Request) -> web.Response:
        if not has_authorization(request.headers):
            return unauthenticated("unauthenticated", "send an API key or token as Authorization: Bearer")
        principal: Principal | None = None
        try:
            for authenticator in self.authenticators:
                principal = await authenticator.authenticate(request.headers, {})
                if principal is not None:
                    break
        except AuthenticationFailed as exc:
            return unauthenticated(exc.code, str(exc))
        if principal is None or principal.kind == "session":
            return unauthenticated("unauthenticated", "the Authorization header holds no API key or token")
        issued = await self.sessions.create(principal)
        request[PRINCIPAL_KEY] = principal  # the audit record's actor: who logged in, and with what
        request[TENANT_KEY] = issued.stored.tenant
        note(request, resource_id=issued.stored.session_id, details={"logged_in_with": principal.kind})
        response = web.json_response(describe(issued.stored, issued.principal, issued.csrf_token), status=201)
        response.set_cookie(
            SESSION_COOKIE,
            issued.cookie,
            max_age=max(1, int(self.sessions.ttl)),
            path="/",
            secure=request.secure,
            httponly=True,
            samesite="Strict",
        )
        return response

    async def current(self, request: web.Request) -> web.Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is None:
            return unauthenticated("unauthenticated", "no session cookie")
        try:
            stored, principal = await self.sessions.check(cookie)
        except AuthenticationFailed as exc:
            return unauthenticated(exc.code, str(exc))
        return web.json_response(describe(stored, principal, csrf.csrf_token(cookie)))

    async def logout(self, request: web.Request) -> web.Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is not None:
            try:
                stored, principal = await self.sessions.check(cookie)
            except AuthenticationFailed:
                pass  # already ended, expired or never valid: the cookie goes all the same
            else:
                request[PRINCIPAL_KEY] = principal
                request[TENANT_KEY] = stored.tenant
                note(request, resource_id=stored.session_id)
                await self.sessions.revoke(stored.session_id)
        response = web.Response(status=204)
        response.del_cookie(SESSION_COOKIE, path="/", secure=request.secure, httponly=True, samesite="Strict")
        return response

    async def revoke(self, request: web.Request) -> web.Response:
        session_id = request.match_info["id"]
        if not await self.sessions.revoke(session_id, request_tenant(request)):
            return error_response(404, "unknown_session", f"no session {session_id!r} in this tenant")
        return web.Response(status=204)


def describe(stored: StoredSession, principal: Principal, csrf_token: str) -> dict[str, Any]:
    return {
        "session_id": stored.session_id,
        "subject": principal.subject,
        "tenant": principal.tenant,
        "roles": {tenant: list(names) for tenant, names in principal.roles.items()},
        "logged_in_with": Sessions.logged_in_as(stored),
        "expires_at": rfc3339(stored.expires_at, "seconds"),
        "csrf_token": csrf_token,
    }


def csrf_middleware(allowed_origins: Iterable[str] = ()) -> Middleware:
    """403 for a state-changing request sent with the session cookie (and no Authorization
    header) that lacks the session's ``X-CSRF-Token`` or comes from a foreign ``Origin``."""
    allowed = tuple(allowed_origins)

    @web.middleware
    async def check_csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
        cookie = request.cookies.get(SESSION_COOKIE)
        if csrf.needs_check(request.method, request.headers, cookie):
            assert cookie is not None
            try:
                csrf.check(request.headers, cookie, f"{request.scheme}://{request.host}", allowed)
            except csrf.CsrfRefused as exc:
                return error_response(403, exc.code, str(exc))
        return await handler(request)

    return check_csrf
