"""Composition: ``extends`` (inheritance) and ``include`` (fragments). Pure over a library.

- **extends** ``parent@range``: the parent is resolved first (its own parent included). The
  child's parameter properties override the parent's by name (``required`` is the union); the
  child's workflow fields override the parent's; steps override by name (in the parent's
  place), new steps are appended, and ``{name: x, remove: true}`` drops the parent's step ``x``.
- **include**: a step written ``{include: fragment-id, with: {...}}`` is replaced, after the
  template is rendered, by the fragment's steps rendered with the ``with`` values as its
  parameters. A fragment must be listed in ``include`` (``id@range``) and may include others.

A template that extends or includes itself (directly or through others) is a cycle; a step
name defined twice after insertion is a conflict; both are errors naming the chain or step.
"""

from __future__ import annotations

from typing import Any

from orchestrator.templates.errors import TemplateError, problem
from orchestrator.templates.library import TemplateLibrary, split_reference
from schemas.template import WorkflowTemplate
from schemas.validation import Problem


def resolve(
    template: WorkflowTemplate, library: TemplateLibrary, chain: tuple[str, ...] = ()
) -> WorkflowTemplate:
    """``template`` with its ``extends`` chain merged in (``extends`` is then None)."""
    me = template.metadata.id
    if me in chain:
        raise problem("extends", f"inheritance cycle: {' -> '.join((*chain, me))}")
    if template.extends is None:
        return template
    if split_reference(template.extends)[0] in (*chain, me):
        raise problem(
            "extends", f"inheritance cycle: {' -> '.join((*chain, me, split_reference(template.extends)[0]))}"
        )
    parent = resolve(library.find(template.extends, "extends"), library, (*chain, me))
    return template.model_copy(
        update={
            "extends": None,
            "parameters": merge_parameters(parent.parameters, template.parameters),
            "include": list(dict.fromkeys([*parent.include, *template.include])),
            "workflow": merge_workflow(parent.workflow, template.workflow),
        }
    )


def merge_parameters(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    merged = {**parent, **child}
    merged["properties"] = {**parent.get("properties", {}), **child.get("properties", {})}
    required = [*parent.get("required", []), *child.get("required", [])]
    if required:
        merged["required"] = list(dict.fromkeys(required))
    return merged


def merge_workflow(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    merged = {**parent, **{k: v for k, v in child.items() if k != "steps"}}
    steps: list[Any] = list(parent.get("steps", []))
    names = [s.get("name") if isinstance(s, dict) else None for s in steps]
    for step in child.get("steps", []):
        name = step.get("name") if isinstance(step, dict) else None
        if name is not None and name in names:
            index = names.index(name)
            if step.get("remove") is True:
                del steps[index], names[index]
            else:
                steps[index] = step
        elif not (isinstance(step, dict) and step.get("remove") is True):
            steps.append(step)
            names.append(name)
    merged["steps"] = steps
    return merged


def included(template: WorkflowTemplate, library: TemplateLibrary) -> dict[str, WorkflowTemplate]:
    """The fragments ``template`` lists, by id."""
    fragments = {}
    for index, reference in enumerate(template.include):
        fragment = library.find(reference, f"include[{index}]")
        if fragment.metadata.kind != "fragment":
            raise problem(f"include[{index}]", f"{fragment.metadata.id!r} is a template, not a fragment")
        fragments[fragment.metadata.id] = fragment
    return fragments


def check_names(steps: list[Any], where: str) -> None:
    """TemplateError for a step name used twice (at any depth)."""
    seen: dict[str, str] = {}
    problems: list[Problem] = []

    def walk(items: list[Any], at: str) -> None:
        for index, step in enumerate(items):
            if not isinstance(step, dict):
                continue
            here, name = f"{at}[{index}]", step.get("name")
            if isinstance(name, str):
                if name in seen:
                    problems.append(Problem(here, f"step {name!r} conflicts with the step at {seen[name]}"))
                else:
                    seen[name] = here
            for b, branch in enumerate(step.get("branches") or []):
                if isinstance(branch, dict):
                    walk(branch.get("steps") or [], f"{here}.branches[{b}].steps")

    walk(steps, where)
    if problems:
        raise TemplateError(problems)
