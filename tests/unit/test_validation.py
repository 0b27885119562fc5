"""Definition validation: every rule, with the location it reports; loading YAML/JSON files;
the published JSON Schema of definitions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from schemas import publish
from schemas.definition import WorkflowDefinition
from schemas.loader import load_data, load_definition
from schemas.validation import DefinitionError, Problem, parse_definition, validate


def wf(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "wf", "steps": list(steps), **top}


def task(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "task", "connector": "noop", **fields}


def succeed(name: str = "done", **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "succeed", **fields}


def branches(*lists: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"steps": steps} for steps in lists]


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(data)
    assert str(raised.value).startswith("invalid workflow definition:")
    return [(p.location, p.message) for p in raised.value.problems]


def test_a_valid_definition_with_every_step_kind_passes() -> None:
    definition = parse_definition(
        wf(
            task(
                "a",
                input={"x": "input.x", "list": ["input.y", 3]},
                output="result",
                next="route",
                on_error="oops",
                timeout_seconds=5,
                retry={"max_attempts": 3, "retry_on": ["http.*"]},
            ),
            {
                "name": "route",
                "type": "choice",
                "default": "fan",
                "choices": [{"when": "steps.a.skip", "next": "done"}],
            },
            {
                "name": "fan",
                "type": "parallel",
                "next": "pause",
                "on_error": "oops",
                "branches": branches([task("b1", next="b2"), task("b2")], [succeed("b3")]),
            },
            {"name": "pause", "type": "wait", "seconds": 1, "next": "until"},
            {"name": "until", "type": "wait", "until": "input.at", "next": "event"},
            {
                "name": "event",
                "type": "wait_for_event",
                "event": "go",
                "correlation_key": "input.id",
                "timeout_seconds": 9,
                "on_timeout": "oops",
                "next": "child",
            },
            {
                "name": "child",
                "type": "subworkflow",
                "workflow": "other",
                "input": {"id": "input.id"},
                "next": "done",
                "on_error": "oops",
            },
            succeed("done", output="steps"),
            {"name": "oops", "type": "fail", "error": "Oops", "cause": "'bad'"},
            output="steps.done",
            input_schema={"type": "object", "properties": {"x": {"type": "number"}}},
            triggers=[
                {
                    "type": "webhook",
                    "name": "hook",
                    "idempotency_field": "id",
                    "signature": {"preset": "generic", "secret": "HOOK", "header": "X-Sig"},
                }
            ],
        )
    )
    assert isinstance(definition, WorkflowDefinition)
    assert validate(definition) == []


# -- references ---------------------------------------------------------------------------------


REFERENCES = [
    (wf(task("a", next="nope")), "steps[0].next"),
    (wf(task("a", on_error="nope")), "steps[0].on_error"),
    (
        wf(
            {
                "name": "c",
                "type": "choice",
                "choices": [{"when": "a", "next": "d"}, {"when": "b", "next": "nope"}],
            },
            succeed("d"),
        ),
        "steps[0].choices[1].next",
    ),
    (
        wf(
            {
                "name": "c",
                "type": "choice",
                "default": "nope",
                "choices": [{"when": "a", "next": "d"}],
            },
            succeed("d"),
        ),
        "steps[0].default",
    ),
    (wf({"name": "w", "type": "wait", "seconds": 1, "next": "nope"}), "steps[0].next"),
    (wf({"name": "e", "type": "wait_for_event", "event": "x", "next": "nope"}), "steps[0].next"),
    (
        wf(
            {
                "name": "e",
                "type": "wait_for_event",
                "event": "x",
                "timeout_seconds": 1,
                "on_timeout": "nope",
            }
        ),
        "steps[0].on_timeout",
    ),
    (
        wf({"name": "p", "type": "parallel", "branches": branches([succeed("x")]), "next": "nope"}),
        "steps[0].next",
    ),
    (
        wf(
            {
                "name": "p",
                "type": "parallel",
                "branches": branches([succeed("x")]),
                "on_error": "nope",
            }
        ),
        "steps[0].on_error",
    ),
    (wf({"name": "s", "type": "subworkflow", "workflow": "o", "next": "nope"}), "steps[0].next"),
    (
        wf({"name": "s", "type": "subworkflow", "workflow": "o", "on_error": "nope"}),
        "steps[0].on_error",
    ),
    (
        wf({"name": "p", "type": "parallel", "branches": branches([task("x", next="nope")])}),
        "steps[0].branches[0].steps[0].next",
    ),
    (wf(task("a"), start="nope"), "start"),
]


@pytest.mark.parametrize(("data", "location"), REFERENCES)
def test_unknown_references_are_reported_where_they_are(
    data: dict[str, Any], location: str
) -> None:
    assert problems(data) == [(location, "unknown step 'nope'")]


def test_references_across_scopes_are_reported() -> None:
    data = wf(
        task("top", next="fan"),
        {
            "name": "fan",
            "type": "parallel",
            "next": "b1",
            "branches": branches([task("a1", next="top")], [task("b1", next="a1")]),
        },
    )
    assert problems(data) == [
        ("steps[1].next", "step 'b1' is in another branch or scope"),
        ("steps[1].branches[0].steps[0].next", "step 'top' is in another branch or scope"),
        ("steps[1].branches[1].steps[0].next", "step 'a1' is in another branch or scope"),
    ]


def test_start_inside_a_branch_is_reported() -> None:
    data = wf({"name": "p", "type": "parallel", "branches": branches([succeed("a")])}, start="a")
    assert ("start", "step 'a' is inside a parallel branch") in problems(data)


# -- reachability, duplicates -------------------------------------------------------------------


def test_unreachable_steps_are_reported_at_top_level_and_in_branches() -> None:
    data = wf(
        task("a", next="fan"),
        task("island", next="a"),
        {"name": "fan", "type": "parallel", "branches": branches([task("b1"), task("b2")])},
    )
    assert problems(data) == [
        ("steps[1]", "step 'island' is unreachable"),
        ("steps[2].branches[0].steps[1]", "step 'b2' is unreachable"),
    ]


def test_steps_reached_only_by_on_error_or_a_choice_are_reachable() -> None:
    data = wf(
        task("a", on_error="caught"),
        {"name": "caught", "type": "choice", "choices": [{"when": "x", "next": "end"}]},
        succeed("end"),
    )
    assert validate(parse_definition(data)) == []


def test_duplicate_names_are_reported_at_every_occurrence_also_across_branches() -> None:
    data = wf(
        task("a", next="fan"),
        {
            "name": "fan",
            "type": "parallel",
            "branches": branches([task("x")], [task("x", next="a2")]),
        },
        task("a"),
    )
    found = problems(data)
    assert ("steps[0].name", "duplicate step name 'a'") in found
    assert ("steps[2].name", "duplicate step name 'a'") in found
    assert ("steps[1].branches[0].steps[0].name", "duplicate step name 'x'") in found
    assert ("steps[1].branches[1].steps[0].name", "duplicate step name 'x'") in found


# -- expressions --------------------------------------------------------------------------------

BAD = "foo.["

EXPRESSIONS = [
    (wf(task("a", input={"x": BAD})), "steps[0].input.x"),
    (wf(task("a", input={"deep": {"list": ["ok", BAD]}})), "steps[0].input.deep.list[1]"),
    (wf(task("a", output=BAD)), "steps[0].output"),
    (
        wf({"name": "s", "type": "subworkflow", "workflow": "o", "input": {"y": BAD}}),
        "steps[0].input.y",
    ),
    (wf(succeed("s", output=BAD)), "steps[0].output"),
    (
        wf(
            {
                "name": "c",
                "type": "choice",
                "choices": [{"when": "ok", "next": "d"}, {"when": BAD, "next": "d"}],
            },
            succeed("d"),
        ),
        "steps[0].choices[1].when",
    ),
    (wf({"name": "w", "type": "wait", "until": BAD}), "steps[0].until"),
    (
        wf({"name": "e", "type": "wait_for_event", "event": "x", "correlation_key": BAD}),
        "steps[0].correlation_key",
    ),
    (wf({"name": "f", "type": "fail", "cause": BAD}), "steps[0].cause"),
    (wf(succeed(), output=BAD), "output"),
    (
        wf(succeed(), triggers=[{"type": "webhook", "name": "h", "idempotency_field": BAD}]),
        "triggers[0].idempotency_field",
    ),
    (
        wf({"name": "p", "type": "parallel", "branches": branches([task("x", input={"z": BAD})])}),
        "steps[0].branches[0].steps[0].input.z",
    ),
]


@pytest.mark.parametrize(("data", "location"), EXPRESSIONS)
def test_bad_jmespath_is_reported_in_every_expression_field(
    data: dict[str, Any], location: str
) -> None:
    [(where, message)] = problems(data)
    assert where == location
    assert message.startswith(f"invalid expression {BAD!r}")


def test_non_string_values_in_input_mappings_are_literals() -> None:
    assert (
        validate(
            parse_definition(wf(task("a", input={"n": 1, "b": True, "none": None, "l": [1.5]})))
        )
        == []
    )


# -- per-kind rules, input schema, triggers -----------------------------------------------------


@pytest.mark.parametrize("fields", [{}, {"seconds": 1, "until": "input.at"}])
def test_a_wait_needs_exactly_one_of_seconds_or_until(fields: dict[str, Any]) -> None:
    data = wf({"name": "w", "type": "wait", **fields})
    assert problems(data) == [("steps[0]", "a wait step needs exactly one of 'seconds' or 'until'")]


def test_on_timeout_needs_timeout_seconds() -> None:
    data = wf(
        {"name": "e", "type": "wait_for_event", "event": "x", "on_timeout": "d", "next": "d"},
        succeed("d"),
    )
    assert problems(data) == [("steps[0].on_timeout", "'on_timeout' needs 'timeout_seconds'")]


@pytest.mark.parametrize(
    ("schema", "location"),
    [
        ({"type": "nope"}, "input_schema['type']"),
        ({"required": "a"}, "input_schema['required']"),
        (
            {"type": "object", "properties": {"a": {"minimum": "1"}}},
            "input_schema['properties']['a']['minimum']",
        ),
    ],
)
def test_an_invalid_input_json_schema_is_reported(schema: dict[str, Any], location: str) -> None:
    [(where, message)] = problems(wf(succeed(), input_schema=schema))
    assert where == location and message.startswith("not a valid JSON Schema: ")


def test_every_input_schema_problem_is_reported() -> None:
    found = problems(wf(succeed(), input_schema={"type": "nope", "required": "a"}))
    assert {where for where, _ in found} == {"input_schema['type']", "input_schema['required']"}


def test_the_generic_signature_preset_needs_a_header() -> None:
    trigger = {"type": "webhook", "name": "h", "signature": {"preset": "generic", "secret": "S"}}
    assert problems(wf(succeed(), triggers=[trigger])) == [
        ("triggers[0].signature.header", "the generic preset needs 'header'"),
    ]
    for preset in ("github", "stripe"):
        trigger = {"type": "webhook", "name": "h", "signature": {"preset": preset, "secret": "S"}}
        assert validate(parse_definition(wf(succeed(), triggers=[trigger]))) == []


def test_duplicate_trigger_names_are_reported() -> None:
    hooks = [{"type": "webhook", "name": n} for n in ("a", "b", "a")]
    assert problems(wf(succeed(), triggers=hooks)) == [
        ("triggers[0].name", "duplicate trigger name 'a'"),
        ("triggers[2].name", "duplicate trigger name 'a'"),
    ]


# -- all at once, structure ---------------------------------------------------------------------


def test_several_problems_are_reported_at_once() -> None:
    data = wf(
        task("a", next="b", input={"x": BAD}),
        task("b", output=BAD),
        task("b"),
        {"name": "w", "type": "wait"},
        output="[",
        input_schema={"type": 5},
        triggers=[{"type": "webhook", "name": "h"}, {"type": "webhook", "name": "h"}],
    )
    found = problems(data)
    locations = [where for where, _ in found]
    for expected in [
        "steps[1].name",
        "steps[2].name",
        "steps[3]",
        "output",
        "steps[0].input.x",
        "steps[1].output",
        "input_schema['type']",
        "triggers[0].name",
        "triggers[1].name",
    ]:
        assert expected in locations, (expected, found)
    with pytest.raises(DefinitionError) as raised:
        parse_definition(data)
    text = str(raised.value)
    assert all(f"  {Problem(w, m)}" in text for w, m in found)


def test_unknown_references_hide_reachability_problems() -> None:
    """Reachability is meaningless while a reference is dangling; only the reference is reported."""
    assert problems(wf(task("a", next="nope"), task("island"))) == [
        ("steps[0].next", "unknown step 'nope'")
    ]


@pytest.mark.parametrize(
    ("data", "location", "message"),
    [
        (wf({"name": "a", "type": "task"}), "steps[0].connector", "Field required"),
        (wf({"name": "a", "type": "bogus"}), "steps[0]", "Input tag 'bogus'"),
        (wf(succeed("bad name")), "steps[0].name", "String should match pattern"),
        (wf(succeed(), extra=1), "extra", "Extra inputs are not permitted"),
        (wf(), "steps", "at least 1 item"),
        (
            wf({"name": "w", "type": "wait", "seconds": -1}),
            "steps[0].seconds",
            "greater than or equal to 0",
        ),
        (
            wf(task("a", retry={"max_attempts": 0})),
            "steps[0].retry.max_attempts",
            "greater than or equal to 1",
        ),
        ({"steps": [succeed()]}, "name", "Field required"),
    ],
)
def test_structural_problems_are_reported_with_their_location(
    data: dict[str, Any], location: str, message: str
) -> None:
    found = problems(data)
    assert any(where == location and message in what for where, what in found), found


def test_all_structural_problems_are_reported_at_once() -> None:
    found = problems(
        wf({"name": "a", "type": "task"}, {"name": "b", "type": "wait", "seconds": -1}, bogus=1)
    )
    assert len(found) == 3


def test_structural_and_semantic_problems_spell_locations_alike() -> None:
    assert problems(wf({"name": "a", "type": "task"})) == [("steps[0].connector", "Field required")]


def test_a_non_mapping_is_a_clear_problem() -> None:
    data: Any
    for data in (None, [], "text"):
        with pytest.raises(DefinitionError) as raised:
            parse_definition(data)
        assert [p.location for p in raised.value.problems] == ["(root)"]


# -- loading files ------------------------------------------------------------------------------


YAML = """\
name: hello
steps:
  - name: greet
    type: task
    connector: noop
    input: {who: input.name}
    next: done
  - name: done
    type: succeed
    output: steps.greet
"""


def test_load_yaml_and_json_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "hello.yaml"
    yaml_file.write_text(YAML)
    definition = load_definition(yaml_file)
    assert definition.name == "hello" and [s.name for s in definition.steps] == ["greet", "done"]
    json_file = tmp_path / "hello.json"
    json_file.write_text(json.dumps(definition.model_dump(mode="json")))
    assert load_definition(json_file) == definition
    assert load_data(yaml_file)["steps"][0]["input"] == {"who": "input.name"}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.yaml", "name: [unclosed\n", "not valid YAML/JSON"),
        ("tabs.yaml", "name: x\n\tsteps: []\n", "not valid YAML/JSON"),
        ("broken.json", '{"name": "x",}', "not valid YAML/JSON"),
        ("wrong.json", "name: yaml in a .json file", "not valid YAML/JSON"),
    ],
)
def test_unparseable_files_are_definition_errors_that_name_the_file(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DefinitionError) as raised:
        load_definition(path)
    [problem] = raised.value.problems
    assert problem.location == str(path) and problem.message.startswith(message)


def test_a_missing_file_is_a_definition_error(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as raised:
        load_definition(tmp_path / "absent.yaml")
    [problem] = raised.value.problems
    assert problem.location.endswith("absent.yaml") and "cannot read file" in problem.message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_a_file_that_is_not_a_mapping_is_a_definition_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    with pytest.raises(DefinitionError) as raised:
        load_definition(path)
    assert raised.value.problems[0].location == "(root)"


def test_a_loaded_file_gets_every_semantic_check(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        YAML.replace("next: done", "next: gone").replace("output: steps.greet", 'output: "foo.["')
    )
    with pytest.raises(DefinitionError) as raised:
        load_definition(path)
    locations = [p.location for p in raised.value.problems]
    assert locations == ["steps[0].next", "steps[1].output"]


# -- the published JSON Schema (schemas/publish.py) ---------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def published() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(publish.SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def schema_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(published())


def test_the_published_schema_file_is_up_to_date() -> None:
    """If this fails, run: python -m schemas.publish (and commit the file)."""
    assert publish.SCHEMA_PATH == ROOT / "schemas" / "workflow-definition.schema.json"
    assert publish.SCHEMA_PATH.read_text(encoding="utf-8") == publish.render()
    assert publish.main(["--check"]) == 0


def test_the_published_schema_is_a_valid_2020_12_schema_with_id_and_title() -> None:
    schema = published()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == publish.SCHEMA_ID and schema["title"] == publish.TITLE
    assert list(schema)[:2] == ["$schema", "$id"]
    assert {
        "TaskStep",
        "ChoiceStep",
        "ParallelStep",
        "WaitStep",
        "WaitForEventStep",
        "SubworkflowStep",
        "SucceedStep",
        "FailStep",
        "RetryPolicy",
        "WebhookTrigger",
    } <= set(schema["$defs"])


def example_definitions() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = [("every-step-kind", RICH)]
    found += [(p.name, load_data(p)) for p in sorted((ROOT / "examples").glob("*.yaml"))]
    for path in sorted((ROOT / "tests" / "golden").glob("*.json")):
        found.append((path.name, json.loads(path.read_text(encoding="utf-8"))["definition"]))
    return found


RICH = wf(
    task(
        "a",
        input={"x": "input.x", "list": ["input.y", 3]},
        output="result",
        next="fan",
        on_error="oops",
        timeout_seconds=5,
        config={"url": "https://x"},
        retry={
            "max_attempts": 3,
            "jitter": 0.2,
            "retry_on": ["http.*"],
            "non_retryable": ["auth.*"],
            "backoff": {"initial_seconds": 1, "multiplier": 2, "max_seconds": 30},
        },
    ),
    {
        "name": "fan",
        "type": "parallel",
        "next": "route",
        "on_error": "oops",
        "branches": [
            {"name": "one", "steps": [task("b1")]},
            {"steps": [succeed("b2", output="'x'")]},
        ],
    },
    {
        "name": "route",
        "type": "choice",
        "default": "pause",
        "choices": [{"when": "steps.a.skip", "next": "done"}],
    },
    {"name": "pause", "type": "wait", "seconds": 1.5, "next": "event"},
    {
        "name": "event",
        "type": "wait_for_event",
        "event": "go",
        "correlation_key": "input.id",
        "timeout_seconds": 9,
        "on_timeout": "oops",
        "next": "child",
    },
    {
        "name": "child",
        "type": "subworkflow",
        "workflow": "other",
        "version": 2,
        "input": {"id": "input.id"},
        "next": "done",
        "on_error": "oops",
    },
    succeed("done", output="steps"),
    {"name": "oops", "type": "fail", "error": "Oops", "cause": "'bad'"},
    version=4,
    description="d",
    output="steps.done",
    input_schema={"type": "object"},
    triggers=[
        {
            "type": "webhook",
            "name": "hook",
            "idempotency_header": "X-Id",
            "max_body_bytes": 1024,
            "signature": {"preset": "stripe", "secret": "HOOK", "tolerance_seconds": 60},
        }
    ],
)


@pytest.mark.parametrize(
    ("name", "data"), example_definitions(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_example_definitions_validate_against_the_published_schema(name: str, data: Any) -> None:
    parse_definition(data)  # the examples are valid for the models too
    assert [e.message for e in schema_validator().iter_errors(data)] == []


@pytest.mark.parametrize(
    "data",
    [
        wf({"name": "a", "type": "task"}),  # no connector
        wf({"name": "a", "type": "bogus"}),
        wf(succeed(), bogus=1),
        wf(succeed("bad name")),
        wf(),
        wf({"name": "w", "type": "wait", "seconds": -1}),
        wf(task("a", retry={"max_attempts": 0})),
        wf(
            succeed(),
            triggers=[
                {"type": "webhook", "name": "h", "signature": {"preset": "x", "secret": "S"}}
            ],
        ),
    ],
)
def test_structurally_invalid_definitions_fail_the_published_schema_too(
    data: dict[str, Any],
) -> None:
    assert list(schema_validator().iter_errors(data)) != []
    with pytest.raises(DefinitionError):
        parse_definition(data)


def test_publish_writes_only_when_the_content_changes(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    assert publish.write(target) is True
    assert target.read_text(encoding="utf-8") == publish.render()
    assert publish.write(target) is False
    assert publish.main(["--check", "--path", str(target)]) == 0
    target.write_text("{}\n")
    assert publish.main(["--check", "--path", str(target)]) == 1
    assert publish.main(["--path", str(target)]) == 0
    assert publish.main(["--check", "--path", str(target)]) == 0


def test_python_m_schemas_publish_check_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "schemas.publish", "--check"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
