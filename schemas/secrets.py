"""Secret references in task steps: names that stand for values, which only the worker resolves.

Two forms, both naming a secret (``NAME``: a letter or ``_``, then letters, digits and ``_``):

- ``secret('NAME')`` as the whole expression of a value in a task step's ``input`` mapping
  (input values are expressions);
- ``{secret: NAME}``, a mapping whose only key is ``secret``, as a value anywhere in a task
  step's ``config`` (config values are literal). In an ``input`` mapping such a mapping is an
  ordinary object whose ``secret`` value is an expression, as before.

The machine never sees a value: evaluating a task's input turns each reference into the
reference value ``{"secret": "NAME"}``, and ``secret_paths`` lists, from the definition alone,
where in the arguments those references stand. Only there, and anywhere in ``config`` (static,
written by the definition's author), does the worker put the value. A ``{"secret": ...}``
object arriving in execution data is data: it is never resolved. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from schemas.expressions import compile_expression, evaluate

__all__ = [
    "NAME_PATTERN",
    "REFERENCE_KEY",
    "Path",
    "config_references",
    "evaluate_input",
    "mentions_secret",
    "reference",
    "reference_name",
    "secret_call",
    "secret_paths",
    "valid_name",
]

NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
REFERENCE_KEY = "secret"
_NAME = re.compile(NAME_PATTERN)
_CALL = re.compile(r"\s*secret\(\s*'(?P<name>[^']*)'\s*\)\s*")
Path = tuple[str | int, ...]


def valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def reference(name: str) -> dict[str, str]:
    """The reference value the machine records in place of a secret."""
    return {REFERENCE_KEY: name}


def reference_name(value: Any) -> str | None:
    """``NAME`` when ``value`` has the reference shape ``{"secret": NAME}`` (one key, a string)."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get(REFERENCE_KEY), str):
        return str(value[REFERENCE_KEY])
    return None


def is_reference_shaped(value: Any) -> bool:
    """A mapping whose only key is ``secret``, whatever its value (for validation messages)."""
    return isinstance(value, dict) and len(value) == 1 and REFERENCE_KEY in value


def secret_call(expression: str) -> str | None:
    """The quoted name when the whole expression is ``secret('...')`` (valid or not)."""
    match = _CALL.fullmatch(expression)
    return match.group("name") if match else None


def mentions_secret(expression: str) -> bool:
    """Whether the expression calls ``secret()`` anywhere (False when it does not parse)."""
    if "secret" not in expression:
        return False
    try:
        parsed = compile_expression(expression).parsed
    except ValueError:
        return False
    return any(node.get("type") == "function_expression" and node.get("value") == "secret" for node in _nodes(parsed))


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            yield current
            stack.extend(current.get("children") or [])


def evaluate_input(mapping: Any, context: Any) -> Any:
    """A task's arguments: like ``evaluate_mapping``, with each secret reference kept as
    ``{"secret": NAME}`` instead of evaluated (validation has refused malformed ones)."""
    if isinstance(mapping, str):
        name = secret_call(mapping)
        return reference(name) if name is not None else evaluate(mapping, context)
    if isinstance(mapping, dict):
        return {key: evaluate_input(value, context) for key, value in mapping.items()}
    if isinstance(mapping, list):
        return [evaluate_input(value, context) for value in mapping]
    return mapping


def secret_paths(mapping: Any, path: Path = ()) -> list[Path]:
    """Where a task's input mapping puts secret references in its arguments, in order."""
    if isinstance(mapping, str):
        return [path] if secret_call(mapping) is not None else []
    if isinstance(mapping, dict):
        return [found for key, value in mapping.items() for found in secret_paths(value, (*path, key))]
    if isinstance(mapping, list):
        return [found for index, value in enumerate(mapping) for found in secret_paths(value, (*path, index))]
    return []


def config_references(config: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    """Every reference-shaped value of a config (``{secret: ...}``), with its path."""
    if is_reference_shaped(config):
        return [(path, config[REFERENCE_KEY])]
    if isinstance(config, dict):
        return [found for key, value in config.items() for found in config_references(value, (*path, key))]
    if isinstance(config, list):
        return [found for index, value in enumerate(config) for found in config_references(value, (*path, index))]
    return []


def spell(path: Path) -> str:
    """A path as validation locations spell it: ``.headers.Authorization``, ``[0]``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


OUTSIDE_TASK = (
    "secret() is resolved only in a task step's input (or {secret: NAME} in its config): "
    "no other expression sees secrets"
)
_BAD_NAME = "secret names are a letter or '_', then letters, digits and '_' (at most 128)"


def task_problems(config: Any, input: Any) -> list[tuple[str, str]]:
    """(location, message) for every malformed reference in a task step's config and input."""
    problems = []
    for path, name in config_references(config):
        if not valid_name(name):
            problems.append((f"config{spell(path)}", f"invalid secret reference {{secret: {name!r}}}: {_BAD_NAME}"))
    for path, value in _strings(config):
        if secret_call(value) is not None or mentions_secret(value):
            message = f"config is not an expression: write {{secret: NAME}} instead of {value[:60]!r}"
            problems.append((f"config{spell(path)}", message))
    for path, value in _strings(input):
        where = f"input{spell(path)}"
        called = secret_call(value)
        if called is not None and not valid_name(called):
            problems.append((where, f"invalid secret reference {value[:60]!r}: {_BAD_NAME}"))
        elif called is None and mentions_secret(value):
            message = f"secret() must be the whole expression, e.g. secret('API_TOKEN'), not {value[:60]!r}"
            problems.append((where, message))
    return problems


def _strings(value: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))
