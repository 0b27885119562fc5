"""Canonical JSON bytes: compact, UTF-8, keys sorted at every level, the form events are hashed in.

The reference encoding is the standard library's (``sort_keys``, compact separators, no ASCII
escaping): older hashes were computed with it, and ``orchestrator verify`` recomputes them with it.
orjson writes the same bytes about ten times faster for almost every value, and
:func:`canonical_bytes` takes its output only where it is certain to be identical:

- floats: both write the same shortest digits, but orjson writes a float below ``1e-4`` without
  an exponent (``0.00001`` where Python writes ``1e-05``), and NaN and the infinities as ``null``
  (the strict form refuses them). One walk over the value finds such floats first. A positive one
  is written as Python writes it, by replacing orjson's text for it, but only when that text
  occurs in the output exactly as often as the float does (so it is not part of a string or of
  another number); a negative or non-finite one sends the value the long way;
- nothing orjson refuses (integers past 64 bits, non-string keys, unpaired surrogates, more than
  255 levels) and no subclass of a JSON type, dataclass or datetime (passed to ``default``, which
  refuses them, so the long way decides).

Anything else takes the long way: slower, never different.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

__all__ = ["canonical_bytes"]

_STRICT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_LENIENT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode
_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)
_MAX_DEPTH = 255  # orjson's own limit; deeper (or a cycle) goes the long way, which decides


def _odd_floats(values: Iterable[Any], odd: list[float], depth: int = 0) -> bool:
    """Collect into ``odd`` the floats among ``values`` (and in them) that orjson writes unlike
    the standard encoder; False when one of them cannot be mended (see the module docstring)."""
    if depth > _MAX_DEPTH:
        return False
    for item in values:
        kind = type(item)
        if kind is str or kind is int or item is None:
            continue
        if kind is dict:
            if not _odd_floats(item.values(), odd, depth + 1):
                return False
        elif kind is list or kind is tuple:
            if not _odd_floats(item, odd, depth + 1):
                return False
        elif kind is float and not (1e-4 <= abs(item) < 1e16 or item == 0.0):
            if not 0.0 < item < math.inf:  # negative, NaN or infinite
                return False
            odd.append(item)
    return True


def _mended(quick: bytes, odd: list[float]) -> bytes | None:
    """orjson's ``quick`` with each odd float written as the standard encoder writes it; None
    when a float's text occurs elsewhere too."""
    counts = Counter(odd) if len(odd) > 1 else {odd[0]: 1}
    changes = []
    for value, count in counts.items():
        text, standard = orjson.dumps(value), float.__repr__(value).encode()
        if text != standard:
            if quick.count(text) != count:
                return None
            changes.append((text, standard))
    for text, standard in changes:  # no text is part of another: each was counted alone
        quick = quick.replace(text, standard)
    return quick


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def canonical_bytes(value: Any, *, lenient: bool = False) -> bytes:
    """``value`` as canonical JSON bytes, byte for byte what the standard encoder writes.

    Strict (the default): TypeError or ValueError for a value JSON cannot hold (NaN, infinity, an
    object that is not JSON), UnicodeEncodeError for an unpaired surrogate, RecursionError when
    too deep. Lenient: non-JSON objects are written as ``str(value)`` and NaN as ``NaN``, as the
    standard encoder's ``default=str`` does (for hashing values read back, which are JSON already).
    """
    odd: list[float] = []
    if _odd_floats((value,), odd):
        try:
            quick: bytes | None = orjson.dumps(value, default=_refuse, option=_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError is a TypeError: the long way decides
            quick = None
        if quick is not None and odd:
            quick = _mended(quick, odd)
        if quick is not None:
            return quick
    return (_LENIENT if lenient else _STRICT)(value).encode("utf-8")
