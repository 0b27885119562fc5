"""Install a template: render it and register the result as a workflow version that records
its provenance (template id, version, parameters, checksum) in ``WorkflowDefinition.provenance``.

The installer depends on a small ``Registers`` protocol (``Runtime`` is one), so the API, the
CLI and the catalog share it."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any, Protocol

from orchestrator.ports import UnknownWorkflow
from orchestrator.templates.errors import problem
from orchestrator.templates.library import TemplateLibrary
from orchestrator.templates.render import Rendered, render
from schemas.definition import WorkflowDefinition
from schemas.definition_diff import DefinitionDiff, diff_definitions
from schemas.template import WorkflowTemplate


class Registers(Protocol):
    """What installing needs from the system: register a definition (checked against the
    running system) and read registered ones."""

    async def register(self, definition: WorkflowDefinition) -> WorkflowDefinition: ...

    async def definition(self, workflow: str, version: int | None = None) -> WorkflowDefinition: ...


def engine_version() -> str:
    """This engine's version (the installed distribution's), for ``metadata.engine`` ranges."""
    try:
        return metadata.version("orchestrator")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class TemplateInstaller:
    """Render and register templates; every method raises TemplateError/DefinitionError with
    every problem, or what registration raises (HookTaken, ...)."""

    def __init__(self, system: Registers, library: TemplateLibrary | None = None) -> None:
        self.system = system
        self.library = library if library is not None else TemplateLibrary.from_paths([])

    def render(self, document: Any, parameters: Mapping[str, Any], *, name: str | None = None) -> Rendered:
        return render(document, parameters, self.library, name=name, engine=engine_version())

    async def install(
        self,
        document: Mapping[str, Any] | WorkflowTemplate,
        parameters: Mapping[str, Any],
        *,
        tenant: str,
        actor: str,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Register the rendered template in ``tenant`` (a definition belongs to one tenant);
        ``actor`` says on whose behalf (the caller audits it)."""
        rendered = self.render(document, parameters, name=name)
        stored = await self.system.register(rendered.definition.model_copy(update={"tenant": tenant}))
        return self.answer(stored, rendered) | {"tenant": tenant, "actor": actor}

    async def latest_version(self, workflow: str) -> int | None:
        """The latest registered version of ``workflow``, None when there is none."""
        try:
            return (await self.system.definition(workflow)).version
        except UnknownWorkflow:
            return None

    async def plan_upgrade(
        self, workflow: str, document: Any
    ) -> tuple[WorkflowDefinition, Rendered, DefinitionDiff]:
        """Re-render ``workflow``'s template (``document``, another version) with the parameters
        its latest version recorded: (current, rendered, diff from current to rendered)."""
        current = await self.system.definition(workflow)
        if current.provenance is None:
            raise problem("workflow", f"{workflow!r} was not installed from a template (no provenance)")
        rendered = self.render(document, current.provenance.parameters, name=workflow)
        return current, rendered, diff_definitions(current, rendered.definition)

    async def upgrade(self, workflow: str, document: Any) -> dict[str, Any]:
        _, rendered, diff = await self.plan_upgrade(workflow, document)
        stored = await self.system.register(rendered.definition)
        return self.answer(stored, rendered) | {"compatibility": diff.compatibility}

    @staticmethod
    def answer(stored: WorkflowDefinition, rendered: Rendered) -> dict[str, Any]:
        return {
            "workflow": stored.name,
            "version": stored.version,
            "template": rendered.template.metadata.id,
            "template_version": rendered.template.metadata.version,
            "parameters": rendered.parameters,
            "checksum": stored.provenance.checksum if stored.provenance else None,
        }
