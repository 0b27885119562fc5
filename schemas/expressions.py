"""JMESPath expressions: compiled once, evaluated without I/O. Never ``eval``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

__all__ = [
    "ExpressionError",
    "compile_expression",
    "evaluate",
    "evaluate_mapping",
    "mapping_expressions",
    "truthy",
]


class ExpressionError(ValueError):
    """An expression failed to parse or to evaluate."""


@lru_cache(maxsize=4096)
def compile_expression(expression: str) -> ParsedResult:
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise ExpressionError(f"invalid expression {expression!r}: {exc}") from None


def evaluate(expression: str, context: Any) -> Any:
    try:
        return compile_expression(expression).search(context)
    except JMESPathError as exc:
        raise ExpressionError(f"expression {expression!r} failed: {exc}") from None


def evaluate_mapping(mapping: Any, context: Any) -> Any:
    """Evaluate every string in a nested mapping/list as an expression; keep other values."""
    if isinstance(mapping, str):
        return evaluate(mapping, context)
    if isinstance(mapping, dict):
        return {key: evaluate_mapping(value, context) for key, value in mapping.items()}
    if isinstance(mapping, list):
        return [evaluate_mapping(value, context) for value in mapping]
    return mapping


def mapping_expressions(mapping: Any, path: str = "") -> list[tuple[str, str]]:
    """(location, expression) pairs of a nested mapping, for validation."""
    if isinstance(mapping, str):
        return [(path, mapping)]
    if isinstance(mapping, dict):
        return [item for k, v in mapping.items() for item in mapping_expressions(v, f"{path}.{k}")]
    if isinstance(mapping, list):
        return [item for i, v in enumerate(mapping) for item in mapping_expressions(v, f"{path}[{i}]")]
    return []


def truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, empty string/list/object are false."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True
