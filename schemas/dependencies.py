"""What a definition needs from outside itself: connectors and child workflows. Pure checks
against what the caller knows (a process's connector names, the registry's versions), and the
order a batch of definitions must be registered in.

A ``subworkflow`` step must name a registered workflow, or its own workflow (recursion); with a
``version``, that version must be registered (or be the one the definition is, or will get).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from schemas.definition import SubworkflowStep, TaskStep, WorkflowDefinition
from schemas.graph import iter_steps
from schemas.validation import Problem

__all__ = ["children", "connector_problems", "dependency_order", "subworkflow_problems"]


def connector_problems(definition: WorkflowDefinition, connectors: Collection[str]) -> list[Problem]:
    """A task step naming a connector the process does not have: it could only fail when run."""
    known = ", ".join(sorted(connectors)) or "none"
    return [
        Problem(f"{item.location}.connector", f"unknown connector {item.step.connector!r} (this process has: {known})")
        for item in iter_steps(definition.steps)
        if isinstance(item.step, TaskStep) and item.step.connector not in connectors
    ]


def children(definition: WorkflowDefinition) -> set[str]:
    """The workflows the definition's subworkflow steps start."""
    return {item.step.workflow for item in iter_steps(definition.steps) if isinstance(item.step, SubworkflowStep)}


def subworkflow_problems(definition: WorkflowDefinition, versions: Mapping[str, Sequence[int]]) -> list[Problem]:
    """Subworkflow steps whose workflow (or pinned version) is not registered; ``versions`` holds
    the registered versions of (at least) every child workflow."""
    problems = []
    own = versions.get(definition.name, ())
    next_version = definition.version or max(own, default=0) + 1
    for item in iter_steps(definition.steps):
        step = item.step
        if not isinstance(step, SubworkflowStep):
            continue
        registered = versions.get(step.workflow, ())
        if step.workflow == definition.name:
            if step.version is not None and step.version not in registered and step.version != next_version:
                problems.append(Problem(f"{item.location}.version", _no_version(step, registered)))
        elif not registered:
            problems.append(
                Problem(f"{item.location}.workflow", f"unknown workflow {step.workflow!r}: register it first")
            )
        elif step.version is not None and step.version not in registered:
            problems.append(Problem(f"{item.location}.version", _no_version(step, registered)))
    return problems


def _no_version(step: SubworkflowStep, registered: Sequence[int]) -> str:
    known = ", ".join(map(str, registered)) or "none"
    return f"workflow {step.workflow!r} has no version {step.version} (registered: {known})"


def dependency_order(definitions: Sequence[WorkflowDefinition]) -> tuple[list[int], list[Problem]]:
    """Indexes of ``definitions`` in an order where every version of a child comes before its
    parents (else the given order), and a problem naming the workflows that start each other,
    which no order can register (one of them must first be registered without the reference)."""
    needs = [children(d) - {d.name} for d in definitions]
    pending = list(range(len(definitions)))
    order: list[int] = []
    while pending:
        waiting = {definitions[i].name for i in pending}
        ready = next((i for i in pending if not needs[i] & waiting), None)
        if ready is None:
            break
        order.append(ready)
        pending.remove(ready)
    if not pending:
        return order, []
    stuck = ", ".join(repr(name) for name in sorted({definitions[i].name for i in pending}))
    message = (
        f"workflows {stuck} start each other (or one that does): no order can register them; "
        "register one without its subworkflow step first"
    )
    return order, [Problem("(definitions)", message)]
