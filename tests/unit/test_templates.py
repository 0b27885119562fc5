"""Templates: placeholders, composition, parameter checks, rendering, provenance, extraction,
and every shipped template's own test cases (one parametrized test over the library)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from orchestrator.templates import placeholders, semver
from orchestrator.templates.errors import TemplateError
from orchestrator.templates.extract import from_workflow
from orchestrator.templates.installer import TemplateInstaller
from orchestrator.templates.library import SHIPPED, TemplateLibrary, parse_template
from orchestrator.templates.render import render
from orchestrator.templates.testing import run_tests
from schemas.validation import DefinitionError

LIBRARY = TemplateLibrary.from_paths([])


def base(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "metadata": {"id": "greet", "version": "1.0.0", "title": "Greet"},
        "parameters": {
            "type": "object",
            "required": ["who"],
            "properties": {
                "who": {"type": "string"},
                "times": {"type": "integer", "default": 2, "minimum": 1},
                "token": {"type": "string", "format": "secret-ref", "default": "GREET_TOKEN"},
            },
        },
        "workflow": {
            "name": "greet",
            "steps": [
                {"name": "hello", "type": "task", "connector": "noop",
                 "input": {"who": "{{% params.who | jmespath %}}", "times": "{{% params.times %}}"}, "next": "done"},
                {"name": "done", "type": "succeed", "output": "steps.hello"},
            ],
        },
        "tests": [{"name": "ok", "parameters": {"who": "ada"}, "expect": {"status": "succeeded",
                   "output": {"who": "ada", "times": 2}}}],
    }  # fmt: skip
    document.update(overrides)
    return document


def test_whole_value_placeholders_keep_their_type_and_embedded_ones_become_text() -> None:
    scope = {"params": {"n": 3, "items": [1, 2], "name": "it's"}}
    assert placeholders.render("{{% params.n %}}", scope) == 3
    assert placeholders.render(" {{% params.items %}} ", scope) == [1, 2]
    assert placeholders.render("n={{% params.n %}}", scope) == "n=3"
    assert placeholders.render("{{% params.name | jmespath %}}", scope) == "'it\\'s'"


def test_unknown_placeholders_are_all_reported_with_paths() -> None:
    with pytest.raises(placeholders.PlaceholderError) as caught:
        placeholders.render({"a": "{{% params.x %}}", "b": ["{{% params.y | nope %}}"]}, {"params": {"y": 1}})
    assert [where for where, _ in caught.value.problems] == ["workflow.a", "workflow.b[0]"]


def test_jmespath_is_never_taken_for_a_placeholder() -> None:
    for expression in ("[[0]]", "{a: {b: c}}", "foo[?a == `1`] | [0]", "${x}"):
        assert placeholders.render(expression, {"params": {}}) == expression


def test_ranges() -> None:
    assert semver.satisfies("1.4.2", "^1.2.0") and not semver.satisfies("2.0.0", "^1.2.0")
    assert semver.satisfies("1.2.9", "~1.2.0") and not semver.satisfies("1.3.0", "~1.2.0")
    assert semver.satisfies("0.1.0", ">=0.1.0,<2.0.0") and semver.satisfies("9.9.9", "*")
    with pytest.raises(semver.RangeInvalid):
        semver.check_range("about one")


def test_rendering_applies_defaults_and_records_provenance() -> None:
    rendered = render(base(), {"who": "ada"}, LIBRARY)
    assert rendered.definition.steps[0].input == {"who": "'ada'", "times": 2}  # type: ignore[union-attr]
    provenance = rendered.definition.provenance
    assert provenance is not None and provenance.template == "greet" and provenance.template_version == "1.0.0"
    assert provenance.parameters == {"who": "ada", "times": 2, "token": "GREET_TOKEN"}
    assert len(provenance.checksum) == 64


def test_every_parameter_problem_at_once_with_paths() -> None:
    with pytest.raises(TemplateError) as caught:
        render(base(), {"times": 0, "token": "sk_live_123 456"}, LIBRARY)
    assert caught.value.code == "invalid_parameters"
    where = sorted(p.location for p in caught.value.problems)
    assert where == ["params", "params.times", "params.token"]


def test_the_rendered_definition_is_validated() -> None:
    document = base()
    document["workflow"]["steps"][1]["output"] = "steps.[["
    with pytest.raises(DefinitionError) as caught:
        render(document, {"who": "ada"}, LIBRARY)
    assert any("rendered workflow" in p.location for p in caught.value.problems)


def test_extends_overrides_parameters_and_steps_by_name() -> None:
    parent = parse_template(base())
    child = base(
        metadata={"id": "greet-loud", "version": "1.0.0", "title": "Loud"},
        extends="greet@^1.0.0",
        parameters={"type": "object", "properties": {"times": {"type": "integer", "default": 5}}},
        workflow={"steps": [{"name": "done", "type": "succeed", "output": "steps.hello.times"}]},
    )
    library = TemplateLibrary([parent])
    rendered = render(child, {"who": "bo"}, library)
    assert rendered.definition.name == "greet"
    assert [s.name for s in rendered.definition.steps] == ["hello", "done"]
    assert rendered.definition.steps[1].output == "steps.hello.times"  # type: ignore[union-attr]
    assert rendered.parameters["times"] == 5


def test_an_inheritance_cycle_is_an_error() -> None:
    a = parse_template(base(metadata={"id": "a", "version": "1.0.0", "title": "A"}, extends="b"))
    b = parse_template(base(metadata={"id": "b", "version": "1.0.0", "title": "B"}, extends="a"))
    with pytest.raises(TemplateError, match="inheritance cycle: a -> b -> a"):
        render(a, {"who": "x"}, TemplateLibrary([a, b]))


def test_fragments_are_inserted_by_name_and_conflicts_are_errors() -> None:
    steps = [
        {"include": "retry-with-dead-letter",
         "with": {"name": "call", "connector": "http", "config": {"url": "https://example.com"}, "next": "done"}},
        {"name": "done", "type": "succeed"},
    ]  # fmt: skip
    document = base(include=["retry-with-dead-letter@^1.0.0"], workflow={"name": "w", "steps": steps})
    names = [s.name for s in render(document, {"who": "x"}, LIBRARY).definition.steps]
    assert names == ["call", "call_dead_letter", "call_dead_lettered", "done"]
    clash = base(include=["retry-with-dead-letter"], workflow={"name": "w", "steps": [*steps, {"name": "call_dead_letter", "type": "succeed"}]})
    with pytest.raises(TemplateError, match="conflicts"):
        render(clash, {"who": "x"}, LIBRARY)
    unlisted = base(workflow={"name": "w", "steps": steps})
    with pytest.raises(TemplateError, match="not listed in include"):
        render(unlisted, {"who": "x"}, LIBRARY)


def test_an_unsupported_engine_is_refused() -> None:
    document = base(metadata={"id": "greet", "version": "1.0.0", "title": "G", "engine": ">=9.0.0"})
    with pytest.raises(TemplateError, match="engine"):
        render(document, {"who": "x"}, LIBRARY, engine="0.1.0")


async def test_a_failing_case_is_reported() -> None:
    document = base()
    document["tests"][0]["expect"]["output"] = {"who": "someone else"}
    [result] = await run_tests(document, LIBRARY)
    assert not result.passed and "expected" in result.problems[0]


async def test_install_records_provenance_and_upgrade_diffs() -> None:
    async with Runtime(Settings(event_log_url="memory://", auth=False, retention_interval=0)) as runtime:
        installer = TemplateInstaller(runtime, LIBRARY)
        answer = await installer.install(base(), {"who": "ada"}, tenant="default", actor="test")
        assert answer["workflow"] == "greet" and answer["version"] == 1 and answer["template"] == "greet"
        stored = await runtime.definition("greet")
        assert stored.provenance is not None and stored.provenance.parameters["who"] == "ada"
        newer = base(metadata={"id": "greet", "version": "1.1.0", "title": "Greet"})
        newer["workflow"]["steps"][1]["description"] = "the greeting"
        current, rendered, diff = await installer.plan_upgrade("greet", newer)
        assert rendered.definition.provenance.template_version == "1.1.0"  # type: ignore[union-attr]
        assert diff.compatibility == "safe" and current.version == 1
        upgraded = await installer.upgrade("greet", newer)
        assert upgraded["version"] == 2 and upgraded["parameters"]["who"] == "ada"


def test_from_workflow_lifts_values_into_parameters() -> None:
    definition = render(base(), {"who": "ada"}, LIBRARY).definition
    template = from_workflow(definition, {"steps.hello.input.times": "times"}, template_id="greet-copy")
    assert template["parameters"]["properties"]["times"]["default"] == 2
    again = render(template, {}, LIBRARY).definition
    assert again.steps == definition.steps
    assert render(template, {"times": 4}, LIBRARY).definition.steps[0].input["times"] == 4  # type: ignore[union-attr]
    with pytest.raises(TemplateError, match="no step named"):
        from_workflow(definition, {"steps.nope.input": "x"})


def test_at_least_twenty_templates_ship_in_the_package() -> None:
    assert SHIPPED.is_dir() and len(LIBRARY.ids()) >= 20


@pytest.mark.parametrize("template_id", LIBRARY.ids())
async def test_shipped_template(template_id: str) -> None:
    results = await run_tests(LIBRARY.find(template_id), LIBRARY)
    failed = [f"{r.case}: {r.problems}" for r in results if not r.passed]
    assert not failed, failed


def test_the_published_template_schema_is_current() -> None:
    from schemas.publish import TEMPLATE_PATH, render_template_schema

    assert TEMPLATE_PATH.read_text(encoding="utf-8") == render_template_schema(), "run python -m schemas.publish"
