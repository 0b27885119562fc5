"""The isolation settings of a ``python`` step's config: ``isolation`` and ``limits``.

```yaml
config:
  function: mymod:crunch
  isolation: process          # or thread (the default, unless ORCHESTRATOR_PYTHON_ISOLATION says)
  limits: {cpu_seconds: 10, memory_mb: 256, wall_seconds: 30}
```

Limits apply to isolated steps only; ``wall_seconds`` defaults to the step's ``timeout_seconds``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MODES = ("thread", "process")
LIMIT_KEYS = ("cpu_seconds", "memory_mb", "wall_seconds")
MAX_LIMIT = 7 * 86_400.0  # a week of seconds, or 604,800 MB


@dataclass(frozen=True, slots=True)
class StepIsolation:
    mode: str | None  # None: the connector's default
    cpu_seconds: float | None = None
    memory_bytes: int | None = None
    wall_seconds: float | None = None


def isolation_problems(config: Mapping[str, Any], location: str) -> list[tuple[str, str]]:
    """Every (location, problem) with ``isolation`` and ``limits`` in one step's config."""
    problems: list[tuple[str, str]] = []
    mode = config.get("isolation")
    if mode is not None and mode not in MODES:
        problems.append((f"{location}.isolation", f"must be one of {', '.join(MODES)}, not {mode!r}"))
    limits = config.get("limits")
    if limits is None:
        return problems
    if not isinstance(limits, Mapping):
        return [*problems, (f"{location}.limits", "must be a mapping of cpu_seconds, memory_mb, wall_seconds")]
    for key, value in limits.items():
        where = f"{location}.limits.{key}"
        if key not in LIMIT_KEYS:
            problems.append((where, f"unknown limit; known: {', '.join(LIMIT_KEYS)}"))
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            problems.append((where, "must be a number"))
        elif not 0 < value <= MAX_LIMIT:
            problems.append((where, f"must be above 0 and at most {MAX_LIMIT:g}"))
    if limits and mode != "process":
        problems.append((f"{location}.limits", "limits need 'isolation: process' (a thread cannot be stopped)"))
    return problems


def step_isolation(config: Mapping[str, Any]) -> StepIsolation:
    """The isolation a (validated) config asks for."""
    limits = config.get("limits") or {}
    memory = limits.get("memory_mb")
    return StepIsolation(
        mode=config.get("isolation"),
        cpu_seconds=limits.get("cpu_seconds"),
        memory_bytes=None if memory is None else int(memory * 1024 * 1024),
        wall_seconds=limits.get("wall_seconds"),
    )
