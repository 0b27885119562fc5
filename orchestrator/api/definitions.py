"""Definition routes: register (JSON or YAML), list the latest, get one version, list versions.

Every route works in the request's tenant: a definition registered here belongs to it, and
another tenant's definition is 404 ``unknown_workflow`` on every route; registering a name that
another tenant owns is 409 ``workflow_name_taken`` (names are global, owned by one tenant)."""

from __future__ import annotations

from typing import Any

import yaml
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.auditing import note
from orchestrator.api.requests import MAX_VERSION, TENANT_PARAM, parse_json, query_params, request_tenant
from orchestrator.api.routes import Permission, Route, body, path_param
from orchestrator.api.visibility import tenant_definition, tenant_versions, visible
from orchestrator.runtime import Runtime
from schemas import strict_json
from schemas.definition import WorkflowDefinition
from schemas.definition_diff import diff_definitions
from schemas.loader import UniqueKeyLoader, parse_json_text
from schemas.validation import DefinitionError, Problem, parse_definition

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
DEFINITIONS = "/api/v1/definitions"
NAME = path_param("name", "Workflow name.")


class _NoAliasLoader(UniqueKeyLoader):
    """SafeLoader without anchors/aliases (an untrusted body cannot expand into a huge graph) and
    without duplicate keys."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.current_event.start_mark  # the event check_event just peeked
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not allowed", mark)
        return super().compose_node(parent, index)


def definition_json(definition: WorkflowDefinition) -> dict[str, Any]:
    return definition.model_dump(mode="json")


def definition_brief(definition: WorkflowDefinition) -> dict[str, Any]:
    return {
        "name": definition.name,
        "version": definition.version,
        "tenant": definition.tenant,
        "description": definition.description,
        "triggers": [trigger.model_dump(mode="json") for trigger in definition.triggers],
    }


async def read_definition_data(request: web.Request) -> Any:
    """The request body as plain data: YAML for the YAML media types, JSON otherwise."""
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(reason="Invalid Body", text="the body is not UTF-8") from None
    if not text.strip():
        raise web.HTTPBadRequest(reason="Invalid Body", text="the body is empty")
    try:
        if request.content_type in YAML_TYPES:
            data = yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass
            strict_json.check(data, "")  # as JSON would be: no .inf/.nan, dates or binary
            return data
        data = parse_json(raw)
        parse_json_text(text)  # the same document again, to refuse a key written twice
        return data
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        kind = "YAML" if request.content_type in YAML_TYPES else "JSON"
        message = " ".join(f"the body is not valid {kind}: {exc}".split())
        raise web.HTTPBadRequest(reason="Invalid Body", text=message) from None


def version_param(request: web.Request) -> int | None:
    raw = request.query.get("version")
    if raw is None:
        return None
    try:
        version = int(raw) if len(raw) <= 20 else 0
    except ValueError:
        version = 0
    if not 1 <= version <= MAX_VERSION:
        shown = raw if len(raw) <= 40 else raw[:30] + "..."
        raise web.HTTPBadRequest(
            reason="Invalid Parameter", text=f"version must be an integer from 1 to {MAX_VERSION}, got {shown!r}"
        )
    return version


VERSION = {
    "name": "version",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
}


class DiffParams(BaseModel):
    """``?from=V1&to=V2``: ``to`` defaults to the latest version, ``from`` to the one before ``to``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    from_: int | None = Field(None, alias="from", ge=1, le=MAX_VERSION)
    to: int | None = Field(None, ge=1, le=MAX_VERSION)


class DefinitionsApi:
    """``/api/v1/definitions``. Versions are immutable; identical content is not stored twice."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def routes(self) -> list[Route]:
        read, base, definition = Permission.DEFINITIONS_READ, DEFINITIONS, "WorkflowDefinition"
        return [
            Route(
                "POST", base, self.register, Permission.DEFINITIONS_WRITE, "registerDefinition",
                "Register a definition (JSON or YAML) in the request's tenant; a name and version is "
                "immutable, and a name belongs to one tenant (409 workflow_name_taken).",
                f"201:{definition} 200:{definition} 400 409 413", (TENANT_PARAM,),
                body=body(WorkflowDefinition, "application/yaml", "text/yaml"),
            ),
            Route(
                "GET", base, self.list_latest, read, "listDefinitions",
                "The latest version of every workflow of the request's tenant that the caller's grants select.",
                "200:DefinitionList", (TENANT_PARAM,), filtered=True,
            ),
            Route(
                "GET", base + "/{name}", self.get, read, "getDefinition",
                "The latest or ?version=N.", f"200:{definition} 400 404", (NAME, VERSION, TENANT_PARAM),
            ),
            Route(
                "GET", base + "/{name}/versions", self.versions, read, "listDefinitionVersions",
                "Every version.", "200:DefinitionVersions 404", (NAME, TENANT_PARAM),
            ),
            Route(
                "GET", base + "/{name}/diff", self.diff, read, "diffDefinitionVersions",
                "What changed between ?from=V1 and ?to=V2 (default: the latest and the one before), "
                "each change with its impact on recorded executions (safe, conditional, breaking).",
                "200:DefinitionDiff 400 404", (NAME, TENANT_PARAM), query=DiffParams,
            ),
        ]

    async def register(self, request: web.Request) -> web.Response:
        """201 with the stored definition; 200 when that content was already registered."""
        definition = in_tenant(parse_definition(await read_definition_data(request)), request_tenant(request))
        note(request, resource_id=definition.name)
        before = set(await self.runtime.registry.versions(definition.name))
        stored = await self.runtime.register(definition)
        note(request, details={"version": stored.version})
        status = 200 if stored.version in before else 201
        return web.json_response(definition_json(stored), status=status)

    async def list_latest(self, request: web.Request) -> web.Response:
        tenant, shown = request_tenant(request), visible(request, Permission.DEFINITIONS_READ)
        definitions = [d for d in await self.runtime.registry.list() if d.tenant == tenant and shown(d.name)]
        return web.json_response({"items": [definition_brief(d) for d in definitions]})

    async def get(self, request: web.Request) -> web.Response:
        name, tenant = request.match_info["name"], request_tenant(request)
        definition = await tenant_definition(self.runtime.registry, name, tenant, version_param(request))
        return web.json_response(definition_json(definition))

    async def diff(self, request: web.Request) -> web.Response:
        """What changed between two versions, each change with its compatibility impact."""
        name = request.match_info["name"]
        params = query_params(request, DiffParams)
        registry, tenant = self.runtime.registry, request_tenant(request)
        versions = await tenant_versions(registry, name, tenant)
        to = params.to if params.to is not None else versions[-1]
        before = [v for v in versions if v < to]
        if params.from_ is None and not before:
            raise web.HTTPBadRequest(
                reason="Invalid Parameter", text=f"from: {name} has no version before {to}; give from="
            )
        start = params.from_ if params.from_ is not None else before[-1]
        a = await tenant_definition(registry, name, tenant, start)
        b = await tenant_definition(registry, name, tenant, to)
        return web.json_response(diff_definitions(a, b).to_dict())

    async def versions(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        versions = await tenant_versions(self.runtime.registry, name, request_tenant(request))
        return web.json_response({"name": name, "versions": versions})


def in_tenant(definition: WorkflowDefinition, tenant: str) -> WorkflowDefinition:
    """The definition owned by the request's tenant; a body naming another tenant is refused."""
    if "tenant" in definition.model_fields_set and definition.tenant != tenant:
        message = f"the request works in tenant {tenant!r}; register it there (X-Orchestrator-Tenant)"
        raise DefinitionError([Problem("tenant", message)])
    return definition.model_copy(update={"tenant": tenant})
