"""Secret routes: the tenant's stored secrets, written and listed, never read back.

``GET /api/v1/secrets`` lists names and metadata (``secrets:read``); ``PUT /api/v1/secrets/{name}``
with ``{"value": "..."}`` creates or replaces one and ``DELETE`` removes it (``secrets:write``).
Values are sealed into the encrypted store beside the event log (``Runtime.secrets``); without
``ORCHESTRATOR_SECRETS_KEY`` a write is refused (409 ``secrets_unavailable``), never stored in
plaintext. No route returns a value: only the worker reads them, when a step runs.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.errors import error_response
from orchestrator.api.requests import TENANT_PARAM, json_body, request_tenant
from orchestrator.api.routes import Permission, Route, body, path_param
from orchestrator.ports import SecretsUnavailable
from orchestrator.runtime import Runtime
from orchestrator.secrets.stores import MAX_VALUE_BYTES, InvalidSecretName, check_name

SECRETS = "/api/v1/secrets"
NAME = path_param("name", "Secret name: a letter or '_', then letters, digits and '_'.")


class SecretValue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value: str = Field(min_length=1, max_length=MAX_VALUE_BYTES, description="Never shown again.")


class SecretsApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET", SECRETS, self.list_secrets, Permission.SECRETS_READ, "listSecrets",
                "The tenant's stored secrets: names and times, never values.",
                "200:SecretList 400", (TENANT_PARAM,),
            ),
            Route(
                "PUT", SECRETS + "/{name}", self.put_secret, Permission.SECRETS_WRITE, "putSecret",
                "Create or replace a stored secret (sealed with the server's key).",
                "200:SecretInfo 400 409", (NAME, TENANT_PARAM), body=body(SecretValue),
            ),
            Route(
                "DELETE", SECRETS + "/{name}", self.delete_secret, Permission.SECRETS_WRITE, "deleteSecret",
                "Remove a stored secret; steps referencing it then fail with secret.missing.",
                "200:SecretDeleted 400 404", (NAME, TENANT_PARAM),
            ),
        ]  # fmt: skip

    async def list_secrets(self, request: web.Request) -> web.Response:
        tenant = request_tenant(request)
        found = await self.runtime.secrets.list(tenant)
        return web.json_response({"items": [info.to_dict() for info in found]})

    async def put_secret(self, request: web.Request) -> web.Response:
        tenant = request_tenant(request)
        name = request.match_info["name"]
        try:
            check_name(name)
        except InvalidSecretName as exc:
            return error_response(400, "invalid_secret_name", str(exc))
        value = await json_body(request, SecretValue)
        try:
            info = await self.runtime.secrets.put(tenant, name, value.value)
        except SecretsUnavailable as exc:
            return error_response(409, "secrets_unavailable", str(exc))
        return web.json_response(info.to_dict())

    async def delete_secret(self, request: web.Request) -> web.Response:
        tenant = request_tenant(request)
        name = request.match_info["name"]
        try:
            check_name(name)
        except InvalidSecretName as exc:
            return error_response(400, "invalid_secret_name", str(exc))
        if not await self.runtime.secrets.delete(tenant, name):
            return error_response(404, "unknown_secret", f"no stored secret {name!r} in tenant {tenant!r}")
        return web.json_response({"tenant": tenant, "name": name, "deleted": True})
