"""The isolation settings of a python step's config: every problem named, at registration."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.definition import WorkflowDefinition
from schemas.isolation import isolation_problems, step_isolation
from schemas.validation import validate


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"isolation": "vm"}, "c.isolation: must be one of thread, process, not 'vm'"),
        ({"isolation": "process", "limits": 5}, "c.limits: must be a mapping"),
        ({"isolation": "process", "limits": {"gpu": 1}}, "c.limits.gpu: unknown limit"),
        ({"isolation": "process", "limits": {"cpu_seconds": "1"}}, "c.limits.cpu_seconds: must be a number"),
        ({"isolation": "process", "limits": {"cpu_seconds": True}}, "c.limits.cpu_seconds: must be a number"),
        ({"isolation": "process", "limits": {"memory_mb": 0}}, "c.limits.memory_mb: must be above 0"),
        ({"isolation": "process", "limits": {"wall_seconds": float("inf")}}, "c.limits.wall_seconds: must be a number"),
        ({"limits": {"cpu_seconds": 1}}, "c.limits: limits need 'isolation: process'"),
    ],
)
def test_each_problem_is_named(config: dict[str, Any], problem: str) -> None:
    found = [f"{where}: {message}" for where, message in isolation_problems(config, "c")]
    assert any(line.startswith(problem) for line in found), found


def test_a_good_config_has_none_and_parses() -> None:
    config = {"isolation": "process", "limits": {"cpu_seconds": 2, "memory_mb": 64, "wall_seconds": 9.5}}
    assert isolation_problems(config, "c") == []
    parsed = step_isolation(config)
    assert (parsed.mode, parsed.cpu_seconds, parsed.memory_bytes, parsed.wall_seconds) == ("process", 2, 64 << 20, 9.5)
    assert step_isolation({}).mode is None


def test_validation_reports_them_for_python_steps_only() -> None:
    body: dict[str, Any] = {
        "name": "w",
        "steps": [
            {"name": "p", "type": "task", "connector": "python", "config": {"function": "m:f", "isolation": "vm"}, "next": "q"},
            {"name": "q", "type": "task", "connector": "http", "config": {"isolation": "vm"}},
        ],
    }
    problems = [str(p) for p in validate(WorkflowDefinition.model_validate(body))]
    assert problems == ["steps[0].config.isolation: must be one of thread, process, not 'vm'"]
