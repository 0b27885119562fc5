"""What registration checks against the running system, before a definition is stored.

A definition that validates on its own can still only fail later: a task naming a connector this
process does not have, a subworkflow naming a workflow or version that is not registered, a
webhook name another workflow already serves. Each is refused here, at registration, reading the
registry (shared by every process), so every process refuses the same definitions. Two processes
registering two workflows with the same new hook name at the same instant can both pass; the
registry has no cross-workflow constraint to close that gap.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from orchestrator.ports import HookTaken, Registry
from schemas.definition import TaskStep, WebhookTrigger, WorkflowDefinition
from schemas.dependencies import children, connector_problems, subworkflow_problems
from schemas.graph import iter_steps
from schemas.validation import DefinitionError, Problem

__all__ = ["check_registration"]


StepChecker = Callable[[str, Mapping[str, Any]], list[str]]  # (connector, config) -> problems


async def check_registration(
    definition: WorkflowDefinition,
    registry: Registry,
    connectors: Collection[str],
    step_problems: StepChecker | None = None,
) -> None:
    """DefinitionError listing unknown connectors, what a connector refuses in a step's config
    (``step_problems``: a python function outside the allow-list, an internal topic) and unknown
    child workflows or versions; then HookTaken when a webhook name belongs to another workflow."""
    problems = connector_problems(definition, connectors)
    if step_problems is not None:
        for item in iter_steps(definition.steps):
            if isinstance(item.step, TaskStep) and item.step.connector in connectors:
                found = step_problems(item.step.connector, item.step.config)
                problems += [Problem(f"{item.location}.config", message) for message in found]
    wanted = children(definition) | {definition.name}
    versions = {name: await registry.versions(name) for name in sorted(wanted)}
    problems += subworkflow_problems(definition, versions)
    if problems:
        raise DefinitionError(problems)
    hooks = {t.name for t in definition.triggers if isinstance(t, WebhookTrigger)}
    if not hooks:
        return
    for other in await registry.list():
        if other.name == definition.name:
            continue
        for trigger in other.triggers:
            if isinstance(trigger, WebhookTrigger) and trigger.name in hooks:
                raise HookTaken(
                    f"webhook {trigger.name!r} is declared by workflow {other.name!r} "
                    f"(v{other.version}); a webhook name serves one workflow"
                )
