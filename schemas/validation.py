"""Validate a definition and report every problem at once, each with its location."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import jsonschema
from pydantic import ValidationError

from schemas.definition import (
    ChoiceStep,
    FailStep,
    ParallelStep,
    ScheduleTrigger,
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
from schemas.isolation import isolation_problems
from schemas.secrets import OUTSIDE_TASK, mentions_secret, secret_call, task_problems


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
    problems += _spinning_loops(located)
    problems += _input_schema(definition.input_schema)
    problems += _triggers(definition)
    problems += _concurrency(definition)
    problems += _rate_limit(definition)
    problems += _debounce(definition)
    kpi_names = Counter(kpi.name for kpi in definition.kpis)
    problems += [
        Problem(f"kpis[{i}].name", f"duplicate KPI name {kpi.name!r}")
        for i, kpi in enumerate(definition.kpis)
        if kpi_names[kpi.name] > 1
    ]
    return problems


def _concurrency(definition: WorkflowDefinition) -> list[Problem]:
    """Two limits of one scope over the same key expression would be one pool with two sizes."""
    seen: dict[tuple[str, str], int] = {}
    problems = []
    for index, limit in enumerate(definition.concurrency):
        first = seen.setdefault((limit.scope, limit.key), index)
        if first != index:
            message = f"the same key {limit.key!r} in scope {limit.scope!r} as concurrency[{first}]"
            problems.append(Problem(f"concurrency[{index}].key", message))
    if definition.priority is not None and not definition.concurrency:
        problems.append(Problem("priority", "orders queued executions: it needs a concurrency limit"))
    return problems
MAX_RATE_PERIOD = 366 * 86_400.0  # a start rate's period: a year at most


def _rate_limit(definition: WorkflowDefinition) -> list[Problem]:
    from schemas.schedule_times import parse_duration  # as the schedule checks import it

    if definition.rate_limit is None:
        return []
    try:
        period = parse_duration(definition.rate_limit.period, "period")
    except ValueError as exc:
        return [Problem("rate_limit.period", str(exc))]
    if not 0 < period <= MAX_RATE_PERIOD:
        return [Problem("rate_limit.period", f"must be above 0 and at most {MAX_RATE_PERIOD:g}s, not {period:g}s")]
    return []


def _debounce(definition: WorkflowDefinition) -> list[Problem]:
    from schemas.schedule_times import parse_duration  # as the schedule checks import it

    if definition.debounce is None:
        return []
    try:
        period = parse_duration(definition.debounce.period, "period")
    except ValueError as exc:
        return [Problem("debounce.period", str(exc))]
    if not 0 < period <= MAX_RATE_PERIOD:
        return [Problem("debounce.period", f"must be above 0 and at most {MAX_RATE_PERIOD:g}s, not {period:g}s")]
    return []


# Window triggers: windows start on whole seconds (so at least 1 s), a hop is a tenth of the
# window (so at most 20 windows per message). A window's state is the list of message identities
# counted in it, rewritten to the changelog on every count: the threshold bounds that record.
# Every key's windows stay in memory (rebuilt from the changelog at start) for twice the window.
MIN_WINDOW_SECONDS = 1
MAX_WINDOW_SECONDS = 31 * 24 * 3600
MAX_WINDOW_THRESHOLD = 1000


_UNION_TAGS = frozenset(
    {"task", "choice", "parallel", "wait", "wait_for_event", "subworkflow", "succeed", "fail", "webhook", "kafka",
     "amqp", "kafka_window"}
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
    candidates += [(f"kpis[{index}].value", kpi.value) for index, kpi in enumerate(definition.kpis)]
    candidates += [(f"concurrency[{index}].key", limit.key) for index, limit in enumerate(definition.concurrency)]
    candidates += [("priority", definition.priority)] if definition.priority else []
    if definition.rate_limit is not None:
        candidates.append(("rate_limit.key", definition.rate_limit.key))
    if definition.debounce is not None:
        candidates.append(("debounce.key", definition.debounce.key))
    for index, trigger in enumerate(definition.triggers):
        candidates += [(f"triggers[{index}].{loc}", expr) for loc, expr in _trigger_expressions(trigger)]
    secrets_allowed: set[str] = set()  # task inputs: where secret('NAME') may stand
    for item in located:
        for loc, expr in _step_expressions(item.step):
            candidates.append((f"{item.location}.{loc}", expr))
            if isinstance(item.step, TaskStep) and loc.startswith("input"):
                secrets_allowed.add(f"{item.location}.{loc}")
    problems = []
    for location, expression in candidates:
        try:
            compile_expression(expression)
        except ExpressionError as exc:
            problems.append(Problem(location, str(exc)))
            continue
        if location not in secrets_allowed and (secret_call(expression) is not None or mentions_secret(expression)):
            problems.append(Problem(location, OUTSIDE_TASK))
    return problems + _secrets(located)


def _secrets(located: list[Located]) -> list[Problem]:
    """Malformed secret references in task steps (``schemas.secrets``)."""
    problems = []
    for item in located:
        step = item.step
        found = task_problems(step.config, step.input) if isinstance(step, TaskStep) else []
        problems += [Problem(f"{item.location}.{where}", message) for where, message in found]
    return problems


def _trigger_expressions(trigger: Trigger) -> list[tuple[str, str]]:
    if isinstance(trigger, WebhookTrigger):
        fields = {"idempotency_field": trigger.idempotency_field}
    elif isinstance(trigger, WindowTrigger):
        fields = {"filter": trigger.filter, "key": trigger.key, "input": trigger.input}
    elif isinstance(trigger, ScheduleTrigger):
        fields = {"input": trigger.input}
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
        if isinstance(step, TaskStep) and step.connector == "python":
            problems += [Problem(*found) for found in isolation_problems(step.config, f"{item.location}.config")]
    return problems


# -- loops that never wait ------------------------------------------------------------------------

_WAITING = (TaskStep, WaitForEventStep, SubworkflowStep)


def _never_waits(step: Step) -> bool:
    """A step the machine passes through within one decision, changing nothing a choice reads:
    a choice, a zero-second wait, or a parallel step none of whose branches can wait."""
    if isinstance(step, ChoiceStep):
        return True
    if isinstance(step, WaitStep):
        return step.until is None and step.seconds == 0
    if isinstance(step, ParallelStep):
        inner = [item.step for branch in step.branches for item in iter_steps(branch.steps)]
        return not any(isinstance(s, _WAITING) or (isinstance(s, WaitStep) and not _never_waits(s)) for s in inner)
    return False


def _spinning_loops(located: list[Located]) -> list[Problem]:
    """Cycles made only of steps that never wait: the context a choice reads never changes in
    them, so an execution that enters one goes round forever."""
    where = {item.step.name: item.location for item in located}
    order = {item.step.name: index for index, item in enumerate(located)}
    edges = {
        item.step.name: sorted({t for _, t in references(item.step)}, key=lambda n: order.get(n, 0))
        for item in located
        if _never_waits(item.step)
    }
    alive = set(edges)
    problems: list[Problem] = []
    while True:
        changed = True
        while changed:  # drop steps that cannot go round: no way on to a step still in play
            stuck = {name for name in alive if not any(t in alive for t in edges[name])}
            alive -= stuck
            changed = bool(stuck)
        if not alive:
            return problems
        path = [min(alive, key=order.__getitem__)]
        while path.count(path[-1]) < 2:
            path.append(next(t for t in edges[path[-1]] if t in alive))
        loop = path[path.index(path[-1]) :]
        first = min(loop[:-1], key=order.__getitem__)
        shown = " -> ".join(repr(name) for name in loop)
        problems.append(
            Problem(
                where[first],
                f"the loop {shown} never waits or runs a task: an execution that enters it would "
                "go round forever (add a task, a wait of more than 0 s or a wait_for_event step)",
            )
        )
        alive -= set(loop)


# -- the input schema -----------------------------------------------------------------------------

_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})  # values, not schemas
_NAMED_SCHEMAS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})


def _input_schema(schema: dict[str, Any]) -> list[Problem]:
    cls = jsonschema.validators.validator_for(schema)
    meta = cls(cls.META_SCHEMA)
    problems = [
        Problem(
            "input_schema" + "".join(f"[{part!r}]" for part in error.path),
            f"not a valid JSON Schema: {error.message}",
        )
        for error in sorted(meta.iter_errors(schema), key=lambda e: [str(p) for p in e.path])
    ]
    return problems or _schema_refs(schema)


def _walk_schema(value: Any, path: str = "input_schema", names: bool = False) -> Iterator[tuple[str, str, Any]]:
    """(location, keyword, value) of every keyword in every (sub)schema; ``names``: ``value``
    maps names to schemas (``properties``), so none of its keys is a keyword."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_schema(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}[{key!r}]"
            if names:
                yield from _walk_schema(item, where)
                continue
            yield where, key, item
            if key not in _DATA_KEYWORDS:
                yield from _walk_schema(item, where, key in _NAMED_SCHEMAS)


def _schema_refs(schema: dict[str, Any]) -> list[Problem]:
    """References must stay inside the schema (``#...``) and point at something: a remote one
    (``https:``, ``file:``, a relative file) would be fetched, or fail, at the first start."""
    keywords = list(_walk_schema(schema))
    nested_ids = any(key == "$id" and loc != "input_schema['$id']" for loc, key, _ in keywords)
    anchors = {item for _, key, item in keywords if key in ("$anchor", "$dynamicAnchor")}
    problems = []
    for location, key, ref in keywords:
        if key not in _REF_KEYWORDS or not isinstance(ref, str):
            continue
        if not ref.startswith("#"):
            problems.append(Problem(location, f"only local references ('#/...') are allowed, not {ref!r}"))
        elif not nested_ids and not _resolves(schema, ref[1:], anchors):
            problems.append(Problem(location, f"{ref!r} points at nothing in the input schema"))
    return problems


def _resolves(schema: Any, fragment: str, anchors: set[Any]) -> bool:
    if fragment and not fragment.startswith("/"):
        return unquote(fragment) in anchors
    target = schema
    for raw in fragment.split("/")[1:]:
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return False
    return True


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
        if signature and signature.timestamp_header and signature.preset != "generic":
            problems.append(
                Problem(f"triggers[{i}].signature.timestamp_header", "only the generic preset takes 'timestamp_header'")
            )
        if isinstance(trigger, WindowTrigger):
            problems += _window(f"triggers[{i}]", trigger)
        if isinstance(trigger, ScheduleTrigger):
            problems += _schedule(f"triggers[{i}]", trigger)
    return problems


MIN_EVERY_SECONDS = 1.0
MAX_CATCHUP_WINDOW = 366 * 86_400.0


def _schedule(location: str, trigger: ScheduleTrigger) -> list[Problem]:
    """A schedule needs exactly one of cron and every, a known zone and readable durations."""
    # Imported here: croniter loads dateutil, which imports subprocess, and every module that
    # imports ``schemas`` (the pure core too) would load it.
    from schemas.schedule_times import check_cron, parse_duration, parse_timezone

    problems = []
    if (trigger.cron is None) == (trigger.every is None):
        problems.append(Problem(location, "a schedule trigger needs exactly one of 'cron' or 'every'"))
    if trigger.cron is not None:
        try:
            check_cron(trigger.cron)
        except ValueError as exc:
            problems.append(Problem(f"{location}.cron", str(exc)))
    if trigger.every is not None:
        try:
            every = parse_duration(trigger.every, "every")
            if every < MIN_EVERY_SECONDS:
                problems.append(Problem(f"{location}.every", f"must be at least {MIN_EVERY_SECONDS:g}s, not {every:g}s"))
        except ValueError as exc:
            problems.append(Problem(f"{location}.every", str(exc)))
    try:
        parse_timezone(trigger.timezone)
    except ValueError as exc:
        problems.append(Problem(f"{location}.timezone", str(exc)))
    for name, limit in (("jitter", 86_400.0), ("catchup_window", MAX_CATCHUP_WINDOW)):
        try:
            seconds = parse_duration(getattr(trigger, name), name)
            if seconds > limit:
                problems.append(Problem(f"{location}.{name}", f"must be at most {limit:g}s, not {seconds:g}s"))
        except ValueError as exc:
            problems.append(Problem(f"{location}.{name}", str(exc)))
    if trigger.start_at is not None and trigger.end_at is not None and trigger.end_at <= trigger.start_at:
        problems.append(Problem(f"{location}.end_at", "must be after start_at"))
    return problems


def _window(location: str, trigger: WindowTrigger) -> list[Problem]:
    """Sizes the windowed trigger cannot run (see the constants above)."""
    problems = []
    seconds = trigger.window_seconds
    if not math.isfinite(seconds) or not MIN_WINDOW_SECONDS <= seconds <= MAX_WINDOW_SECONDS:
        problems.append(
            Problem(
                f"{location}.window_seconds",
                f"must be from {MIN_WINDOW_SECONDS} (windows start on whole seconds) to "
                f"{MAX_WINDOW_SECONDS} (31 days), not {seconds:g}",
            )
        )
    if trigger.threshold > MAX_WINDOW_THRESHOLD:
        problems.append(
            Problem(
                f"{location}.threshold",
                f"must be at most {MAX_WINDOW_THRESHOLD} (each window keeps the identity of every "
                f"message it counts), not {trigger.threshold}",
            )
        )
    return problems
