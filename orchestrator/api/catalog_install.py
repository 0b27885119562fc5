"""The catalog's default installer and its wiring: a template without parameters to render is
installed by registering its ``workflow`` in the caller's tenant. A renderer that fills in
parameters implements the same ``orchestrator.catalog.ports.Installer``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orchestrator.api.definitions import in_tenant
from orchestrator.catalog.model import CatalogError
from orchestrator.catalog.opening import CatalogSettingsError, catalog_signer, catalog_url, open_catalog_store
from orchestrator.catalog.ports import Installer
from orchestrator.catalog.service import Catalog
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings, SettingsError
from orchestrator.templates.errors import TemplateError
from orchestrator.templates.installer import TemplateInstaller
from schemas.validation import DefinitionError, parse_definition


class RegistryInstaller:
    """Registers ``document["workflow"]`` as it stands; refuses a template that declares
    parameters (or is given some): rendering them is a template renderer's job."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def install(
        self, document: Mapping[str, Any], parameters: Mapping[str, Any], *, tenant: str, actor: str
    ) -> dict[str, Any]:
        schema = document.get("parameters")
        declared = isinstance(schema, Mapping) and bool(schema.get("properties"))
        if declared or parameters:
            raise CatalogError(
                422, "rendering_unavailable", "this server installs only templates without parameters"
            )
        workflow = document.get("workflow")
        if not isinstance(workflow, Mapping):
            raise CatalogError(422, "no_workflow", "the template has no workflow object to install")
        definition = in_tenant(parse_definition(dict(workflow)), tenant)
        stored = await self.runtime.register(definition)
        return {"tenant": tenant, "workflow": stored.name, "workflow_version": stored.version}


class RenderingInstaller:
    """Installs a catalog version as the templates library does (``orchestrator.templates``):
    rendered with the given parameters, validated, registered in the caller's tenant with its
    provenance; a template or parameter problem is a 422 naming every problem."""

    def __init__(self, runtime: Runtime) -> None:
        self.templates = TemplateInstaller(runtime)

    async def install(
        self, document: Mapping[str, Any], parameters: Mapping[str, Any], *, tenant: str, actor: str
    ) -> dict[str, Any]:
        try:
            answer = await self.templates.install(document, parameters, tenant=tenant, actor=actor)
        except DefinitionError as exc:  # a TemplateError, or the rendered definition's problems
            code = exc.code if isinstance(exc, TemplateError) else "invalid_definition"
            raise CatalogError(422, code, "; ".join(str(p) for p in exc.problems)[:2000]) from None
        return answer | {"workflow_version": answer["version"]}  # as the catalog's answers name it


def open_catalog(runtime: Runtime, settings: Settings, installer: Installer | None = None) -> Catalog:
    """The catalog of a server: its store (not started) beside the event log or at
    ``ORCHESTRATOR_CATALOG_URL``, its signing key, the installer (default: RenderingInstaller)."""
    url = catalog_url(settings.event_log_url, settings.catalog_url)
    try:
        store, signer = open_catalog_store(url), catalog_signer(url, settings.catalog_signing_key)
    except CatalogSettingsError as exc:
        raise SettingsError(str(exc)) from None
    return Catalog(
        store,
        signer,
        installer or RenderingInstaller(runtime),
        lambda: datetime.fromtimestamp(runtime.clock(), UTC).isoformat().replace("+00:00", "Z"),
    )
