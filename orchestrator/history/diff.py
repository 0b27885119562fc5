"""Compare two executions: their histories event by event, and their final (or current) states.

Pure: takes the two recorded histories (stored envelopes or the CloudEvent dicts the REST API
returns) and gives a structured :class:`ExecutionDiff` with ``to_dict()`` and ``render()``.
No I/O; ``Runtime.diff_executions`` reads the histories.

Histories are aligned by sequence number. Two executions of the same workflow never match byte
for byte, so what is *naturally* different is left out of the comparison:

- envelope attributes: ``id``, ``subject``, ``time``, ``chainhash``, ``causationid``, ``actor``
  (only ``type`` and ``data`` are compared; the step is read from ``data``);
- ids derived from the execution id: ``data.execution_id``, ``data.child_id``,
  ``data.parent.execution_id``, and the execution id inside any string (e.g. the
  ``idempotency_key`` ``<execution>:<step>:<visit>``), which reads as ``<execution>`` (ids
  shorter than 8 characters are not looked for: they would match step names and the like);
- start dedup keys (``data.dedup_key``), which are unique per execution by construction;
- absolute times: ``data.due``, ``data.deadline`` and ``data.retry.due`` (timers, deadlines);
- measurements: ``data.resources`` (what an attempt used: wall and CPU time, memory, bytes).

Only those exact paths are skipped: a ``due`` field inside a step's output is compared.

Paths name the place that differs, e.g. ``data.args.order.total`` or ``steps.charge[0].id``.

The answer is bounded, however long the histories: ``Runtime.diff_executions`` compares the first
``MAX_DIFF_EVENTS`` events of each, and at most ``MAX_EVENT_DIFFS`` differing events,
``MAX_TAIL`` events of each tail and ``MAX_CHANGES`` changes per list are shown, each value at most
``MAX_VALUE_CHARS`` characters of JSON. Whatever was left out, ``truncated`` is true and
``truncation`` says what (the counts stay exact for what was compared).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.events import Event
from orchestrator.core.state import ExecutionState, HistoryError, fold
from schemas.envelope import TYPE_PREFIX

# Paths (in an event) that differ between any two executions by construction.
IGNORED_PATHS = frozenset(
    {
        "data.execution_id",
        "data.child_id",
        "data.dedup_key",
        "data.parent.execution_id",
        "data.due",
        "data.deadline",
        "data.retry.due",
        "data.resources",
    }
)
EXECUTION_PLACEHOLDER = "<execution>"
MIN_EMBEDDED_ID = 8  # shorter ids are not looked for in strings: they would match step names
STATE_FIELDS = ("status", "input", "output", "error")
MAX_EVENT_DIFFS = 200  # events with differences kept in the result (the count is always exact)
MAX_DIFF_EVENTS = 10_000  # events of each history compared (Runtime.diff_executions reads no more)
MAX_TAIL = 200  # events listed of the part only one history has
MAX_CHANGES = 100  # changes listed per event, per state field list and per step
MAX_VALUE_CHARS = 1000  # a longer value (as JSON) is shown as its clipped JSON text
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MISSING: Any = object()


# -- values and paths ---------------------------------------------------------------------------


def json_path(base: str, key: str | int) -> str:
    """``base.key``, ``base[3]``, or ``base["odd key"]`` for keys that are not identifiers."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    if _IDENTIFIER.match(key):
        return f"{base}.{key}" if base else key
    return f"{base}[{json.dumps(key)}]"


@dataclass(frozen=True, slots=True)
class Change:
    """One value that differs: ``kind`` is ``added`` (only in b), ``removed`` (only in a) or ``changed``."""

    path: str
    kind: str
    a: Any = None
    b: Any = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"path": self.path, "kind": self.kind}
        if self.kind != "added":
            body["a"] = self.a
        if self.kind != "removed":
            body["b"] = self.b
        return body


def deep_changes(a: Any, b: Any, path: str, ignore: frozenset[str] = frozenset()) -> list[Change]:
    """Every difference between two JSON-like values (the paths in ``ignore`` are skipped)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        found: list[Change] = []
        for key in sorted(set(a) | set(b), key=str):
            where = json_path(path, str(key))
            if where in ignore:
                continue
            left, right = a.get(key, _MISSING), b.get(key, _MISSING)
            if left is _MISSING:
                found.append(Change(where, "added", b=right))
            elif right is _MISSING:
                found.append(Change(where, "removed", a=left))
            else:
                found += deep_changes(left, right, where, ignore)
        return found
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        found = []
        for index in range(max(len(a), len(b))):
            where = json_path(path, index)
            if index >= len(a):
                found.append(Change(where, "added", b=b[index]))
            elif index >= len(b):
                found.append(Change(where, "removed", a=a[index]))
            else:
                found += deep_changes(a[index], b[index], where, ignore)
        return found
    if _same(a, b):
        return []
    return [Change(path, "changed", a, b)]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _scrub(value: Any, execution_id: str) -> Any:
    """The value with the execution id inside strings replaced by a placeholder."""
    if isinstance(value, Mapping):
        return {str(k): _scrub(v, execution_id) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item, execution_id) for item in value]
    if isinstance(value, str) and len(execution_id) >= MIN_EMBEDDED_ID and execution_id in value:
        return value.replace(execution_id, EXECUTION_PLACEHOLDER)
    return value


def _clipped(value: Any) -> tuple[Any, bool]:
    """The value, or its JSON text clipped to MAX_VALUE_CHARS (and True) when longer."""
    if value is None or isinstance(value, bool | int | float):
        return value, False
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    if len(text) <= MAX_VALUE_CHARS:
        return value, False
    return text[: MAX_VALUE_CHARS - 3] + "...", True


@dataclass(frozen=True, slots=True)
class Listed:
    """At most MAX_CHANGES changes, values clipped; what was left out is counted."""

    changes: tuple[Change, ...]
    omitted: int = 0  # changes not listed
    clipped: int = 0  # values shown clipped

    @classmethod
    def of(cls, changes: Sequence[Change]) -> Listed:
        kept, clipped = [], 0
        for change in changes[:MAX_CHANGES]:
            a, clip_a = _clipped(change.a)
            b, clip_b = _clipped(change.b)
            clipped += clip_a + clip_b
            kept.append(Change(change.path, change.kind, a, b) if clip_a or clip_b else change)
        return cls(tuple(kept), max(len(changes) - MAX_CHANGES, 0), clipped)


# -- histories ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Recorded:
    sequence: int
    type: str
    data: Any

    @property
    def step(self) -> str | None:
        step = self.data.get("step") if isinstance(self.data, Mapping) else None
        return step if isinstance(step, str) else None


def _normalize(events: Iterable[Any]) -> list[_Recorded]:
    """Envelopes or CloudEvent dicts as (sequence, short type, data), in sequence order."""
    found = []
    for event in events:
        if isinstance(event, Mapping):
            sequence, type_, data = (
                int(event.get("sequence", 0)),
                str(event.get("type", "")),
                event.get("data"),
            )
        else:
            sequence, type_, data = event.sequence, event.type, event.data
        found.append(_Recorded(sequence, type_.removeprefix(TYPE_PREFIX), data))
    return sorted(found, key=lambda e: e.sequence)


@dataclass(frozen=True, slots=True)
class EventDiff:
    """The events at one sequence of both histories, and how they differ."""

    sequence: int
    type_a: str
    type_b: str
    step_a: str | None
    step_b: str | None
    changes: tuple[Change, ...] = ()
    omitted: int = 0  # more changes than listed
    clipped: int = 0  # values shown clipped

    def to_dict(self) -> dict[str, Any]:
        body = {
            "sequence": self.sequence,
            "type": {"a": self.type_a, "b": self.type_b},
            "step": {"a": self.step_a, "b": self.step_b},
            "changes": [change.to_dict() for change in self.changes],
        }
        if self.omitted:
            body["changes_omitted"] = self.omitted
        return body


@dataclass(frozen=True, slots=True)
class Tail:
    """An event that only one history has (it is longer)."""

    sequence: int
    type: str
    step: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "type": self.type, "step": self.step}


@dataclass(frozen=True, slots=True)
class HistoryDiff:
    length_a: int
    length_b: int
    same_types: bool  # the same event types in the same order (and the same length)
    first_type_divergence: int | None  # first sequence whose types differ, or where one ended
    first_divergence: int | None  # first sequence with any difference (None: identical)
    differing: int  # aligned sequences with any difference
    events: tuple[EventDiff, ...]  # the first MAX_EVENT_DIFFS of them
    only_in_a: tuple[Tail, ...]  # the first MAX_TAIL of them
    only_in_b: tuple[Tail, ...]
    tail_a: int = 0  # how many events only a has (listed or not)
    tail_b: int = 0

    @property
    def identical(self) -> bool:
        return self.first_divergence is None

    def truncation(self) -> list[str]:
        """What the lists leave out, in words (empty: nothing)."""
        notes = []
        if self.differing > len(self.events):
            notes.append(f"the first {len(self.events)} of {self.differing} differing events are listed")
        for name, listed, count in (("a", self.only_in_a, self.tail_a), ("b", self.only_in_b, self.tail_b)):
            if count > len(listed):
                notes.append(f"the first {len(listed)} of {count} events only in {name} are listed")
        omitted = sum(event.omitted for event in self.events)
        if omitted:
            notes.append(f"{omitted} changes of the listed events are not shown (at most {MAX_CHANGES} per event)")
        clipped = sum(event.clipped for event in self.events)
        if clipped:
            notes.append(f"{clipped} values longer than {MAX_VALUE_CHARS} characters of JSON are clipped")
        return notes

    def to_dict(self) -> dict[str, Any]:
        return {
            "length": {"a": self.length_a, "b": self.length_b},
            "identical": self.identical,
            "same_types": self.same_types,
            "first_type_divergence": self.first_type_divergence,
            "first_divergence": self.first_divergence,
            "differing_events": self.differing,
            "events": [event.to_dict() for event in self.events],
            "only_in_a": [tail.to_dict() for tail in self.only_in_a],
            "only_in_b": [tail.to_dict() for tail in self.only_in_b],
            "only_in": {"a": self.tail_a, "b": self.tail_b},  # counts, listed or not
        }


def diff_histories(
    a_events: Iterable[Any], b_events: Iterable[Any], a_id: str = "", b_id: str = ""
) -> HistoryDiff:
    """Align two histories by sequence and compare each pair (type, step and data)."""
    a, b = _normalize(a_events), _normalize(b_events)
    by_b = {event.sequence: event for event in b}
    diffs: list[EventDiff] = []
    first_type: int | None = None
    first_any: int | None = None
    differing = 0
    for left in a:
        right = by_b.get(left.sequence)
        if right is None:
            continue
        changes = tuple(
            deep_changes(_scrub(left.data, a_id), _scrub(right.data, b_id), "data", IGNORED_PATHS)
        )
        type_differs = left.type != right.type
        if not (type_differs or changes):
            continue
        differing += 1
        if type_differs and first_type is None:
            first_type = left.sequence
        if first_any is None:
            first_any = left.sequence
        if len(diffs) < MAX_EVENT_DIFFS:
            listed = Listed.of(changes)
            diffs.append(
                EventDiff(
                    left.sequence, left.type, right.type, left.step, right.step,
                    listed.changes, listed.omitted, listed.clipped,
                )
            )  # fmt: skip
    a_sequences = {event.sequence for event in a}
    only_a = [Tail(e.sequence, e.type, e.step) for e in a if e.sequence not in by_b]
    only_b = [Tail(e.sequence, e.type, e.step) for e in b if e.sequence not in a_sequences]
    ended = min((tail.sequence for tail in (*only_a[:1], *only_b[:1])), default=None)
    if ended is not None:
        first_type = ended if first_type is None else min(first_type, ended)
        first_any = ended if first_any is None else min(first_any, ended)
    return HistoryDiff(
        length_a=len(a),
        length_b=len(b),
        same_types=first_type is None,
        first_type_divergence=first_type,
        first_divergence=first_any,
        differing=differing,
        events=tuple(diffs),
        only_in_a=tuple(only_a[:MAX_TAIL]),
        only_in_b=tuple(only_b[:MAX_TAIL]),
        tail_a=len(only_a),
        tail_b=len(only_b),
    )


# -- states ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateDiff:
    """Status, input, output and error, and the per-step outputs, of two states."""

    changes: tuple[Change, ...]  # status/input/output/error, by path
    steps_added: tuple[str, ...]  # steps with an output only in b
    steps_removed: tuple[str, ...]  # steps with an output only in a
    steps_changed: dict[str, tuple[Change, ...]] = field(default_factory=dict)
    omitted: int = 0  # changes not listed (at most MAX_CHANGES per list)
    clipped: int = 0  # values shown clipped

    @property
    def identical(self) -> bool:
        return not (self.changes or self.steps_added or self.steps_removed or self.steps_changed)

    def truncation(self) -> list[str]:
        notes = []
        if self.omitted:
            notes.append(f"{self.omitted} state changes are not shown (at most {MAX_CHANGES} per list)")
        if self.clipped:
            notes.append(f"{self.clipped} state values longer than {MAX_VALUE_CHARS} characters are clipped")
        return notes

    def to_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "changes": [change.to_dict() for change in self.changes],
            "steps": {
                "added": list(self.steps_added),
                "removed": list(self.steps_removed),
                "changed": {
                    name: [change.to_dict() for change in changes]
                    for name, changes in self.steps_changed.items()
                },
            },
        }


def diff_states(a: Mapping[str, Any], b: Mapping[str, Any], a_id: str = "", b_id: str = "") -> StateDiff:
    """Compare two ``ExecutionState.to_dict()`` values."""
    left, right = _scrub(a, a_id), _scrub(b, b_id)
    changes: list[Change] = []
    for name in STATE_FIELDS:
        changes += deep_changes(left.get(name), right.get(name), name)
    listed = [Listed.of(changes)]
    steps_a, steps_b = left.get("steps") or {}, right.get("steps") or {}
    changed: dict[str, tuple[Change, ...]] = {}
    for name in sorted(set(steps_a) & set(steps_b)):
        found = deep_changes(steps_a[name], steps_b[name], json_path("steps", name))
        if found:
            listed.append(Listed.of(found))
            changed[name] = listed[-1].changes
    return StateDiff(
        changes=listed[0].changes,
        steps_added=tuple(sorted(set(steps_b) - set(steps_a))),
        steps_removed=tuple(sorted(set(steps_a) - set(steps_b))),
        steps_changed=changed,
        omitted=sum(item.omitted for item in listed),
        clipped=sum(item.clipped for item in listed),
    )


# -- both -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Side:
    """Who one side of the comparison is."""

    execution_id: str
    workflow: str
    version: int
    status: str
    events: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "workflow": self.workflow,
            "version": self.version,
            "status": self.status,
            "events": self.events,
        }


@dataclass(frozen=True, slots=True)
class ExecutionDiff:
    a: Side
    b: Side
    history: HistoryDiff
    state: StateDiff
    notes: tuple[str, ...] = ()  # what was not compared (histories longer than compared)

    @property
    def identical(self) -> bool:
        """No difference found; with a truncated history, none in what was compared (and the
        lengths and states agree)."""
        return self.history.identical and self.state.identical and self.a.events == self.b.events

    def truncation(self) -> list[str]:
        """What the answer leaves out, in words (empty: it is complete)."""
        return [*self.notes, *self.history.truncation(), *self.state.truncation()]

    def to_dict(self) -> dict[str, Any]:
        truncation = self.truncation()
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "identical": self.identical,
            "truncated": bool(truncation),
            "truncation": truncation,
            "history": self.history.to_dict(),
            "state": self.state.to_dict(),
        }

    def render(self) -> list[str]:
        return render(self.to_dict())


def diff_executions(
    a_id: str,
    a_events: Sequence[Any],
    b_id: str,
    b_events: Sequence[Any],
    *,
    totals: tuple[int, int] | None = None,
    states: tuple[ExecutionState, ExecutionState] | None = None,
) -> ExecutionDiff:
    """Compare two recorded executions. ``a_events``/``b_events`` may be the first events of
    longer histories: ``totals`` are then their lengths and ``states`` their current states
    (else the states are folded from the events given)."""
    a_state, b_state = states or (_fold(a_events, a_id), _fold(b_events, b_id))
    a_total, b_total = totals or (len(a_events), len(b_events))
    notes = tuple(
        f"compared the first {len(events)} of the {total} events of {name} (at most {MAX_DIFF_EVENTS})"
        for name, events, total in (("a", a_events, a_total), ("b", b_events, b_total))
        if total > len(events)
    )
    return ExecutionDiff(
        a=_side(a_id, a_state, a_total),
        b=_side(b_id, b_state, b_total),
        history=diff_histories(a_events, b_events, a_id, b_id),
        state=diff_states(a_state.to_dict(), b_state.to_dict(), a_id, b_id),
        notes=notes,
    )


def _fold(events: Sequence[Any], execution_id: str) -> ExecutionState:
    state = fold(Event(e.type, e.data if isinstance(e.data, dict) else {}) for e in _normalize(events))
    if state is None:
        raise HistoryError(f"execution {execution_id} has no events")
    return state


def _side(execution_id: str, state: ExecutionState, events: int) -> Side:
    return Side(execution_id, state.workflow, state.version, state.status, events)


# -- rendering ------------------------------------------------------------------------------------


def _value(value: Any, width: int = 60) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def change_line(change: Mapping[str, Any]) -> str:
    """``path: a -> b``, ``path: added b`` or ``path: removed (was a)``."""
    path, kind = change.get("path"), change.get("kind")
    if kind == "added":
        return f"{path}: added {_value(change.get('b'))}"
    if kind == "removed":
        return f"{path}: removed (was {_value(change.get('a'))})"
    return f"{path}: {_value(change.get('a'))} -> {_value(change.get('b'))}"


def _who(side: Mapping[str, Any]) -> str:
    return (
        f"{side.get('execution_id')} ({side.get('workflow')} v{side.get('version')}, "
        f"{side.get('status')}, {side.get('events')} events)"
    )


def _step_label(type_: Any, step: Any) -> str:
    return f"{type_}({step})" if step else str(type_)


def render(diff: Mapping[str, Any]) -> list[str]:
    """Lines for humans, from ``ExecutionDiff.to_dict()`` (so the CLI renders the API's answer)."""
    a, b = diff.get("a") or {}, diff.get("b") or {}
    history, state = diff.get("history") or {}, diff.get("state") or {}
    lines = [f"a: {_who(a)}", f"b: {_who(b)}"]
    lines += [f"truncated: {note}" for note in diff.get("truncation") or []]
    if diff.get("identical"):
        what = "in what was compared " if diff.get("truncated") else ""
        return [*lines, f"identical {what}(ignoring ids, times and dedup keys)"]
    lines.append("")
    if history.get("identical"):
        lines.append("history: identical")
    else:
        if history.get("same_types"):
            summary = "same event types"
        else:
            summary = f"event types differ from sequence {history.get('first_type_divergence')}"
        lines.append(
            f"history: {summary}; first divergence at sequence {history.get('first_divergence')}; "
            f"{history.get('differing_events')} aligned event(s) differ"
        )
        for event in history.get("events") or []:
            types, steps = event.get("type") or {}, event.get("step") or {}
            left = _step_label(types.get("a"), steps.get("a"))
            right = _step_label(types.get("b"), steps.get("b"))
            lines.append(f"  {event.get('sequence')}: {left}" + (f" | {right}" if left != right else ""))
            lines += [f"      {change_line(change)}" for change in event.get("changes") or []]
        for name in ("a", "b"):
            tail = history.get(f"only_in_{name}") or []
            if tail:
                lines.append(f"  only in {name}:")
                lines += [
                    f"    {t.get('sequence')}: {_step_label(t.get('type'), t.get('step'))}" for t in tail
                ]
    if state.get("identical"):
        lines.append("state: identical")
        return lines
    lines.append("state:")
    lines += [f"  {change_line(change)}" for change in state.get("changes") or []]
    steps = state.get("steps") or {}
    if steps.get("added"):
        lines.append(f"  steps only in b: {', '.join(steps['added'])}")
    if steps.get("removed"):
        lines.append(f"  steps only in a: {', '.join(steps['removed'])}")
    for changes in (steps.get("changed") or {}).values():
        lines += [f"  {change_line(change)}" for change in changes]
    return lines
