"""``/api/v1/keys`` and ``/api/v1/roles``: API keys and custom roles of the request's tenant, for
admins (``keys:*``, ``roles:*``). A key is shown once, in the answer that creates or rotates it.

Nobody hands out more than they hold: the roles of a key created or changed here, and the
grants of a role written here, must each be held by the caller (403 ``exceeds_caller``). Keys
bound in every tenant (``*``) are made with the CLI on the store, not here.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.errors import error_response
from orchestrator.api.requests import TENANT_PARAM, json_body, request_actor, request_tenant
from orchestrator.api.routes import Permission, Route, body, path_param
from orchestrator.auth.apikeys import DEFAULT_OVERLAP, KeyStateError, UnknownKey, key_view, parse_duration
from orchestrator.auth.control import AccessControl
from orchestrator.auth.policy import Access
from orchestrator.auth.roles import BUILTIN_ROLES, Grant, RoleInvalid, check_role

KEYS, ROLES = "/api/v1/keys", "/api/v1/roles"
KEY_ID = path_param("id", "API key id (the 12 characters after orch_).")
ROLE = path_param("name", "Role name.")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyBody(_Strict):
    name: str = Field(min_length=1, max_length=200)
    roles: list[str] = Field(min_length=1, max_length=20)
    expires_in: str | None = Field(None, description="A duration such as 90d or 12h; absent: never.")
    owner: str | None = Field(
        None, max_length=200, description="The person it belongs to; absent: a service account."
    )


class RotateBody(_Strict):
    overlap: str | None = Field(None, description="How long the old key keeps working (default 1d).")


class RolesBody(_Strict):
    roles: list[str] = Field(min_length=1, max_length=20)


class RoleBody(_Strict):
    grants: list[str] = Field(min_length=1, max_length=200, description="resource:action[:workflow-glob]")


def holds(access: Access | None, grant: Grant) -> bool:
    """Whether the caller holds ``grant`` (None: authentication is off, everything is held)."""
    if access is None:
        return True
    return any(
        mine.resource in ("*", grant.resource) and mine.action in ("*", grant.action)
        and (mine.selector is None or mine.selector == grant.selector)
        for mine in access.grants
    )  # fmt: skip


def _duration(text: str | None, field: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise web.HTTPBadRequest(reason="Invalid Body", text=f"{field}: {exc}") from None


class AccessApi:
    def __init__(self, control: AccessControl) -> None:
        self.control = control

    def routes(self) -> list[Route]:
        P, key, view = Permission, KEYS + "/{id}", "ApiKey"
        return [
            Route("GET", KEYS, self.list_keys, P.KEYS_READ, "listKeys",
                  "The API keys of the request's tenant (never their secrets or hashes).", "200:ApiKeyList",
                  (TENANT_PARAM,)),
            Route("POST", KEYS, self.create_key, P.KEYS_WRITE, "createKey",
                  "Create a key with roles in the request's tenant; the answer holds the key, shown only now.",
                  "201:CreatedApiKey 400 403", (TENANT_PARAM,), body=body(KeyBody)),
            Route("GET", key, self.get_key, P.KEYS_READ, "getKey", "One key.", f"200:{view} 404",
                  (KEY_ID, TENANT_PARAM)),
            Route("POST", key + "/revoke", self.revoke_key, P.KEYS_WRITE, "revokeKey",
                  "Revoke a key now; it stays listed.", f"200:{view} 404", (KEY_ID, TENANT_PARAM)),
            Route("POST", key + "/rotate", self.rotate_key, P.KEYS_WRITE, "rotateKey",
                  "A successor key (shown only now); the old one keeps working for the overlap.",
                  "201:CreatedApiKey 400 404 409", (KEY_ID, TENANT_PARAM), body=body(RotateBody, required=False)),
            Route("PUT", key + "/roles", self.set_key_roles, P.KEYS_WRITE, "setKeyRoles",
                  "Replace the roles a key holds in the request's tenant.", f"200:{view} 400 403 404",
                  (KEY_ID, TENANT_PARAM), body=body(RolesBody)),
            Route("GET", ROLES, self.list_roles, P.ROLES_READ, "listRoles",
                  "Every role usable in the request's tenant, with its grants and where it is defined.",
                  "200:RoleList", (TENANT_PARAM,)),
            Route("PUT", ROLES + "/{name}", self.put_role, P.ROLES_WRITE, "putRole",
                  "Create or replace a custom role of the request's tenant.", "200:Role 400 403",
                  (ROLE, TENANT_PARAM), body=body(RoleBody)),
            Route("DELETE", ROLES + "/{name}", self.delete_role, P.ROLES_WRITE, "deleteRole",
                  "Remove a custom role of the request's tenant.", "200:DeletedRole 400 404", (ROLE, TENANT_PARAM)),
        ]  # fmt: skip

    # -- keys ----------------------------------------------------------------------------------

    async def list_keys(self, request: web.Request) -> web.Response:
        now = self.control.keys.clock()
        records = await self.control.keys.list(request_tenant(request))
        return web.json_response({"items": [key_view(record, now) for record in records]})

    async def get_key(self, request: web.Request) -> web.Response:
        return await self._key_answer(request, None)

    async def revoke_key(self, request: web.Request) -> web.Response:
        return await self._key_answer(request, "revoke")

    async def _key_answer(self, request: web.Request, action: str | None) -> web.Response:
        tenant = request_tenant(request)
        try:
            if action == "revoke":
                record = await self.control.keys.revoke(request.match_info["id"], tenant)
            else:
                record = await self.control.keys.get(request.match_info["id"], tenant)
        except UnknownKey as exc:
            return error_response(404, "unknown_key", str(exc))
        return web.json_response(key_view(record, self.control.keys.clock()))

    async def create_key(self, request: web.Request) -> web.Response:
        data = await json_body(request, KeyBody)
        tenant = request_tenant(request)
        refused = await self._check_roles(request, tenant, data.roles)
        if refused is not None:
            return refused
        created = await self.control.keys.create(
            data.name, tenant, {tenant: data.roles}, expires_in=_duration(data.expires_in, "expires_in"),
            owner=data.owner, created_by=request_actor(request),
        )  # fmt: skip
        now = self.control.keys.clock()
        return web.json_response({"key": created.key, **key_view(created.record, now)}, status=201)

    async def rotate_key(self, request: web.Request) -> web.Response:
        data = await json_body(request, RotateBody, optional=True)
        overlap = _duration(data.overlap, "overlap") or DEFAULT_OVERLAP
        try:
            created, old = await self.control.keys.rotate(
                request.match_info["id"], overlap=overlap, tenant=request_tenant(request),
                created_by=request_actor(request),
            )  # fmt: skip
        except UnknownKey as exc:
            return error_response(404, "unknown_key", str(exc))
        except KeyStateError as exc:
            return error_response(409, exc.code, str(exc))
        now = self.control.keys.clock()
        answer = {"key": created.key, **key_view(created.record, now), "previous": key_view(old, now)}
        return web.json_response(answer, status=201)

    async def set_key_roles(self, request: web.Request) -> web.Response:
        data = await json_body(request, RolesBody)
        tenant = request_tenant(request)
        refused = await self._check_roles(request, tenant, data.roles)
        if refused is not None:
            return refused
        try:
            record = await self.control.keys.get(request.match_info["id"], tenant)
            record = await self.control.keys.set_roles(record.key_id, {**record.roles, tenant: data.roles})
        except UnknownKey as exc:
            return error_response(404, "unknown_key", str(exc))
        return web.json_response(key_view(record, self.control.keys.clock()))

    async def _check_roles(self, request: web.Request, tenant: str, names: list[str]) -> web.Response | None:
        """400 for an unknown role; 403 for one granting what the caller does not hold."""
        try:
            await self.control.catalog.check_names(tenant, names)
        except RoleInvalid as exc:
            return error_response(400, "invalid_role", str(exc))
        access = request.get("access")
        known = await self.control.catalog.roles(tenant)
        for name in names:
            missing = [
                str(g) for g in known[name] if not holds(access if isinstance(access, Access) else None, g)
            ]
            if missing:
                return _exceeds(request, f"role {name!r} grants {', '.join(missing)}, which you do not hold")
        return None

    # -- roles ---------------------------------------------------------------------------------

    async def list_roles(self, request: web.Request) -> web.Response:
        tenant = request_tenant(request)
        custom = await self.control.catalog.custom(tenant)
        items = [
            *({"name": n, "source": "builtin", "grants": [str(g) for g in gs]} for n, gs in BUILTIN_ROLES.items()),
            *({"name": n, "source": "file", "grants": [str(g) for g in gs]}
              for n, gs in sorted(self.control.catalog.file_roles.items())),
            *({"name": n, "source": "tenant", "grants": [str(g) for g in gs]} for n, gs in sorted(custom.items())),
        ]  # fmt: skip
        return web.json_response({"items": items})

    async def put_role(self, request: web.Request) -> web.Response:
        data = await json_body(request, RoleBody)
        name, tenant = request.match_info["name"], request_tenant(request)
        access = request.get("access")
        try:
            grants = check_role(name, data.grants)
        except RoleInvalid as exc:
            return error_response(400, "invalid_role", str(exc))
        missing = [str(g) for g in grants if not holds(access if isinstance(access, Access) else None, g)]
        if missing:
            return _exceeds(request, f"you do not hold {', '.join(missing)}")
        try:
            stored = await self.control.catalog.put(tenant, name, data.grants)
        except RoleInvalid as exc:
            return error_response(400, "invalid_role", str(exc))
        return web.json_response(_role(name, "tenant", stored))

    async def delete_role(self, request: web.Request) -> web.Response:
        name, tenant = request.match_info["name"], request_tenant(request)
        if name in BUILTIN_ROLES or name in self.control.catalog.file_roles:
            return error_response(400, "invalid_role", f"{name!r} is not a custom role of this tenant")
        if not await self.control.catalog.delete(tenant, name):
            return error_response(404, "unknown_role", f"no custom role {name!r} in tenant {tenant!r}")
        return web.json_response({"name": name, "source": "tenant", "deleted": True})


def _role(name: str, source: str, grants: tuple[Grant, ...]) -> dict[str, Any]:
    return {"name": name, "source": source, "grants": [str(g) for g in grants]}


def _exceeds(request: web.Request, message: str) -> web.Response:
    request["auth_failure"] = "exceeds_caller"
    return error_response(403, "exceeds_caller", message)
