"""The projection example in docs/feed.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from schemas.validation import parse_definition
from tests.fake_sources import eventually

DOC = Path(__file__).resolve().parents[2] / "docs" / "feed.md"


async def test_the_example_projection_counts_steps() -> None:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    runtime, projection = namespace["runtime"], namespace["runtime"].projections.projections[0]
    definition = {
        "name": "two",
        "steps": [
            {"name": "a", "type": "task", "connector": "noop", "next": "b"},
            {"name": "b", "type": "task", "connector": "noop", "next": "done"},
            {"name": "done", "type": "succeed"},
        ],
    }
    async with runtime:
        await runtime.register(parse_definition(definition))
        succeeded = 0
        for _ in range(3):
            started = await runtime.start_execution("two")
            await runtime.wait(started.execution_id, timeout=5)
            succeeded += len(await runtime.history(started.execution_id, types={"StepSucceeded"}))
        assert succeeded >= 6
        await eventually(lambda: projection.counts == {"two": succeeded})
        await runtime.projections.rebuild("step-counts")
        await eventually(lambda: projection.counts == {"two": succeeded})  # replayed, not doubled
