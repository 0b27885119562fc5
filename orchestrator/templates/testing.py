"""``orchestrator templates test``: a template's test cases, each on an embedded runtime with
memory backends and stubbed connectors (``orchestrator.templates.stubs``): nothing leaves the
process. A case renders the template with its parameters, registers its children and the
rendered workflow, starts it with its input, delivers its events as signals and compares the
terminal state with ``expect``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.base import Connectors
from orchestrator.runtime import Runtime
from orchestrator.secrets.sealing import new_key
from orchestrator.settings import Settings
from orchestrator.templates.library import TemplateLibrary, parse_template
from orchestrator.templates.render import SECRET_REF, render
from orchestrator.templates.stubs import CONNECTOR_NAMES, StubConnector
from schemas.template import TestCase, WorkflowTemplate
from schemas.validation import DefinitionError, parse_definition

TEST_TENANT = "default"


@dataclass(frozen=True, slots=True)
class CaseResult:
    template: str
    case: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    status: str | None = None
    output: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "template": self.template, "case": self.case, "passed": self.passed,
            "problems": self.problems, "status": self.status, "output": self.output,
        }  # fmt: skip


def _secret_names(schema: dict[str, Any], values: Any) -> list[str]:
    names = []
    if schema.get("format") == SECRET_REF and isinstance(values, str):
        names.append(values)
    if isinstance(values, dict):
        for key, prop in (schema.get("properties") or {}).items():
            if isinstance(prop, dict) and key in values:
                names += _secret_names(prop, values[key])
    return names


def compare(
    case: TestCase, status: str, output: Any, error: dict[str, Any] | None, ran: set[str]
) -> list[str]:
    expect, problems = case.expect, []
    if status != expect.status:
        problems.append(f"status {status!r}, expected {expect.status!r} (error: {error})")
    if expect.output is not None and output != expect.output:
        problems.append(f"output {output!r}, expected {expect.output!r}")
    for key, value in (expect.output_contains or {}).items():
        got = output.get(key) if isinstance(output, dict) else None
        if got != value:
            problems.append(f"output.{key} is {got!r}, expected {value!r}")
    if expect.error is not None and (error or {}).get("type") != expect.error:
        problems.append(f"error {(error or {}).get('type')!r}, expected {expect.error!r}")
    problems += [f"step {name!r} did not run" for name in expect.steps if name not in ran]
    return problems


async def run_case(template: WorkflowTemplate, case: TestCase, library: TemplateLibrary) -> CaseResult:
    """One case; never raises for a failing template (the problems say what failed)."""
    tid = template.metadata.id

    def failed(*problems: str) -> CaseResult:
        return CaseResult(tid, case.name, False, list(problems))

    try:
        rendered = render(template, case.parameters, library)
        children = [parse_definition(child) for child in case.children]
    except DefinitionError as exc:
        return failed(*(str(p) for p in exc.problems))
    calls: list[tuple[str, int, Any]] = []
    connectors = Connectors([StubConnector(name, case.stubs, calls) for name in CONNECTOR_NAMES])
    settings = Settings(
        event_log_url="memory://", auth=False, retention_interval=0, analytics=False, secrets_key=new_key()
    )
    async with Runtime(settings, connectors=connectors, recover=False, role="template-test") as runtime:
        for name in _secret_names(rendered.template.parameters, rendered.parameters):
            await runtime.secrets.put(TEST_TENANT, name, f"test-value-of-{name}")
        try:
            for child in children:
                await runtime.register(child)
            definition = await runtime.register(rendered.definition)
            started = await runtime.start_execution(definition.name, case.input, actor="template-test")
            for event in case.events:
                await runtime.signal(started.execution_id, event.event, event.payload, actor="template-test")
            state = await runtime.wait(started.execution_id, timeout=case.timeout_seconds)
        except DefinitionError as exc:
            return failed(*(str(p) for p in exc.problems))
        except TimeoutError:
            return failed(f"did not finish within {case.timeout_seconds} s")
        except Exception as exc:  # a case reports, the suite goes on
            return failed(f"{type(exc).__name__}: {exc}")
        ran = set(state.outputs) | {step for step, _, _ in calls}
        problems = compare(case, state.status, state.output, state.error, ran)
        return CaseResult(tid, case.name, not problems, problems, state.status, state.output)


async def run_tests(document: Any, library: TemplateLibrary, only: str | None = None) -> list[CaseResult]:
    """Every test case of a template (or only the one named ``only``)."""
    template = parse_template(document)
    results = []
    if not template.tests:
        return [CaseResult(template.metadata.id, "(none)", False, ["the template has no test cases"])]
    for case in template.tests:
        if only is None or case.name == only:
            results.append(await run_case(template, case, library))
    return results
