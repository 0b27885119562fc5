"""Engine version ranges of template metadata: ``*``, ``1.2.3``, ``^1.2``, ``~1.2``, and
comma-separated comparisons (``>=1.0, <2``)."""

from __future__ import annotations

import re

_PART = re.compile(r"^\s*(>=|<=|>|<|==|=|\^|~)?\s*v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?\s*$")


def _version(text: str) -> tuple[int, int, int]:
    parts = [int(p) if p.isdigit() else 0 for p in text.split("-")[0].split("+")[0].split(".")]
    return (*parts, 0, 0, 0)[:3]  # type: ignore[return-value]


def satisfies(version: str, spec: str) -> bool:
    """Whether the engine ``version`` is admitted by ``spec``; an unreadable spec admits nothing."""
    if spec.strip() in ("", "*", "x"):
        return True
    have = _version(version)
    for raw in spec.split(","):
        match = _PART.match(raw)
        if match is None:
            return False
        op, major, minor, patch = match.groups()
        bound = (
            int(major),
            int(minor) if minor and minor.isdigit() else 0,
            int(patch) if patch and patch.isdigit() else 0,
        )
        if not _admits(op or "=", have, bound, minor, patch):
            return False
    return True


def _admits(
    op: str, have: tuple[int, int, int], bound: tuple[int, int, int], minor: str | None, patch: str | None
) -> bool:
    if op == "^":
        upper = (bound[0] + 1, 0, 0) if bound[0] else (0, bound[1] + 1, 0)
        return bound <= have < upper
    if op == "~":
        return bound <= have < (bound[0], bound[1] + 1, 0)
    if op in ("=", "=="):
        if minor is None or not minor.isdigit():
            return have[0] == bound[0]
        if patch is None or not patch.isdigit():
            return have[:2] == bound[:2]
        return have == bound
    return {">=": have >= bound, "<=": have <= bound, ">": have > bound, "<": have < bound}[op]
