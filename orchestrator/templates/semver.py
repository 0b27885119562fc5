"""Semantic versions and ranges: ``1.2.3``, ``^1.2.0``, ``~1.2.0``, ``*`` and comparators
(``>=1.0.0,<2.0.0``). Pure."""

from __future__ import annotations

import re

Version = tuple[int, int, int]
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_COMPARATOR = re.compile(r"^(>=|<=|>|<|==|=|\^|~)?\s*(\d+(?:\.\d+){0,2})$")


class RangeInvalid(ValueError):
    """A version or range that is not well formed."""


def parse(text: str) -> Version:
    match = _VERSION.match(text.strip())
    if match is None:
        raise RangeInvalid(f"{text!r} is not a version MAJOR.MINOR.PATCH")
    return int(match[1]), int(match[2]), int(match[3])


def _padded(text: str) -> Version:
    parts = [int(p) for p in text.split(".")] + [0, 0]
    return parts[0], parts[1], parts[2]


def _one(op: str, bound: Version, version: Version) -> bool:
    if op == "^":
        upper = (bound[0] + 1, 0, 0) if bound[0] else (0, bound[1] + 1, 0)
        return bound <= version < upper
    if op == "~":
        return bound <= version < (bound[0], bound[1] + 1, 0)
    return {
        ">=": version >= bound, "<=": version <= bound, ">": version > bound, "<": version < bound,
        "==": version == bound, "=": version == bound, "": version == bound,
    }[op]  # fmt: skip


def check_range(text: str) -> None:
    """RangeInvalid when ``text`` is not a range."""
    if text.strip() == "*":
        return
    for part in text.split(","):
        if _COMPARATOR.match(part.strip()) is None:
            raise RangeInvalid(f"{text!r} is not a version range (e.g. ^1.2.0, >=1.0.0,<2.0.0, *)")


def satisfies(version: str | Version, text: str) -> bool:
    """Whether ``version`` lies in the range ``text``."""
    check_range(text)
    value = parse(version) if isinstance(version, str) else version
    if text.strip() == "*":
        return True
    for part in text.split(","):
        match = _COMPARATOR.match(part.strip())
        assert match is not None
        if not _one(match[1] or "", _padded(match[2]), value):
            return False
    return True


def best(versions: list[str], text: str) -> str | None:
    """The highest of ``versions`` in the range, None when none is."""
    inside = [v for v in versions if satisfies(v, text)]
    return max(inside, key=parse) if inside else None
