"""Definition versions, shared by every registry backend: is a registration the same definition,
and may its tenant register that name?"""

from __future__ import annotations

from orchestrator.ports import NameTaken
from schemas.definition import WorkflowDefinition


def check_owner(stored: WorkflowDefinition | None, definition: WorkflowDefinition) -> None:
    """NameTaken when ``stored`` (a version of the same name) belongs to another tenant. The
    message names neither that tenant nor anything of its definition."""
    if stored is not None and stored.tenant != definition.tenant:
        raise NameTaken(f"the workflow name {definition.name!r} is not available; choose another")


def same_content(a: WorkflowDefinition, b: WorkflowDefinition) -> bool:
    """Equal but for the version number: registering it again makes no new version."""
    return canonical(a) == canonical(b)


def canonical(definition: WorkflowDefinition) -> str:
    """Definition content without its version, as canonical JSON."""
    return definition.model_copy(update={"version": None}).model_dump_json(exclude_defaults=True)
