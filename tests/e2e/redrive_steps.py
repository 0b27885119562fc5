"""Step functions for the redrive tests: they count their calls, and ``check`` fails on demand.

Referenced as ``tests.e2e.redrive_steps:<name>`` by the python connector. The functions are
async, so they run on the event loop: no locking needed for the counters.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from connectors.base import ConnectorError

CALLS: Counter[str] = Counter()
BROKEN = {"check": True}  # the dependency of ``check``: broken until a test "fixes" it


def reset() -> None:
    CALLS.clear()
    BROKEN["check"] = True


async def one(x: Any = None) -> dict[str, Any]:
    CALLS["one"] += 1
    return {"one": x}


async def two(prev: Any = None) -> dict[str, Any]:
    CALLS["two"] += 1
    return {"two": prev}


async def check(flag: Any = None, prev: Any = None) -> dict[str, Any]:
    """Fails (not retryable) when the input's flag is false while the dependency is broken."""
    CALLS["check"] += 1
    if not flag and BROKEN["check"]:
        raise ConnectorError("check.failed", "flag is false", retryable=False)
    return {"checked": prev, "flag": flag}


async def lenient(flag: Any = None, prev: Any = None) -> dict[str, Any]:
    """Version 2 of ``check``: accepts any flag."""
    CALLS["lenient"] += 1
    return {"checked": prev, "flag": flag, "lenient": True}
