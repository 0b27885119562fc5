"""Commands and step tasks as CloudEvents-style JSON bytes, the form they take on Kafka. Pure: no I/O.

A command becomes ``{"specversion": "1.0", "type": "io.orchestrator.command.<Class>", "id":
<command_id>, "subject": <execution_id>, "time": ..., "data": {<other fields>}}``; a task the same
with type ``io.orchestrator.task.StepTask`` and its attempt id as ``id``. Nested dataclasses
(``ErrorInfo``, ``ParentRef``) are plain objects in ``data``. Unknown ``data`` members are ignored
(a newer writer may add optional fields); a missing or mistyped one is a ``CodecError``.

Every record carries ``schemaversion``; a record newer than this code is a ``CodecError``.
Version 2 (this one) adds ``tenant`` and ``actor`` to a task's ``data``, and requires ``tenant``
there; a version-1 task (written before) still decodes, as tenant ``default`` and no actor.
A version-1 reader rejects version-2 records, so a deployment replaces all of its old workers
rather than mixing the two.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
import uuid
from typing import Any, TypeVar

from orchestrator.core.commands import (
    AdmitExecution,
    CancelExecution,
    ChildFinished,
    Command,
    CompleteStep,
    DebounceStart,
    DeliverEvent,
    FailStep,
    FireTimer,
    RefuseAdmission,
    ResumeExecution,
    StartExecution,
)
from orchestrator.core.timefmt import rfc3339
from orchestrator.ports import StepTask
from schemas import strict_json

SPEC_VERSION = "1.0"
SCHEMA_VERSION = 2
TASK_TENANT_SINCE = 2  # the schema version from which a task carries its tenant and actor
SOURCE = "/orchestrator"
COMMAND_PREFIX = "io.orchestrator.command."
TASK_TYPE = "io.orchestrator.task.StepTask"
COMMAND_TYPES: dict[str, type[Command]] = {
    cls.__name__: cls
    for cls in (
        StartExecution,
        CompleteStep,
        FailStep,
        FireTimer,
        DeliverEvent,
        ChildFinished,
        CancelExecution,
        ResumeExecution,
        AdmitExecution,
        RefuseAdmission,
        DebounceStart,
    )
}
# Our own records nest step outputs and arguments (each at most RESULT_DEPTH levels) a few levels
# in; far deeper bytes are not ours, and would raise RecursionError in the parser.
RECORD_DEPTH = 4 * strict_json.MAX_DEPTH
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
C = TypeVar("C", bound=Command)
T = TypeVar("T")


class CodecError(ValueError):
    """Bytes that are not a command or task this code understands, or a value JSON cannot hold."""


def with_command_id(command: C) -> C:
    """The command with a fresh ``command_id`` if it has none, so every redelivery carries the same one."""
    if command.command_id:
        return command
    return dataclasses.replace(command, command_id=str(uuid.uuid4()))


def encode_command(command: Command) -> bytes:
    command = with_command_id(command)
    name = type(command).__name__
    if COMMAND_TYPES.get(name) is not type(command):
        raise CodecError(f"no codec for command type {name}")
    data = _fields(command, skip=("execution_id", "command_id"))
    return _encode(COMMAND_PREFIX + name, command.command_id, command.execution_id, command.now, data)


def decode_command(raw: bytes) -> Command:
    event = _load(raw)
    kind = event["type"]
    cls = COMMAND_TYPES.get(kind.removeprefix(COMMAND_PREFIX)) if kind.startswith(COMMAND_PREFIX) else None
    if cls is None:
        raise CodecError(f"unknown command type {kind!r}")
    return _build(cls, {**event["data"], "execution_id": event["subject"], "command_id": event["id"]})


def encode_task(task: StepTask) -> bytes:
    data = _fields(task, skip=("execution_id", "attempt_id"))
    return _encode(TASK_TYPE, task.attempt_id, task.execution_id, None, data)


def decode_task(raw: bytes) -> StepTask:
    event = _load(raw)
    if event["type"] != TASK_TYPE:
        raise CodecError(f"unknown task type {event['type']!r}")
    if event["schemaversion"] >= TASK_TENANT_SINCE and "tenant" not in event["data"]:
        raise CodecError(f"a version {event['schemaversion']} task must carry its tenant")
    return _build(StepTask, {**event["data"], "execution_id": event["subject"], "attempt_id": event["id"]})


# -- internals ------------------------------------------------------------------------------


def _fields(value: Any, skip: tuple[str, ...]) -> dict[str, Any]:
    return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in skip}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _encode(kind: str, event_id: str | None, subject: str, now: float | None, data: dict[str, Any]) -> bytes:
    event: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "type": kind,
        "source": SOURCE,
        "id": event_id,
        "subject": subject,
    }
    if now is not None:
        event["time"] = rfc3339(now)
    event.update(datacontenttype="application/json", schemaversion=SCHEMA_VERSION, data=data)
    try:
        return _dumps(event).encode()
    except (TypeError, ValueError, RecursionError) as exc:  # NaN, an unpaired surrogate, ...
        raise CodecError(f"{kind} for {subject} cannot be encoded as JSON: {exc}") from None


def _load(raw: bytes) -> dict[str, Any]:
    try:
        event = strict_json.loads(raw, max_depth=RECORD_DEPTH)
    except strict_json.StrictJSONError as exc:
        raise CodecError(f"not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise CodecError("not a JSON object")
    if event.get("specversion") != SPEC_VERSION:
        raise CodecError(f"specversion {event.get('specversion')!r} is not {SPEC_VERSION}")
    version = event.setdefault("schemaversion", 1)  # the first records might not have said
    if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
        raise CodecError(f"schemaversion {version!r} is newer than this code ({SCHEMA_VERSION})")
    for name, kind in (("type", str), ("id", str), ("subject", str), ("data", dict)):
        if not isinstance(event.get(name), kind):
            raise CodecError(f"{name!r} is missing or not a {kind.__name__}")
    return event


def _build(cls: type[T], data: dict[str, Any]) -> T:
    """An instance of dataclass ``cls`` from JSON values, checking scalar types and nesting dataclasses."""
    values: dict[str, Any] = {}
    for check in _plan(cls):
        name = check.name
        if name not in data:
            continue  # a default fills it, or the constructor reports it missing
        value = data[name]
        if check.nested is not None and isinstance(value, dict):
            value = _build(check.nested, value)
        elif not check.fits(value):
            raise CodecError(f"{cls.__name__}.{name}: {value!r} does not fit {check.hint}")
        values[name] = value
    try:
        return cls(**values)
    except TypeError as exc:
        raise CodecError(f"{cls.__name__}: {exc}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class _FieldCheck:
    """What one field's type hint accepts, worked out once per class: scalars (a bool only
    where ``bool`` is named, an int also where ``float`` is), dicts, lists and None are checked;
    anything else (``Any``, ``Literal``, ...) passes."""

    name: str
    hint: Any
    nested: type | None  # the dataclass a dict value is built into
    anything: bool  # ``Any``, or an arm this codec does not check
    none: bool
    bool_: bool
    types: tuple[type, ...]  # what a value that is not None and not a bool must be an instance of

    @classmethod
    def of(cls, name: str, hint: Any) -> _FieldCheck:
        anything = none = bool_ = False
        types: list[type] = []
        for arm in _arms(hint):
            origin = typing.get_origin(arm) or arm
            if arm is Any:
                anything = True
            elif arm is type(None):
                none = True
            elif origin is bool:
                bool_ = True
            elif origin in _SCALARS:
                types.extend(_SCALARS[origin])
            elif origin in (dict, list):
                types.append(origin)
            elif not (isinstance(origin, type) and dataclasses.is_dataclass(origin)):
                anything = True
        return cls(name, hint, _nested(hint), anything, none, bool_, tuple(types))

    def fits(self, value: Any) -> bool:
        if self.anything:
            return True
        if value is None:
            return self.none
        if isinstance(value, bool):
            return self.bool_
        return isinstance(value, self.types)


_HINTS: dict[type, dict[str, Any]] = {}
_PLANS: dict[type, tuple[_FieldCheck, ...]] = {}
_SCALARS: dict[Any, tuple[type, ...]] = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}


def _plan(cls: type) -> tuple[_FieldCheck, ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = tuple(_FieldCheck.of(name, hint) for name, hint in _hints(cls).items())
    return plan


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        resolved = typing.get_type_hints(cls)
        hints = _HINTS[cls] = {f.name: resolved[f.name] for f in dataclasses.fields(cls) if f.init}
    return hints


def _arms(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _nested(hint: Any) -> type | None:
    for arm in _arms(hint):
        if isinstance(arm, type) and dataclasses.is_dataclass(arm):
            return arm
    return None
