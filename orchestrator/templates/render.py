"""Rendering: parameters checked (every problem at once, with paths), placeholders replaced,
fragments inserted, the result validated as a definition and stamped with its provenance. Pure."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from orchestrator.templates import placeholders, semver
from orchestrator.templates.compose import check_names, included, resolve
from orchestrator.templates.errors import TemplateError, problem
from orchestrator.templates.library import TemplateLibrary, as_mapping, parse_template
from schemas.definition import Provenance, WorkflowDefinition
from schemas.secrets import valid_name
from schemas.template import WorkflowTemplate
from schemas.validation import DefinitionError, Problem, parse_definition

SECRET_REF = "secret-ref"
MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Rendered:
    definition: WorkflowDefinition
    template: WorkflowTemplate  # resolved: extends merged in
    parameters: dict[str, Any]  # with defaults


def checksum(template: WorkflowTemplate) -> str:
    """sha256 over the resolved document's canonical JSON (tests excluded: they change no output)."""
    data = {k: v for k, v in as_mapping(template).items() if k != "tests"}
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def with_defaults(schema: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with each missing property's ``default`` (nested objects too)."""
    result = dict(values)
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, Mapping):
            continue
        if name not in result and "default" in prop:
            result[name] = copy.deepcopy(prop["default"])
        if isinstance(result.get(name), Mapping) and prop.get("type") == "object":
            result[name] = with_defaults(prop, result[name])
    return result


def _secret_refs(schema: Mapping[str, Any], values: Any, path: str) -> list[Problem]:
    problems = []
    if schema.get("format") == SECRET_REF and values is not None and not valid_name(values):
        problems.append(
                Problem(path, "a secret-ref holds a secret NAME (letters, digits, '_'), never a value")
            )
    if isinstance(values, Mapping):
        for name, prop in (schema.get("properties") or {}).items():
            if isinstance(prop, Mapping) and name in values:
                problems += _secret_refs(prop, values[name], f"{path}.{name}")
    return problems


def check_parameters(schema: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters with defaults; TemplateError ``invalid_parameters`` listing every problem."""
    if not isinstance(values, Mapping):
        raise problem("parameters", "parameters must be a mapping", "invalid_parameters")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise problem("parameters", f"not a valid JSON Schema: {exc.message}") from None
    full = with_defaults(schema, values)
    validator = Draft202012Validator(schema)
    problems = [
        Problem(
            "params" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path),
            error.message,
        )
        for error in sorted(validator.iter_errors(full), key=lambda e: list(map(str, e.absolute_path)))
    ]
    problems += _secret_refs(schema, full, "params")
    if problems:
        raise TemplateError(problems, "invalid_parameters")
    return full


def _expand(
    steps: list[Any],
    fragments: Mapping[str, WorkflowTemplate],
    library: TemplateLibrary,
    where: str,
    depth: int,
) -> list[Any]:
    out: list[Any] = []
    for index, step in enumerate(steps):
        here = f"{where}[{index}]"
        if isinstance(step, dict) and isinstance(step.get("branches"), list):
            step = {**step, "branches": [
                {**b, "steps": _expand(b.get("steps") or [], fragments, library, f"{here}.branches[{i}].steps", depth)}
                if isinstance(b, dict) else b
                for i, b in enumerate(step["branches"])
            ]}  # fmt: skip
        if not (isinstance(step, dict) and "include" in step):
            out.append(step)
            continue
        name = step["include"]
        if name not in fragments:
            raise problem(
                here, f"fragment {name!r} is not listed in include (listed: {', '.join(fragments) or 'none'})"
            )
        if depth >= MAX_INCLUDE_DEPTH:
            raise problem(here, f"fragments nested deeper than {MAX_INCLUDE_DEPTH}: an include cycle?")
        fragment = fragments[name]
        try:
            values = check_parameters(fragment.parameters, step.get("with") or {})
            body = placeholders.render(
                fragment.workflow.get("steps") or [], {"params": values}, f"{here}({name})"
            )
        except placeholders.PlaceholderError as exc:
            raise TemplateError([Problem(w, m) for w, m in exc.problems]) from None
        except TemplateError as exc:
            raise TemplateError(
                [Problem(f"{here}.with ({name}): {p.location}", p.message) for p in exc.problems], exc.code
            ) from None
        inner = {**fragments, **included(fragment, library)}
        out += _expand(body, inner, library, f"{here}({name})", depth + 1)
    return out


def render(
    document: Any,
    parameters: Mapping[str, Any],
    library: TemplateLibrary,
    *,
    name: str | None = None,
    engine: str | None = None,
) -> Rendered:
    """Render a template (a document or plain data) into a validated definition.

    ``name`` overrides the workflow name; ``engine`` (this engine's version) is checked against
    the template's ``metadata.engine`` range. TemplateError (``invalid_template``,
    ``invalid_parameters``, ``unknown_template``) or DefinitionError, each with every problem."""
    template = resolve(parse_template(document), library)
    if template.metadata.kind != "template":
        raise problem("metadata.kind", "a fragment is included by templates, not rendered on its own")
    if engine is not None and not semver.satisfies(engine, template.metadata.engine):
        raise problem(
            "metadata.engine", f"this engine is {engine}; the template supports {template.metadata.engine}"
        )
    values = check_parameters(template.parameters, parameters)
    try:
        body = placeholders.render(template.workflow, {"params": values})
    except placeholders.PlaceholderError as exc:
        raise TemplateError([Problem(w, m) for w, m in exc.problems]) from None
    if not isinstance(body, dict):
        raise problem("workflow", "the workflow body must be a mapping")
    body["steps"] = _expand(
        body.get("steps") or [], included(template, library), library, "workflow.steps", 0
    )
    check_names(body["steps"], "workflow.steps")
    if name is not None:
        body["name"] = name
    body["provenance"] = Provenance(
        template=template.metadata.id,
        template_version=template.metadata.version,
        parameters=values,
        checksum=checksum(template),
    ).model_dump(mode="json")
    try:
        definition = parse_definition(body)
    except TemplateError:
        raise
    except DefinitionError as exc:
        raise DefinitionError(
            [Problem(f"rendered workflow: {p.location}", p.message) for p in exc.problems]
        ) from None
    return Rendered(definition, template, values)
