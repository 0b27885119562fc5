"""JMESPath expressions: compiled once, evaluated without I/O. Never ``eval``.

Whatever an expression meets, it fails in one way: :class:`ExpressionError`, with a message
naming the expression and what went wrong. That covers parse errors, type errors on the data
(``sum(['a', 1])``, ``max_by`` over mixed keys, comparisons of a string with a number), bad slices
(``[::0]``), functions on null, nesting too deep for the parser or the data, and results that
would not be strict JSON (``to_number('1e400')`` is infinity) or are larger than
``MAX_RESULT_BYTES``. Callers decide what a failure means: a failed step (type ``expression``)
in the machine, a 400 at an HTTP edge, a dead letter on a trigger.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jmespath
from jmespath import functions
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from schemas import strict_json

__all__ = [
    "MAX_RESULT_BYTES",
    "ExpressionError",
    "compile_expression",
    "evaluate",
    "evaluate_mapping",
    "mapping_expressions",
    "truthy",
]

MAX_RESULT_BYTES = 16 * 1024 * 1024  # about what a result's JSON may weigh
RESULT_DEPTH = 2 * strict_json.MAX_DEPTH  # input may nest MAX_DEPTH levels; an expression adds some
MAX_MESSAGE = 1000  # jmespath's type errors quote the value, which may be large


class ExpressionError(ValueError):
    """An expression failed to parse or to evaluate."""


class _Functions(functions.Functions):  # type: ignore[misc]  # jmespath has no type hints
    """The standard functions, with ``join`` bounded: nested joins could double a string per level."""

    @functions.signature({"types": ["string"]}, {"types": ["array-string"]})  # type: ignore[untyped-decorator]
    def _func_join(self, separator: str, array: list[str]) -> str:
        size = len(separator) * max(len(array) - 1, 0) + sum(len(item) for item in array)
        if size > MAX_RESULT_BYTES:
            raise ExpressionError(f"join() would make a string of {size} characters (at most {MAX_RESULT_BYTES})")
        return separator.join(array)


_OPTIONS = jmespath.Options(custom_functions=_Functions())  # stateless, shared by every search


@lru_cache(maxsize=4096)
def compile_expression(expression: str) -> ParsedResult:
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise ExpressionError(_short(f"invalid expression {expression!r}: {exc}")) from None
    except RecursionError:
        raise ExpressionError(f"invalid expression {_excerpt(expression)}: nested too deeply") from None
    except Exception as exc:  # the parser is pure: whatever it raises, this text is not an expression
        raise ExpressionError(_short(f"invalid expression {expression!r}: {_describe(exc)}")) from None


def evaluate(expression: str, context: Any) -> Any:
    """The expression's value over ``context`` (JSON data); only ever raises ExpressionError."""
    parsed = compile_expression(expression)
    try:
        result = parsed.search(context, options=_OPTIONS)
    except ExpressionError as exc:
        raise ExpressionError(_short(f"expression {expression!r} failed: {exc}")) from None
    except RecursionError:
        raise ExpressionError(f"expression {_excerpt(expression)} failed: the data is nested too deeply") from None
    except Exception as exc:  # evaluation is pure: any exception is this expression failing on this data
        raise ExpressionError(_short(f"expression {expression!r} failed: {_describe(exc)}")) from None
    try:
        strict_json.check(result, "", max_depth=RESULT_DEPTH, max_size=MAX_RESULT_BYTES)
    except strict_json.StrictJSONError as exc:
        raise ExpressionError(_short(f"expression {expression!r} gave an unusable result: {exc}")) from None
    return result


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


def _describe(exc: Exception) -> str:
    if isinstance(exc, JMESPathError):
        return str(exc)
    if isinstance(exc, TypeError) and "not supported between instances" in str(exc):
        return f"cannot compare these values ({exc})"
    return f"{exc} ({type(exc).__name__})"


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def _excerpt(expression: str) -> str:
    return repr(expression if len(expression) <= 60 else expression[:40] + "..." + expression[-10:])
