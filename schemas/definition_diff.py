"""Compare two versions of a workflow definition, with a compatibility hint for each change.

Pure. Steps are matched by name wherever they are nested (parallel branches included) and
compared field by field (``steps.charge.retry.max_attempts: 3 -> 5``); the workflow's own
fields (input schema, output, start, triggers, retention, ...) likewise.

**The compatibility rule.** The question is whether a recorded history (or a running execution,
were it moved to the new version) would be re-decided differently: ``orchestrator replay verify``
re-derives every decision of recorded histories with the new graph and compares the events it
decides with the recorded ones, *data included*. So a change is

- ``breaking`` when it changes a decision, or a recorded event, for every execution that reached
  the step: a removed step (histories name it), a changed type, ``next``/``default``/``start``,
  choice rules, the position of a step (its parallel branch, the first step of a branch), the
  number of branches, and every field the machine copies into an event when it enters the step:
  a task's ``connector``, ``config``, ``input`` and ``timeout_seconds`` (``StepScheduled``
  records ``timeout_seconds`` and a ``deadline``), a wait's ``seconds``/``until``, a
  wait_for_event's ``event``, ``correlation_key`` and ``timeout_seconds``, a subworkflow's
  ``workflow``, ``version`` and ``input``, succeed ``output``, fail ``error``/``cause``, and the
  workflow ``output`` (recorded in ``ExecutionSucceeded``). Unknown fields count as breaking.
- ``conditional`` when it only matters on a failure path: ``retry`` (whether and when a failed
  attempt is retried), ``on_error`` and ``on_timeout``. Histories where that step never failed
  (or timed out) replay the same; the others diverge. ``replay verify`` tells which.
- ``safe`` when no decision reads it: descriptions, triggers (they start executions; the history
  begins after the start), ``input_schema`` (checked before the start only; narrowing it rejects
  some new inputs but changes no recorded decision), ``retention``, branch names, a task's
  ``output`` mapping (the history holds the mapped output, which replay takes as recorded; new
  executions' later steps see the new shape), and an added step on its own (it is reached only
  through a reference, which is reported, and classified, separately).

So timeouts are *not* safe under replay, and retry counts are safe only for histories without
failures. Running executions are never affected in practice: each stays pinned to its version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.definition import ParallelStep, WorkflowDefinition
from schemas.graph import iter_steps

SAFE, CONDITIONAL, BREAKING = "safe", "conditional", "breaking"
LEVELS = (SAFE, CONDITIONAL, BREAKING)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MISSING: Any = object()

# Workflow fields: (impact, reason). Anything not listed is breaking (conservative).
WORKFLOW_FIELDS: dict[str, tuple[str, str]] = {
    "description": (SAFE, "documentation only"),
    "input_schema": (SAFE, "checked before the start only; recorded decisions do not read it"),
    "retention": (SAFE, "applies after an execution finished"),
    "provenance": (SAFE, "where the definition came from; no decision reads it"),
    "debounce": (SAFE, "read when a start is accepted; ExecutionStarted records its key and quiet period"),
    "output": (BREAKING, "ExecutionSucceeded records the workflow output"),
    "start": (BREAKING, "the first step every execution enters"),
    "concurrency": (BREAKING, "ExecutionQueued records the slots every start asks for"),
    "priority": (BREAKING, "ExecutionQueued records the priority"),
}
_REASONS = {
    "type": "the step kind decides every event of the step",
    "next": "the step after this one",
    "default": "the step a choice takes when no rule matches",
    "choices": "the path a choice takes",
    "connector": "recorded in StepScheduled",
    "config": "recorded in StepScheduled",
    "input": "the arguments recorded when the step is entered",
    "timeout_seconds": "recorded with its deadline when the step is entered",
    "seconds": "the due time recorded in TimerScheduled",
    "until": "the due time recorded in TimerScheduled",
    "event": "the event name recorded in EventAwaited",
    "correlation_key": "the key recorded in EventAwaited",
    "workflow": "recorded in ChildStarted",
    "version": "recorded in ChildStarted",
    "cause": "recorded in the failure",
    "error": "recorded in the failure",
    "retry": "decides whether and when a failed attempt is retried",
    "on_error": "the step taken after a final failure",
    "on_timeout": "the step taken after a timeout",
    "description": "documentation only",
}
_STEP_CONDITIONAL = frozenset({"retry", "on_error", "on_timeout"})
_STEP_SAFE = frozenset({"description"})


def _path(base: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    if _IDENTIFIER.match(key):
        return f"{base}.{key}" if base else key
    return f"{base}[{json.dumps(key)}]"


@dataclass(frozen=True, slots=True)
class DefinitionChange:
    """One difference: ``kind`` is ``added``, ``removed``, ``changed`` or ``moved`` (a step's place).

    ``impact``: see the module docstring.
    """

    path: str
    kind: str
    before: Any
    after: Any
    impact: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"path": self.path, "kind": self.kind}
        if self.kind != "added":
            body["from"] = self.before
        if self.kind != "removed":
            body["to"] = self.after
        body["impact"] = self.impact
        body["reason"] = self.reason
        return body


def _values(a: Any, b: Any, path: str) -> list[tuple[str, str, Any, Any]]:
    """(path, kind, before, after) of every leaf that differs."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        found = []
        for key in sorted(set(a) | set(b), key=str):
            left, right = a.get(key, _MISSING), b.get(key, _MISSING)
            where = _path(path, str(key))
            if left is _MISSING:
                found.append((where, "added", None, right))
            elif right is _MISSING:
                found.append((where, "removed", left, None))
            else:
                found += _values(left, right, where)
        return found
    if isinstance(a, list) and isinstance(b, list):
        found = []
        for index in range(max(len(a), len(b))):
            where = _path(path, index)
            if index >= len(a):
                found.append((where, "added", None, b[index]))
            elif index >= len(b):
                found.append((where, "removed", a[index], None))
            else:
                found += _values(a[index], b[index], where)
        return found
    same = a is b if isinstance(a, bool) or isinstance(b, bool) else a == b
    return [] if same else [(path, "changed", a, b)]


@dataclass(frozen=True, slots=True)
class _Placed:
    """A step, its body without nested steps, and where it sits."""

    name: str
    type: str
    body: dict[str, Any]
    scope: str  # "top level" or "parallel P branch N"
    branch_first: bool  # the first step of a parallel branch (the machine enters it first)


def _flatten(definition: WorkflowDefinition) -> dict[str, _Placed]:
    found: dict[str, _Placed] = {}
    for located in iter_steps(definition.steps):
        step = located.step
        body = step.model_dump(mode="json")
        if isinstance(step, ParallelStep):  # nested steps are compared by name on their own
            body["branches"] = [
                {"name": branch.name, "steps": [s.name for s in branch.steps]} for branch in step.branches
            ]
        scope = (
            "top level" if located.scope is None else f"parallel {located.scope[0]} branch {located.scope[1]}"
        )
        first = located.scope is not None and located.location.endswith(".steps[0]")
        found.setdefault(step.name, _Placed(step.name, step.type, body, scope, first))
    return found


def _step_impact(step_type: str, field: str, rest: str) -> tuple[str, str]:
    if field in _STEP_SAFE:
        return SAFE, _REASONS[field]
    if field in _STEP_CONDITIONAL:
        return CONDITIONAL, _REASONS[field] + " (matters only when the step fails)"
    if field == "output" and step_type == "task":
        return SAFE, "the history holds the mapped output; replay does not re-map it"
    if field == "output":
        return BREAKING, "recorded when the step succeeds"
    if field == "branches":
        if rest.endswith(".name"):
            return SAFE, "branch names are not recorded; branches are numbered"
        return BREAKING, "branches run in order and are recorded by index"
    return BREAKING, _REASONS.get(field, "read by the machine (unknown fields count as breaking)")


@dataclass(frozen=True, slots=True)
class DefinitionDiff:
    name: str
    from_version: int | None
    to_version: int | None
    changes: tuple[DefinitionChange, ...]
    steps_added: tuple[str, ...]
    steps_removed: tuple[str, ...]
    steps_changed: tuple[str, ...]
    renamed: tuple[tuple[str, str], ...]  # (old, new): a removed and an added step with the same body

    @property
    def identical(self) -> bool:
        return not self.changes

    @property
    def compatibility(self) -> str:
        """The worst impact of any change: ``safe`` (also when identical), ``conditional``, ``breaking``."""
        return max((c.impact for c in self.changes), key=LEVELS.index, default=SAFE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "from": self.from_version,
            "to": self.to_version,
            "identical": self.identical,
            "compatibility": self.compatibility,
            "steps": {
                "added": list(self.steps_added),
                "removed": list(self.steps_removed),
                "changed": list(self.steps_changed),
                "renamed": [{"from": old, "to": new} for old, new in self.renamed],
            },
            "changes": [change.to_dict() for change in self.changes],
        }

    def render(self) -> list[str]:
        return render(self.to_dict())


def diff_definitions(a: WorkflowDefinition, b: WorkflowDefinition) -> DefinitionDiff:
    """What changed from ``a`` to ``b``, each change with its impact on recorded executions."""
    changes: list[DefinitionChange] = []

    def add(path: str, kind: str, before: Any, after: Any, impact: tuple[str, str]) -> None:
        changes.append(DefinitionChange(path, kind, before, after, *impact))

    if a.name != b.name:
        add("name", "changed", a.name, b.name, (BREAKING, "another workflow"))
    dump_a = a.model_dump(mode="json", exclude={"name", "version", "steps", "triggers", "start"})
    dump_b = b.model_dump(mode="json", exclude={"name", "version", "steps", "triggers", "start"})
    for path, kind, before, after in _values(dump_a, dump_b, ""):
        field = path.split(".")[0].split("[")[0]
        add(path, kind, before, after, WORKFLOW_FIELDS.get(field, (BREAKING, "unknown workflow field")))
    start_a, start_b = a.start or a.steps[0].name, b.start or b.steps[0].name
    if start_a != start_b:
        add("start", "changed", start_a, start_b, WORKFLOW_FIELDS["start"])
    _diff_triggers(a, b, add)

    steps_a, steps_b = _flatten(a), _flatten(b)
    added = tuple(name for name in steps_b if name not in steps_a)
    removed = tuple(name for name in steps_a if name not in steps_b)
    changed: list[str] = []
    for name in removed:
        add(
            _path("steps", name),
            "removed",
            steps_a[name].type,
            None,
            (BREAKING, "recorded histories name it"),
        )
    for name in added:
        add(
            _path("steps", name),
            "added",
            None,
            steps_b[name].type,
            (SAFE, "reached only through a reference"),
        )
    for name, old in steps_a.items():
        new = steps_b.get(name)
        if new is None:
            continue
        before = len(changes)
        base = _path("steps", name)
        if old.type != new.type:
            add(f"{base}.type", "changed", old.type, new.type, (BREAKING, _REASONS["type"]))
        else:
            for path, kind, was, now in _values(old.body, new.body, base):
                rest = path[len(base) + 1 :]
                field = rest.split(".")[0].split("[")[0]
                add(path, kind, was, now, _step_impact(old.type, field, rest))
        if old.scope != new.scope:
            add(base, "moved", old.scope, new.scope, (BREAKING, "where it finishes: its scope"))
        elif old.branch_first != new.branch_first:
            where = {True: f"{old.scope}, first", False: f"{old.scope}, not first"}
            reason = (BREAKING, "a branch starts with its first step")
            add(base, "moved", where[old.branch_first], where[new.branch_first], reason)
        if len(changes) > before:
            changed.append(name)
    renamed = tuple(
        (old, new)
        for old in removed
        for new in added
        if steps_a[old].type == steps_b[new].type
        and {**steps_a[old].body, "name": ""} == {**steps_b[new].body, "name": ""}
    )
    return DefinitionDiff(
        name=b.name,
        from_version=a.version,
        to_version=b.version,
        changes=tuple(changes),
        steps_added=added,
        steps_removed=removed,
        steps_changed=tuple(changed),
        renamed=renamed,
    )


def _diff_triggers(a: WorkflowDefinition, b: WorkflowDefinition, add: Any) -> None:
    impact = (SAFE, "triggers start executions; recorded decisions do not read them")
    old = {t.name: t.model_dump(mode="json") for t in a.triggers}
    new = {t.name: t.model_dump(mode="json") for t in b.triggers}
    for name in old.keys() - new.keys():
        add(_path("triggers", name), "removed", old[name], None, impact)
    for name in new.keys() - old.keys():
        add(_path("triggers", name), "added", None, new[name], impact)
    for name in sorted(old.keys() & new.keys()):
        for path, kind, was, now in _values(old[name], new[name], _path("triggers", name)):
            add(path, kind, was, now, impact)


# -- rendering ------------------------------------------------------------------------------------


def _value(value: Any, width: int = 60) -> str:
    text = " ".join(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def render(diff: Mapping[str, Any]) -> list[str]:
    """Lines for humans, from ``DefinitionDiff.to_dict()`` (so the CLI renders the API's answer)."""
    head = f"{diff.get('name')} v{diff.get('from')} -> v{diff.get('to')}"
    changes = diff.get("changes") or []
    if not changes:
        return [f"{head}: identical"]
    lines = [f"{head}: {len(changes)} change(s); compatibility: {diff.get('compatibility')}"]
    marks = {"added": "+", "removed": "-", "changed": "~", "moved": ">"}
    for change in changes:
        kind = change.get("kind")
        if kind == "added":
            what = f"{change.get('path')}: added {_value(change.get('to'))}"
        elif kind == "removed":
            what = f"{change.get('path')}: removed (was {_value(change.get('from'))})"
        elif kind == "moved":
            what = f"{change.get('path')}: moved from {change.get('from')} to {change.get('to')}"
        else:
            what = f"{change.get('path')}: {_value(change.get('from'))} -> {_value(change.get('to'))}"
        lines.append(
            f"  {marks.get(str(kind), '?')} {what}  [{change.get('impact')}: {change.get('reason')}]"
        )
    steps = diff.get("steps") or {}
    for renamed in steps.get("renamed") or []:
        lines.append(f"  note: step {renamed.get('from')} looks renamed to {renamed.get('to')} (breaking)")
    return lines
