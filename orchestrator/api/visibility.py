"""What a request may see: definitions of its tenant only, and in a filtered listing only the
workflows its grants select.

A definition belongs to one tenant (``WorkflowDefinition.tenant``); another tenant's is answered
as if it did not exist (``UnknownWorkflow``, 404 ``unknown_workflow``), never 403, so a caller
learns nothing of the other tenant's catalog. A grant restricted to some workflows
(``executions:read:orders-*``) lets a listing route declared ``filtered`` show those workflows'
items and no others (:func:`visible`).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from orchestrator.auth.middleware import ACCESS_KEY
from orchestrator.auth.policy import Access
from orchestrator.ports import Registry, UnknownWorkflow
from schemas.definition import WorkflowDefinition


def visible(request: web.Request, permission: str) -> Callable[[str], bool]:
    """Whether the request's grants allow ``permission`` on a workflow (authentication off, or an
    unrestricted grant: every workflow)."""
    access = request.get(ACCESS_KEY)
    if not isinstance(access, Access) or access.unrestricted(permission):
        return lambda workflow: True
    return lambda workflow: access.allows(permission, [workflow])


async def tenant_definition(
    registry: Registry, name: str, tenant: str, version: int | None = None
) -> WorkflowDefinition:
    """A definition of ``tenant`` (its latest version when None); UnknownWorkflow for one that
    is missing or belongs to another tenant (the same message for both)."""
    try:
        definition = await registry.get(name, version)
    except UnknownWorkflow:
        definition = None
    if definition is None or definition.tenant != tenant:
        suffix = "" if version is None else f" with version {version}"
        raise UnknownWorkflow(f"unknown workflow {name!r}{suffix}")
    return definition


async def tenant_versions(registry: Registry, name: str, tenant: str) -> list[int]:
    """The versions of a definition of ``tenant``; UnknownWorkflow as :func:`tenant_definition`."""
    versions = await registry.versions(name)
    if not versions:
        raise UnknownWorkflow(f"unknown workflow {name!r}")
    await tenant_definition(registry, name, tenant, versions[-1])
    return versions
