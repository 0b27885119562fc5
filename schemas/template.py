"""Workflow template format: a parametrised workflow definition with metadata and test cases.

Pure. ``workflow`` is a definition body whose values may hold placeholders (``{{% params.x %}}``,
``orchestrator.templates.placeholders``); it is validated as a ``WorkflowDefinition`` only after
rendering. ``parameters`` is a JSON Schema object; a property with ``format: secret-ref`` holds a
secret *name*, never its value.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TemplateId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-z0-9][a-z0-9_.\-]*$")]
SemVer = Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$", description="Semantic version MAJOR.MINOR.PATCH.")]
Reference = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_.\-]*(@[^@\s]+)?$",
        description="Another template or fragment: id@range, e.g. 'approval@^1.0.0' (no range: any).",
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Metadata(_Model):
    """Who made the template, what it is for and which engine versions run it."""

    id: TemplateId
    version: SemVer
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    categories: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    author: str = ""
    licence: str = Field("Apache-2.0", description="An SPDX licence identifier.")
    engine: str = Field("*", description="Supported engine versions, e.g. '>=0.1.0,<2.0.0'.")
    kind: Literal["template", "fragment"] = Field(
        "template", description="A fragment is a reusable group of steps that templates include."
    )


class StepAnswer(_Model):
    """One stubbed connector answer: an output, or an error the step fails with."""

    output: Any = None
    error: str | None = Field(None, description="Error type, e.g. 'http.503'; the attempt fails.")
    message: str = ""
    retryable: bool = True


class TestEvent(_Model):
    """A signal delivered to the execution under test (buffered until a step waits for it)."""

    event: str = Field(min_length=1)
    payload: Any = None


class Expectation(_Model):
    status: Literal["succeeded", "failed", "cancelled"]
    output: Any = Field(None, description="Compared for equality when given.")
    output_contains: dict[str, Any] | None = Field(
        None, description="These keys of the output equal these values."
    )
    error: str | None = Field(None, description="The error type of a failed execution.")
    steps: list[str] = Field(default_factory=list, description="Steps that must have run.")


class TestCase(_Model):
    """Render with ``parameters``, start with ``input``; connector calls answer from ``stubs``
    (step name -> one answer, or a list: one per call of the step, the last repeating); other tasks
    echo their arguments."""

    name: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)
    input: Any = None
    stubs: dict[str, StepAnswer | list[StepAnswer]] = Field(default_factory=dict)
    events: list[TestEvent] = Field(default_factory=list)
    children: list[dict[str, Any]] = Field(
        default_factory=list, description="Definitions registered first (sub-workflows the template starts)."
    )
    expect: Expectation
    timeout_seconds: float = Field(10.0, gt=0, le=300)


class WorkflowTemplate(_Model):
    """A template: metadata, parameters (JSON Schema), composition, the workflow body, tests."""

    metadata: Metadata
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of the parameters: types, defaults, enums, descriptions, x-ui hints; "
        "format 'secret-ref' marks a secret name.",
    )
    extends: Reference | None = Field(
        None, description="A parent template: its parameters and steps, overridden by name."
    )
    include: list[Reference] = Field(
        default_factory=list,
        description="Fragments whose steps are inserted where a step reads {include: id}.",
    )
    workflow: dict[str, Any] = Field(
        default_factory=dict, description="The definition body, with placeholders."
    )
    tests: list[TestCase] = Field(default_factory=list)


TestCase.__test__ = False  # type: ignore[attr-defined]  # not a pytest class
TestEvent.__test__ = False  # type: ignore[attr-defined]
