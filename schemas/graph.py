"""A definition's step graph: steps by name, their scope, and their successors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from schemas.definition import (
    ChoiceStep,
    ParallelStep,
    Step,
    SubworkflowStep,
    TaskStep,
    WaitForEventStep,
    WaitStep,
    WorkflowDefinition,
)
from schemas.secrets import secret_paths

# A scope is the parallel step and branch index that enclose a step; None is the top level.
Scope = tuple[str, int] | None


@dataclass(frozen=True, slots=True)
class Located:
    step: Step
    scope: Scope
    location: str


def iter_steps(steps: list[Step], scope: Scope = None, path: str = "steps") -> Iterator[Located]:
    """Every step, nested branches included, with its scope and location."""
    for index, step in enumerate(steps):
        location = f"{path}[{index}]"
        yield Located(step, scope, location)
        if isinstance(step, ParallelStep):
            for b, branch in enumerate(step.branches):
                yield from iter_steps(branch.steps, (step.name, b), f"{location}.branches[{b}].steps")


def references(step: Step) -> list[tuple[str, str]]:
    """(field, step name) pairs this step can transition to."""
    refs: list[tuple[str, str | None]] = []
    if isinstance(step, TaskStep | ParallelStep | SubworkflowStep):
        refs += [("next", step.next), ("on_error", step.on_error)]
    elif isinstance(step, WaitStep):
        refs.append(("next", step.next))
    elif isinstance(step, WaitForEventStep):
        refs += [("next", step.next), ("on_timeout", step.on_timeout)]
    elif isinstance(step, ChoiceStep):
        refs += [(f"choices[{i}].next", rule.next) for i, rule in enumerate(step.choices)]
        refs.append(("default", step.default))
    return [(name, target) for name, target in refs if target is not None]


@dataclass(frozen=True)
class WorkflowGraph:
    """Lookup tables the machine needs; built once per definition version."""

    definition: WorkflowDefinition
    steps: dict[str, Step] = field(default_factory=dict)
    scopes: dict[str, Scope] = field(default_factory=dict)
    start: str = ""
    # task step -> where its input puts secret references (``schemas.secrets.secret_paths``),
    # worked out once here rather than at every schedule; absent: none
    secret_args: dict[str, tuple[tuple[str | int, ...], ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, definition: WorkflowDefinition) -> WorkflowGraph:
        graph = cls(definition, start=definition.start or definition.steps[0].name)
        for located in iter_steps(definition.steps):
            graph.steps.setdefault(located.step.name, located.step)
            graph.scopes.setdefault(located.step.name, located.scope)
            if isinstance(located.step, TaskStep) and (paths := secret_paths(located.step.input)):
                graph.secret_args.setdefault(located.step.name, tuple(paths))
        return graph

    def step(self, name: str) -> Step:
        return self.steps[name]

    def branch_start(self, parallel: str, branch: int) -> str:
        step = self.steps[parallel]
        assert isinstance(step, ParallelStep)
        return step.branches[branch].steps[0].name
