"""Build definitions in Python; the result is the same model a YAML file loads into.

    wf = (
        Workflow("order", input_schema={"type": "object"})
        .task("charge", "python", config={"function": "shop:charge"}, input={"id": "input.id"},
              retry=retry(max_attempts=3))
        .succeed("done", output="steps.charge")
        .build()
    )

Steps are chained in the order they are added unless a step names its own ``next``.
"""

from __future__ import annotations

import itertools
from typing import Any

from schemas.definition import WorkflowDefinition
from schemas.validation import parse_definition

_TERMINAL = {"succeed", "fail", "choice"}


def retry(
    max_attempts: int = 3,
    *,
    initial_seconds: float = 1.0,
    multiplier: float = 2.0,
    max_seconds: float = 300.0,
    jitter: float = 0.0,
    retry_on: list[str] | None = None,
    non_retryable: list[str] | None = None,
) -> dict[str, Any]:
    """A retry policy as plain data."""
    policy: dict[str, Any] = {
        "max_attempts": max_attempts,
        "backoff": {"initial_seconds": initial_seconds, "multiplier": multiplier, "max_seconds": max_seconds},
        "jitter": jitter,
        "non_retryable": non_retryable or [],
    }
    if retry_on is not None:
        policy["retry_on"] = retry_on
    return policy


class Steps:
    """An ordered list of steps; a workflow and each parallel branch is one."""

    def __init__(self) -> None:
        self._steps: list[dict[str, Any]] = []

    def _add(self, kind: str, name: str, fields: dict[str, Any]) -> Any:
        step = {"name": name, "type": kind, **{k: v for k, v in fields.items() if v is not None}}
        self._steps.append(step)
        return self

    def task(self, name: str, connector: str, **fields: Any) -> Any:
        return self._add("task", name, {"connector": connector, **fields})

    def choice(self, name: str, choices: list[tuple[str, str]], default: str | None = None) -> Any:
        rules = [{"when": when, "next": target} for when, target in choices]
        return self._add("choice", name, {"choices": rules, "default": default})

    def parallel(self, name: str, *branches: Steps, **fields: Any) -> Any:
        return self._add("parallel", name, {"branches": [{"steps": b.steps()} for b in branches], **fields})

    def wait(
        self, name: str, *, seconds: float | None = None, until: str | None = None, **fields: Any
    ) -> Any:
        return self._add("wait", name, {"seconds": seconds, "until": until, **fields})

    def wait_for_event(self, name: str, event: str, **fields: Any) -> Any:
        return self._add("wait_for_event", name, {"event": event, **fields})

    def subworkflow(self, name: str, workflow: str, **fields: Any) -> Any:
        return self._add("subworkflow", name, {"workflow": workflow, **fields})

    def succeed(self, name: str, output: str | None = None) -> Any:
        return self._add("succeed", name, {"output": output})

    def fail(self, name: str, error: str = "Failed", cause: str | None = None) -> Any:
        return self._add("fail", name, {"error": error, "cause": cause})

    def steps(self) -> list[dict[str, Any]]:
        """The steps with ``next`` filled in from their order where not given."""
        linked = [dict(step) for step in self._steps]
        for step, following in itertools.pairwise(linked):
            if step["type"] not in _TERMINAL and "next" not in step:
                step["next"] = following["name"]
        return linked


class Branch(Steps):
    """The steps of one parallel branch."""


class Workflow(Steps):
    """A workflow under construction; ``build()`` validates and returns the model."""

    def __init__(
        self, name: str, *, version: int | None = None, description: str = "", **fields: Any
    ) -> None:
        super().__init__()
        self._header: dict[str, Any] = {"name": name, "description": description, **fields}
        if version is not None:
            self._header["version"] = version
        self._triggers: list[dict[str, Any]] = []

    def webhook(self, name: str, **fields: Any) -> Workflow:
        self._triggers.append({"type": "webhook", "name": name, **fields})
        return self

    def to_dict(self) -> dict[str, Any]:
        return {**self._header, "triggers": self._triggers, "steps": self.steps()}

    def build(self) -> WorkflowDefinition:
        """Validate everything at once (DefinitionError lists all problems)."""
        return parse_definition(self.to_dict())
