"""``templates from-workflow``: turn a registered definition into a template, lifting chosen
values into parameters. Pure.

A path names a value in the definition: ``steps.<step>.<field>...`` finds the step by name at
any depth (parallel branches included); any other path starts at the workflow
(``description``, ``triggers[0].topics``, ``input_schema.properties.id.minLength``). Each lifted
value becomes a parameter whose default is the current value, so rendering with no parameters
gives back the same definition."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from orchestrator.templates.errors import TemplateError
from schemas.definition import WorkflowDefinition
from schemas.validation import Problem

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


def _parts(path: str) -> list[str | int]:
    return [int(index) if index else name for name, index in _PART.findall(path)]


def _find_step(steps: list[Any], name: str) -> dict[str, Any] | None:
    for step in steps:
        if step.get("name") == name:
            return step  # type: ignore[no-any-return]
        for branch in step.get("branches") or []:
            found = _find_step(branch.get("steps") or [], name)
            if found is not None:
                return found
    return None


def _replace(body: dict[str, Any], path: str, name: str) -> tuple[Any, str | None]:
    parts = _parts(path)
    node: Any = body
    if len(parts) >= 3 and parts[0] == "steps" and isinstance(parts[1], str):
        node = _find_step(body["steps"], parts[1])
        if node is None:
            return None, f"no step named {parts[1]!r}"
        parts = parts[2:]
    if not parts:
        return None, "a path must name a value inside the workflow"
    for part in parts[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None, f"{part!r} is not there"
    last = parts[-1]
    try:
        value = node[last]
    except (KeyError, IndexError, TypeError):
        return None, f"{last!r} is not there"
    node[last] = f"{{{{% params.{name} %}}}}"
    return value, None


def from_workflow(
    definition: WorkflowDefinition,
    lifted: Mapping[str, str],
    *,
    template_id: str | None = None,
    engine: str = "0.0.0",
) -> dict[str, Any]:
    """A template document (plain data) for ``definition``; TemplateError naming every bad path."""
    body = definition.model_dump(mode="json", exclude_none=True, exclude={"version", "provenance"})
    body = copy.deepcopy(body)
    properties: dict[str, Any] = {}
    problems = []
    for path, name in lifted.items():
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is None:
            problems.append(Problem(path, f"parameter name {name!r}: letters, digits and '_'"))
            continue
        value, error = _replace(body, path, name)
        if error is not None:
            problems.append(Problem(path, error))
            continue
        properties[name] = {"type": _TYPES.get(type(value), "string"), "default": value, "description": f"Lifted from {path}."}
    if problems:
        raise TemplateError(problems)
    major = engine.split(".")[0]
    return {
        "metadata": {
            "id": template_id or definition.name.lower().replace("_", "-"),
            "version": "1.0.0",
            "title": definition.description or definition.name,
            "description": definition.description,
            "engine": f">={engine},<{int(major) + 1 if major.isdigit() else 1}.0.0",
        },
        "parameters": {"type": "object", "properties": properties},
        "workflow": body,
    }
