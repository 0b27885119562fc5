"""What registration checks against the running system, before a definition is stored.

A definition that validates on its own can still only fail later: a task naming a connector this
process does not have, a subworkflow naming a workflow or version that is not registered, a
webhook name another workflow of the tenant already serves. Each is refused here, at registration,
reading the registry (shared by every process), so every process refuses the same definitions. Two
processes registering two workflows with the same new hook name at the same instant can both pass;
the registry has no cross-workflow constraint to close that gap.

A definition belongs to one tenant (``definition.tenant``), and so do its triggers: a trigger
without a tenant of its own takes the definition's, one naming another tenant is refused. Child
workflows are looked up in the same tenant; another tenant's workflow is unknown here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from orchestrator.ports import HookTaken, Registry
from schemas.definition import TaskStep, WebhookTrigger, WorkflowDefinition
from schemas.dependencies import children, connector_problems, subworkflow_problems
from schemas.graph import iter_steps
from schemas.tenant import DEFAULT_TENANT
from schemas.validation import DefinitionError, Problem

__all__ = ["check_registration", "owned_triggers", "tenant_versions"]


StepChecker = Callable[[str, Mapping[str, Any]], list[str]]  # (connector, config) -> problems


async def check_registration(
    definition: WorkflowDefinition,
    registry: Registry,
    connectors: Collection[str],
    step_problems: StepChecker | None = None,
) -> WorkflowDefinition:
    """The definition to store (its triggers in its tenant, :func:`owned_triggers`), else
    DefinitionError listing a trigger of another tenant, unknown connectors, what a connector
    refuses in a step's config (``step_problems``: a python function outside the allow-list, an
    internal topic) and unknown child workflows or versions; then HookTaken when a webhook name
    belongs to another workflow of the tenant."""
    definition, problems = owned_triggers(definition)
    problems += connector_problems(definition, connectors)
    if step_problems is not None:
        for item in iter_steps(definition.steps):
            if isinstance(item.step, TaskStep) and item.step.connector in connectors:
                found = step_problems(item.step.connector, item.step.config)
                problems += [Problem(f"{item.location}.config", message) for message in found]
    wanted = children(definition) | {definition.name}
    versions = {name: await tenant_versions(registry, name, definition.tenant) for name in sorted(wanted)}
    problems += subworkflow_problems(definition, versions)
    if problems:
        raise DefinitionError(problems)
    hooks = {t.name for t in definition.triggers if isinstance(t, WebhookTrigger)}
    if not hooks:
        return definition
    for other in await registry.list():
        if other.name == definition.name or other.tenant != definition.tenant:
            continue
        for trigger in other.triggers:
            if isinstance(trigger, WebhookTrigger) and trigger.name in hooks:
                raise HookTaken(
                    f"webhook {trigger.name!r} is declared by workflow {other.name!r} "
                    f"(v{other.version}); a webhook name serves one workflow of a tenant"
                )
    return definition


def owned_triggers(definition: WorkflowDefinition) -> tuple[WorkflowDefinition, list[Problem]]:
    """The definition with each trigger in the definition's tenant: a trigger left in the
    ``default`` tenant takes the definition's; one naming another tenant is a problem."""
    tenant, triggers, problems = definition.tenant, [], []
    for index, trigger in enumerate(definition.triggers):
        if trigger.tenant not in (tenant, DEFAULT_TENANT):
            message = f"a trigger belongs to its definition's tenant {tenant!r}, not {trigger.tenant!r}"
            problems.append(Problem(f"triggers[{index}].tenant", message))
        triggers.append(trigger if trigger.tenant == tenant else trigger.model_copy(update={"tenant": tenant}))
    if triggers == list(definition.triggers):
        return definition, problems
    return definition.model_copy(update={"triggers": triggers}), problems


async def tenant_versions(registry: Registry, name: str, tenant: str) -> list[int]:
    """The versions of ``name`` when ``tenant`` owns it; none when another tenant does."""
    versions = await registry.versions(name)
    if versions and (await registry.get(name, versions[-1])).tenant != tenant:
        return []
    return versions
