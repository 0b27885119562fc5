"""Definition versions, shared by every registry backend: is a registration the same definition?"""

from __future__ import annotations

from schemas.definition import WorkflowDefinition


def same_content(a: WorkflowDefinition, b: WorkflowDefinition) -> bool:
    """Equal but for the version number: registering it again makes no new version."""
    return canonical(a) == canonical(b)


def canonical(definition: WorkflowDefinition) -> str:
    """Definition content without its version, as canonical JSON."""
    return definition.model_copy(update={"version": None}).model_dump_json(exclude_defaults=True)
