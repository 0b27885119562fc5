"""Template routes: list and show the library, render, test in memory, install and upgrade
(docs/templates.md). Rendering and tests need ``templates:read``; install and upgrade register
definitions and need ``templates:install``. Every call is audited by the route table."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.auditing import note
from orchestrator.api.errors import error_response, problems_details
from orchestrator.api.requests import json_body, request_actor, request_tenant
from orchestrator.api.routes import Permission, Route, body, path_param
from orchestrator.runtime import Runtime
from orchestrator.templates.errors import TemplateError
from orchestrator.templates.installer import TemplateInstaller
from orchestrator.templates.library import TemplateLibrary, as_mapping
from orchestrator.templates.testing import run_tests
from schemas.template import WorkflowTemplate

TEMPLATES = "/api/v1/templates"
TEMPLATE_ID = path_param("id", "Template id (the highest version), or id@range.")


class TemplateRequest(BaseModel):
    """A library template (``template``: id or id@range) or a whole ``document``, with parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    template: str | None = Field(None, min_length=1, max_length=300)
    document: dict[str, Any] | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(None, description="The workflow name (default: the template's).")


class UpgradeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    workflow: str = Field(min_length=1, max_length=128)
    template: str | None = Field(None, description="id@range of the new version (default: the template's highest).")
    document: dict[str, Any] | None = None
    apply: bool = Field(False, description="Register the re-rendered version (else: only the diff).")


def summary(template: WorkflowTemplate) -> dict[str, Any]:
    return template.metadata.model_dump(mode="json")


def template_error(exc: TemplateError) -> web.Response:
    status = 404 if exc.code == "unknown_template" else 400
    return error_response(status, exc.code, "the template cannot be rendered", problems_details(exc.problems))


class TemplatesApi:
    def __init__(self, runtime: Runtime, library: TemplateLibrary | None = None) -> None:
        self.library = library if library is not None else TemplateLibrary.from_paths([])
        self.installer = TemplateInstaller(runtime, self.library)

    def routes(self) -> list[Route]:
        read, install = Permission.TEMPLATES_READ, Permission.TEMPLATES_INSTALL
        return [
            Route("GET", TEMPLATES, self.list_templates, read, "listTemplates",
                  "The template library: the highest version of every template.", "200:TemplateList"),
            Route("GET", TEMPLATES + "/{id}", self.show, read, "getTemplate",
                  "One template document.", "200:WorkflowTemplate 404", (TEMPLATE_ID,)),
            Route("POST", TEMPLATES + "/render", self.render, read, "renderTemplate",
                  "Render a template with parameters into a definition (nothing is registered).",
                  "200:WorkflowDefinition 400 404", body=body(TemplateRequest)),
            Route("POST", TEMPLATES + "/test", self.test, read, "testTemplate",
                  "Run a template's test cases in memory with stubbed connectors.",
                  "200:TemplateTestResults 400 404", body=body(TemplateRequest)),
            Route("POST", TEMPLATES + "/install", self.install, install, "installTemplate",
                  "Render a template and register it as a workflow version with its provenance.",
                  "201:TemplateInstalled 200:TemplateInstalled 400 404 409", body=body(TemplateRequest)),
            Route("POST", TEMPLATES + "/upgrade", self.upgrade, install, "upgradeTemplate",
                  "Re-render an installed workflow with another template version and its recorded "
                  "parameters: the definition diff and its compatibility; registers with register=true.",
                  "200:TemplateUpgrade 400 404 409", body=body(UpgradeRequest)),
        ]  # fmt: skip

    def _document(self, request: TemplateRequest | UpgradeRequest) -> WorkflowTemplate | dict[str, Any]:
        if request.document is not None:
            return request.document
        if request.template is None:
            raise web.HTTPBadRequest(reason="Invalid Body", text="give template (id@range) or document")
        return self.library.find(request.template, "template")

    async def list_templates(self, request: web.Request) -> web.Response:
        return web.json_response({"items": [summary(t) for t in self.library.all()]})

    async def show(self, request: web.Request) -> web.Response:
        try:
            return web.json_response(as_mapping(self.library.find(request.match_info["id"], "id")))
        except TemplateError as exc:
            return template_error(exc)

    async def render(self, request: web.Request) -> web.Response:
        asked = await json_body(request, TemplateRequest)
        try:
            rendered = self.installer.render(self._document(asked), asked.parameters, name=asked.name)
        except TemplateError as exc:
            return template_error(exc)
        return web.json_response(rendered.definition.model_dump(mode="json"))

    async def test(self, request: web.Request) -> web.Response:
        asked = await json_body(request, TemplateRequest)
        try:
            results = await run_tests(self._document(asked), self.library)
        except TemplateError as exc:
            return template_error(exc)
        items = [r.to_dict() for r in results]
        return web.json_response({"passed": all(r.passed for r in results), "items": items})

    async def install(self, request: web.Request) -> web.Response:
        asked = await json_body(request, TemplateRequest)
        try:
            document = self._document(asked)
            before = self.installer.render(document, asked.parameters, name=asked.name).definition.name
            note(request, resource_id=before)
            latest = await self.installer.latest_version(before)
            answer = await self.installer.install(
                document, asked.parameters, tenant=request_tenant(request), actor=request_actor(request), name=asked.name
            )
        except TemplateError as exc:
            return template_error(exc)
        note(request, details={"version": answer["version"], "template": answer["template"]})
        return web.json_response(answer, status=200 if latest is not None and answer["version"] <= latest else 201)

    async def upgrade(self, request: web.Request) -> web.Response:
        asked = await json_body(request, UpgradeRequest)
        note(request, resource_id=asked.workflow)
        try:
            current = await self.installer.system.definition(asked.workflow)
            reference = asked.template
            if asked.document is None and reference is None and current.provenance is not None:
                reference = current.provenance.template
            document = asked.document if asked.document is not None else self.library.find(reference or "", "template")
            _, rendered, diff = await self.installer.plan_upgrade(asked.workflow, document)
        except TemplateError as exc:
            return template_error(exc)
        answer: dict[str, Any] = {"diff": diff.to_dict(), "compatibility": diff.compatibility, "registered": None}
        if asked.apply:
            stored = await self.installer.system.register(rendered.definition)
            answer["registered"] = self.installer.answer(stored, rendered)
        return web.json_response(answer)
