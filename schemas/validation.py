"""Validate a definition and report every problem at once, each with its location."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import jsonschema
from pydantic import ValidationError

from schemas.definition import (
    ChoiceStep,
    FailStep,
    ParallelStep,
    Step,
    SubworkflowStep,
    SucceedStep,
    TaskStep,
    Trigger,
    WaitForEventStep,
    WaitStep,
    WebhookTrigger,
    WindowTrigger,
    WorkflowDefinition,
)
from schemas.expressions import ExpressionError, compile_expression, mapping_expressions
from schemas.graph import Located, Scope, iter_steps, references


@dataclass(frozen=True, slots=True)
class Problem:
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class DefinitionError(ValueError):
    """A definition is invalid; ``problems`` lists everything wrong with it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("invalid workflow definition:\n" + "\n".join(f"  {p}" for p in problems))


def parse_definition(data: Any) -> WorkflowDefinition:
    """Build and validate a definition from plain data; raise DefinitionError with all problems."""
    try:
        definition = WorkflowDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError([_from_pydantic(error) for error in exc.errors()]) from None
    problems = validate(definition)
    if problems:
        raise DefinitionError(problems)
    return definition


def validate(definition: WorkflowDefinition) -> list[Problem]:
    """Semantic checks that the models alone cannot express."""
    located = list(iter_steps(definition.steps))
    problems = _duplicates(located)
    scopes: dict[str, Scope] = {}
    for item in located:
        scopes.setdefault(item.step.name, item.scope)
    problems += _references(definition, located, scopes)
    if not any(p.message.startswith("unknown step") for p in problems):
        problems += _unreachable(definition, located, scopes)
    problems += _expressions(definition, located)
    problems += _step_rules(located)
    problems += _input_schema(definition.input_schema)
    problems += _triggers(definition)
    return problems


_UNION_TAGS = frozenset(
    {"task", "choice", "parallel", "wait", "wait_for_event", "subworkflow", "succeed", "fail", "webhook"}
)


def _from_pydantic(error: Any) -> Problem:
    """Spell pydantic's location like ours: ``steps[0].connector`` (no union tag)."""
    location = ""
    after_index = False
    for part in error["loc"]:
        if isinstance(part, int):
            location += f"[{part}]"
            after_index = True
            continue
        if not (after_index and part in _UNION_TAGS):
            location += f".{part}" if location else str(part)
        after_index = False
    return Problem(location or "(root)", error["msg"])


def _duplicates(located: list[Located]) -> list[Problem]:
    counts = Counter(item.step.name for item in located)
    return [
        Problem(f"{item.location}.name", f"duplicate step name {item.step.name!r}")
        for item in located
        if counts[item.step.name] > 1
    ]


def _references(
    definition: WorkflowDefinition, located: list[Located], scopes: dict[str, Scope]
) -> list[Problem]:
    problems = []
    if definition.start is not None:
        if definition.start not in scopes:
            problems.append(Problem("start", f"unknown step {definition.start!r}"))
        elif scopes[definition.start] is not None:
            problems.append(Problem("start", f"step {definition.start!r} is inside a parallel branch"))
    for item in located:
        for field_name, target in references(item.step):
            where = f"{item.location}.{field_name}"
            if target not in scopes:
                problems.append(Problem(where, f"unknown step {target!r}"))
            elif scopes[target] != item.scope:
                problems.append(Problem(where, f"step {target!r} is in another branch or scope"))
    return problems


def _unreachable(
    definition: WorkflowDefinition, located: list[Located], scopes: dict[str, Scope]
) -> list[Problem]:
    by_name = {item.step.name: item.step for item in located}
    roots = [definition.start or definition.steps[0].name]
    for item in located:
        if isinstance(item.step, ParallelStep):
            roots += [branch.steps[0].name for branch in item.step.branches]
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        stack += [target for _, target in references(by_name[name])]
    return [
        Problem(f"{item.location}", f"step {item.step.name!r} is unreachable")
        for item in located
        if item.step.name not in seen
    ]


def _step_expressions(step: Step) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(step, TaskStep | SubworkflowStep):
        found += [(f"input{loc}", expr) for loc, expr in mapping_expressions(step.input)]
    if isinstance(step, TaskStep | SucceedStep) and step.output:
        found.append(("output", step.output))
    if isinstance(step, ChoiceStep):
        found += [(f"choices[{i}].when", rule.when) for i, rule in enumerate(step.choices)]
    if isinstance(step, WaitStep) and step.until:
        found.append(("until", step.until))
    if isinstance(step, WaitForEventStep) and step.correlation_key:
        found.append(("correlation_key", step.correlation_key))
    if isinstance(step, FailStep) and step.cause:
        found.append(("cause", step.cause))
    return found


def _expressions(definition: WorkflowDefinition, located: list[Located]) -> list[Problem]:
    candidates = [("output", definition.output)] if definition.output else []
    for index, trigger in enumerate(definition.triggers):
        candidates += [(f"triggers[{index}].{loc}", expr) for loc, expr in _trigger_expressions(trigger)]
    for item in located:
        candidates += [(f"{item.location}.{loc}", expr) for loc, expr in _step_expressions(item.step)]
    problems = []
    for location, expression in candidates:
        try:
            compile_expression(expression)
        except ExpressionError as exc:
            problems.append(Problem(location, str(exc)))
    return problems


def _trigger_expressions(trigger: Trigger) -> list[tuple[str, str]]:
    if isinstance(trigger, WebhookTrigger):
        fields = {"idempotency_field": trigger.idempotency_field}
    elif isinstance(trigger, WindowTrigger):
        fields = {"filter": trigger.filter, "key": trigger.key, "input": trigger.input}
    else:
        fields = {"filter": trigger.filter, "input": trigger.input, "message_id": trigger.message_id}
        if trigger.correlation is not None:
            fields["correlation.key"] = trigger.correlation.key
            fields["correlation.payload"] = trigger.correlation.payload
    return [(name, expr) for name, expr in fields.items() if expr]


def _step_rules(located: list[Located]) -> list[Problem]:
    problems = []
    for item in located:
        step = item.step
        if isinstance(step, WaitStep) and (step.seconds is None) == (step.until is None):
            problems.append(Problem(item.location, "a wait step needs exactly one of 'seconds' or 'until'"))
        if isinstance(step, WaitForEventStep) and step.on_timeout and step.timeout_seconds is None:
            problems.append(Problem(f"{item.location}.on_timeout", "'on_timeout' needs 'timeout_seconds'"))
    return problems


def _input_schema(schema: dict[str, Any]) -> list[Problem]:
    cls = jsonschema.validators.validator_for(schema)
    meta = cls(cls.META_SCHEMA)
    return [
        Problem(
            "input_schema" + "".join(f"[{part!r}]" for part in error.path),
            f"not a valid JSON Schema: {error.message}",
        )
        for error in sorted(meta.iter_errors(schema), key=lambda e: [str(p) for p in e.path])
    ]


def _triggers(definition: WorkflowDefinition) -> list[Problem]:
    counts = Counter(trigger.name for trigger in definition.triggers)
    problems = [
        Problem(f"triggers[{i}].name", f"duplicate trigger name {t.name!r}")
        for i, t in enumerate(definition.triggers)
        if counts[t.name] > 1
    ]
    for i, trigger in enumerate(definition.triggers):
        signature = trigger.signature if isinstance(trigger, WebhookTrigger) else None
        if signature and signature.preset == "generic" and not signature.header:
            problems.append(Problem(f"triggers[{i}].signature.header", "the generic preset needs 'header'"))
    return problems
