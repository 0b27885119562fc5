"""Strict JSON: the one loader for JSON that arrives from outside, and the check for values we keep.

Strict means what every JSON parser accepts (RFC 8259), and what the rest of the system can hold:

- UTF-8 text, without unpaired surrogates (``"\\ud800"`` would not encode back to UTF-8);
- no ``NaN``, ``Infinity`` or ``-Infinity``, and no number that only parses to infinity (``1e400``);
- integers of at most ``MAX_INT_DIGITS`` digits (Python refuses to convert longer ones);
- at most ``MAX_DEPTH`` levels of arrays and objects (deeper input would risk RecursionError in
  schema checks, expressions and encoders).

:func:`loads` parses bytes or text; :func:`check` validates a value built some other way (YAML, an
expression's result, a connector's output); :func:`dumps` encodes. Each failure is a
:class:`StrictJSONError` (a ``ValueError``) whose message says what is wrong and where.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "PARSE_HOOKS",
    "StrictJSONError",
    "check",
    "dumps",
    "has_long_digit_runs",
    "loads",
]

MAX_DEPTH = 128
MAX_INT_DIGITS = 4300  # CPython's default int <-> str limit: longer integers cannot be encoded
_INT_LIMIT = 10**MAX_INT_DIGITS


class StrictJSONError(ValueError):
    """A text or value that is not strict JSON; the message names the problem."""


# One encoder made once: ``json.dumps`` with keywords builds a new one on every call.
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encoded_size(value: Any) -> int:
    """How many bytes ``value`` takes as compact UTF-8 JSON; 0 for None (nothing) and for a value
    JSON cannot hold (the checks above report those)."""
    if value is None:
        return 0
    try:  # orjson writes compact UTF-8 JSON, ten times faster; json takes what it refuses
        return len(orjson.dumps(value))
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        return len(_compact(value).encode())
    except (TypeError, ValueError, RecursionError):
        return 0


def loads(raw: bytes | bytearray | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse strict JSON (see the module docstring); StrictJSONError with a short reason."""
    if isinstance(raw, bytes | bytearray) and _quick(raw, max_depth):
        try:  # ten times faster; what it refuses goes the long way, which says why (or takes it)
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StrictJSONError(f"not UTF-8 (invalid byte at position {exc.start})") from None
    else:
        text = raw
    try:
        value = json.loads(text, **PARSE_HOOKS)
    except RecursionError:
        raise StrictJSONError(f"nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    check(value, "", max_depth=max_depth)
    return value


_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))  # digits -> 0, else space
_LONG_DIGITS = b"0" * 19


def has_long_digit_runs(raw: bytes | bytearray) -> bool:
    """Whether ``raw`` holds a run of 19 digits or more: orjson would parse an integer past 64
    bits as a float, so such bytes must go to the standard parser (a cheap, conservative test)."""
    return _LONG_DIGITS in raw.translate(_DIGITS_ONLY)


def _quick(raw: bytes | bytearray, max_depth: int) -> bool:
    """Whether orjson parses ``raw`` exactly as the long way does: fewer brackets than the depth
    allows (so no deeper nesting) and no long digit runs. What orjson accepts is strict
    otherwise: it refuses invalid UTF-8, unpaired surrogates, NaN, the infinities and numbers
    that overflow a float."""
    return raw.count(b"[") + raw.count(b"{") < max_depth and not has_long_digit_runs(raw)


def _reject_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not valid JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError(f"the number {_excerpt(text)} is too large for a JSON number")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise StrictJSONError(f"an integer longer than {MAX_INT_DIGITS} digits")
    return int(text)


# ``json.loads`` keywords that refuse NaN/Infinity, numbers beyond a float and over-long integers
# (StrictJSONError), for a caller that needs its own ``object_pairs_hook``; :func:`loads` uses them.
PARSE_HOOKS: dict[str, Any] = {"parse_constant": _reject_constant, "parse_float": _float, "parse_int": _int}


def check(
    value: Any, what: str = "the value", *, max_depth: int = MAX_DEPTH, max_size: int | None = None
) -> None:
    """Raise StrictJSONError unless ``value`` is made of JSON types only (dict with string keys,
    list, str, int, finite float, bool, None), within the bounds above and, with ``max_size``,
    about that many bytes of JSON at most. Iterative: any depth, shared references counted anew."""
    size = _valid(value, max_depth, max_size)
    if size is None:
        return
    if size < 0:
        prefix = f"{what}: " if what else ""
        raise StrictJSONError(f"{prefix}larger than {max_size} bytes of JSON")
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:  # again, slowly, to say where
        item, depth, path = stack.pop()
        problem = _problem(item, depth, max_depth)
        if problem:
            where = " ".join(part for part in (what, _place(path)) if part)
            raise StrictJSONError(f"{where}: {problem}" if where else problem)
        if isinstance(item, list):
            stack.extend((child, depth + 1, f"{path}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, dict):
            stack.extend((child, depth + 1, f"{path}.{key}") for key, child in item.items())
    raise AssertionError("unreachable: _valid and _problem disagree")  # pragma: no cover


def _valid(value: Any, max_depth: int, max_size: int | None) -> int | None:
    """None when valid; -1 when over ``max_size``; 0 for any other problem (found again slowly)."""
    budget = max_size if max_size is not None else -1
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            budget -= len(item) + 2
            if not item.isascii() and _surrogate(item):
                return 0
        elif isinstance(item, dict):
            if depth >= max_depth:
                return 0
            budget -= 2
            for key, child in item.items():
                if not isinstance(key, str) or (not key.isascii() and _surrogate(key)):
                    return 0
                budget -= len(key) + 4
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth >= max_depth:
                return 0
            budget -= 2 + len(item)
            stack.extend((child, depth + 1) for child in item)
        elif _problem(item, depth, max_depth):
            return 0
        else:
            budget -= 8
        if max_size is not None and budget < 0:
            return -1
    return None


def _problem(item: Any, depth: int, max_depth: int) -> str:
    """What is wrong with this one node (not its children), or ""."""
    if isinstance(item, str):
        return "a string with an unpaired surrogate" if _surrogate(item) else ""
    if isinstance(item, bool) or item is None:
        return ""
    if isinstance(item, int):
        return "" if -_INT_LIMIT < item < _INT_LIMIT else f"an integer longer than {MAX_INT_DIGITS} digits"
    if isinstance(item, float):
        return "" if math.isfinite(item) else f"{item!r} is not a JSON number"
    if isinstance(item, dict | list):
        if depth >= max_depth:
            return f"nested deeper than {max_depth} levels"
        for key in item if isinstance(item, dict) else ():
            if not isinstance(key, str):
                return f"key {_excerpt(repr(key))} is not a string"
            if _surrogate(key):
                return "a key with an unpaired surrogate"
        return ""
    return f"{_excerpt(repr(item))} ({type(item).__name__}) is not a JSON value"


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    """Compact strict JSON text (UTF-8 safe); StrictJSONError for a value JSON cannot hold."""
    try:
        text = json.dumps(
            value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        check(value)  # names the offending place when it can
        raise StrictJSONError(f"not JSON: {exc}") from None
    return text


def _surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _place(path: str) -> str:
    path = path.lstrip(".")
    if not path:
        return ""
    return f"at {path}" if len(path) <= 60 else f"at ...{path[-50:]}"


def _excerpt(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...{text[-10:]}"
