"""Placeholders: ``{{% params.name %}}`` in any string of a template's workflow body. Pure.

Why this syntax: a definition's strings are JMESPath expressions at run time, and JMESPath uses
``[``/``]`` (indexes, filters, multi-select lists), ``{``/``}`` (multi-select hashes), ``|``, ``.``
and backticks, so ``[[ ]]``, ``${ }`` or ``{{ }}`` could be part of a valid expression.
``{{%`` cannot: ``{{`` is never valid JMESPath (a hash key must be an identifier) and ``%`` is
no JMESPath token. A placeholder is therefore always template syntax, never an expression.

- A string that is exactly one placeholder takes the parameter's value *with its type*
  (``retries: "{{% params.retries %}}"`` renders as the integer 3, a list stays a list).
- Inside a longer string, the value is inserted as text (strings as they are, others as JSON).
- Filters: ``| jmespath`` quotes a string as a JMESPath raw string literal (``'it''s'``), so a
  parameter can be used inside an expression without being able to change it; ``| json``
  inserts JSON text.
- Paths are dotted names under ``params`` (``params.kafka.topic``); nothing else is evaluated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = re.compile(
    r"\{\{%\s*(?P<path>[A-Za-z_][A-Za-z0-9_.\-]*)\s*(?:\|\s*(?P<filter>[a-z]+)\s*)?%\}\}"
)
_WHOLE = re.compile(r"^\s*" + PLACEHOLDER.pattern + r"\s*$")
FILTERS = ("jmespath", "json")
_MISSING: Any = object()


class PlaceholderError(ValueError):
    """Placeholders that cannot be rendered, each with its location."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))


def _lookup(path: str, scope: Mapping[str, Any]) -> Any:
    value: Any = scope
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _quoted(value: Any, name: str | None) -> Any:
    if name == "jmespath":
        text = value if isinstance(value, str) else json.dumps(value)
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if name == "json":
        return json.dumps(value, sort_keys=True)
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def render(value: Any, scope: Mapping[str, Any], where: str = "workflow") -> Any:
    """``value`` with every placeholder replaced from ``scope`` ({"params": ...});
    PlaceholderError listing every unknown path or filter."""
    problems: list[tuple[str, str]] = []
    result = _render(value, scope, where, problems)
    if problems:
        raise PlaceholderError(problems)
    return result


def _resolve(
    match: re.Match[str], scope: Mapping[str, Any], where: str, problems: list[tuple[str, str]]
) -> Any:
    path, name = match["path"], match["filter"]
    if name is not None and name not in FILTERS:
        problems.append((where, f"unknown filter {name!r} (known: {', '.join(FILTERS)})"))
        return None
    found = _lookup(path, scope)
    if found is _MISSING:
        problems.append((where, f"{{{{% {path} %}}}} names nothing (known: params.<name>)"))
        return None
    return _quoted(found, name)


def _render(value: Any, scope: Mapping[str, Any], where: str, problems: list[tuple[str, str]]) -> Any:
    if isinstance(value, dict):
        return {key: _render(item, scope, f"{where}.{key}", problems) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, scope, f"{where}[{index}]", problems) for index, item in enumerate(value)]
    if not isinstance(value, str) or "{{%" not in value:
        return value
    whole = _WHOLE.match(value)
    if whole is not None:
        return _resolve(whole, scope, where, problems)
    rendered = PLACEHOLDER.sub(lambda m: _text(_resolve(m, scope, where, problems)), value)
    if "{{%" in rendered:
        problems.append((where, "a '{{%' that is not a well-formed placeholder {{% params.name %}}"))
    return rendered


def paths(value: Any) -> set[str]:
    """Every placeholder path used in ``value``."""
    if isinstance(value, dict):
        return set().union(*(paths(item) for item in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(paths(item) for item in value)) if value else set()
    return {m["path"] for m in PLACEHOLDER.finditer(value)} if isinstance(value, str) else set()
