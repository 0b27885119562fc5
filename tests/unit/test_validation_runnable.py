"""What validation refuses because it could only fail later: loops that never wait, input schemas
with remote or dangling references, window sizes the windowed trigger cannot run. Each rule has a
case that passes, so none of them refuses everything."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from orchestrator.core.commands import StartExecution
from orchestrator.core.machine import decide
from schemas.graph import WorkflowGraph
from schemas.validation import (
    MAX_WINDOW_SECONDS,
    MAX_WINDOW_THRESHOLD,
    DefinitionError,
    parse_definition,
)


def wf(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "wf", "steps": list(steps), **top}


def choice(name: str, *rules: tuple[str, str], default: str | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"name": name, "type": "choice", "choices": [{"when": w, "next": n} for w, n in rules]}
    if default is not None:
        step["default"] = default
    return step


def task(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "task", "connector": "noop", **fields}


DONE = {"name": "done", "type": "succeed"}


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(data)
    return [(p.location, p.message) for p in raised.value.problems]


# -- loops that never wait ---------------------------------------------------------------------


def test_a_cycle_of_choices_is_refused_with_the_loop_and_its_first_step() -> None:
    found = problems(wf(choice("c1", ("input.stop", "done"), default="c2"), choice("c2", ("input.stop", "done"), default="c1"), DONE))
    [(location, message)] = found
    assert location == "steps[0]"
    assert "'c1' -> 'c2' -> 'c1'" in message and "go round forever" in message


def test_a_choice_looping_on_itself_is_refused() -> None:
    [(location, message)] = problems(wf(task("a", next="c"), choice("c", ("input.again", "c"), default="done"), DONE))
    assert location == "steps[1]" and "'c' -> 'c'" in message


@pytest.mark.parametrize(
    "spinner",
    [
        {"name": "w", "type": "wait", "seconds": 0, "next": "c"},
        {"name": "w", "type": "parallel", "next": "c",
         "branches": [{"steps": [choice("inner", ("input.x", "fin"), default="fin"), {"name": "fin", "type": "succeed"}]}]},
    ],
    ids=["zero-second wait", "parallel that cannot wait"],
)  # fmt: skip
def test_steps_that_pass_straight_through_do_not_break_a_loop(spinner: dict[str, Any]) -> None:
    [(location, message)] = problems(wf(choice("c", ("input.go", "w"), default="done"), spinner, DONE))
    assert location == "steps[0]" and "'c' -> 'w' -> 'c'" in message


@pytest.mark.parametrize(
    "worker",
    [
        task("w", next="c"),
        {"name": "w", "type": "wait", "seconds": 1, "next": "c"},
        {"name": "w", "type": "wait", "until": "input.at", "next": "c"},
        {"name": "w", "type": "wait_for_event", "event": "go", "next": "c"},
        {"name": "w", "type": "subworkflow", "workflow": "child", "next": "c"},
        {"name": "w", "type": "parallel", "next": "c", "branches": [{"steps": [task("inner")]}]},
    ],
    ids=["task", "wait", "wait until", "wait_for_event", "subworkflow", "parallel with a task"],
)
def test_a_loop_through_a_step_that_waits_or_works_is_fine(worker: dict[str, Any]) -> None:
    parse_definition(wf(choice("c", ("input.again", "w"), default="done"), worker, DONE))


def test_a_loop_reached_after_other_steps_is_found_and_reported_once() -> None:
    found = problems(
        wf(task("a", next="c1"), choice("c1", ("input.x", "c2"), default="c3"),
           choice("c2", ("input.z", "done"), default="c3"), choice("c3", ("input.y", "done"), default="c1"), DONE)
    )  # fmt: skip
    assert [location for location, _ in found] == ["steps[1]"]


def test_the_machine_would_spin_on_what_validation_refuses() -> None:
    """The refused loop is a real one: the machine's guard stops it at the first start."""
    data = wf(choice("c1", ("input.stop", "done"), default="c2"), choice("c2", ("input.stop", "done"), default="c1"), DONE)
    problems(data)
    from orchestrator.core.machine import CommandRejected
    from schemas.definition import WorkflowDefinition

    graph = WorkflowGraph.build(WorkflowDefinition.model_validate({**data, "version": 1}))
    with pytest.raises(CommandRejected, match="too many transitions"):
        decide(graph, None, StartExecution(execution_id="e", now=0.0, workflow="wf", version=1, input={}))


# -- input schema references -------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    ["https://schemas.invalid/order.json", "http://schemas.invalid/x#/a", "file:///etc/passwd",
     "order.json", "urn:example:order"],
)  # fmt: skip
def test_a_reference_out_of_the_input_schema_is_refused(ref: str) -> None:
    schema = {"type": "object", "properties": {"order": {"$ref": ref}}}
    [(location, message)] = problems(wf(DONE, input_schema=schema))
    assert location == "input_schema['properties']['order']['$ref']"
    assert "only local references" in message and ref in message


def test_a_property_named_like_a_keyword_is_still_a_schema() -> None:
    schema = {"properties": {"enum": {"$ref": "https://schemas.invalid/e"}, "$ref": {"type": "string"}}}
    [(location, _)] = problems(wf(DONE, input_schema=schema))
    assert location == "input_schema['properties']['enum']['$ref']"


def test_remote_dynamic_references_are_refused_too() -> None:
    schema = {"$defs": {"x": {"$dynamicRef": "https://schemas.invalid/meta#items"}}}
    [(location, _)] = problems(wf(DONE, input_schema=schema))
    assert location == "input_schema['$defs']['x']['$dynamicRef']"


def test_a_local_reference_must_point_at_something() -> None:
    schema = {"type": "object", "$defs": {"id": {"type": "string"}},
              "properties": {"a": {"$ref": "#/$defs/id"}, "b": {"$ref": "#/$defs/missing"}, "c": {"$ref": "#nowhere"}}}  # fmt: skip
    found = problems(wf(DONE, input_schema=schema))
    assert found == [
        ("input_schema['properties']['b']['$ref']", "'#/$defs/missing' points at nothing in the input schema"),
        ("input_schema['properties']['c']['$ref']", "'#nowhere' points at nothing in the input schema"),
    ]


def test_local_references_are_fine_and_work_at_start() -> None:
    schema = {
        "type": "object",
        "$defs": {"id": {"type": "string", "$anchor": "ident"}, "a/b": {"type": "integer"}},
        "properties": {"id": {"$ref": "#/$defs/id"}, "n": {"$ref": "#/$defs/a~1b"}, "again": {"$ref": "#ident"},
                       "self": {"$ref": "#"}},
        # values, not schemas: a "$ref" in an enum or a default is data
        "default": {"$ref": "https://data.invalid"},
        "enum": [{"$ref": "remote.json"}],
    }  # fmt: skip
    definition = parse_definition(wf(DONE, input_schema=schema))
    validator = jsonschema.Draft202012Validator(definition.input_schema)
    assert not validator.is_valid({"id": 5})  # the references resolve (no fetch, no error)


# -- window sizes ------------------------------------------------------------------------------


def window(**fields: Any) -> dict[str, Any]:
    trigger = {"type": "kafka_window", "name": "w", "topics": ["t"], "key": "data.user",
               "window_seconds": 60, "threshold": 5, **fields}  # fmt: skip
    return wf(DONE, triggers=[trigger])


@pytest.mark.parametrize("seconds", [0.5, 0.001, MAX_WINDOW_SECONDS + 1, 1e300, float("inf")])
def test_window_sizes_the_trigger_cannot_run_are_refused(seconds: float) -> None:
    [(location, message)] = problems(window(window_seconds=seconds))
    assert location == "triggers[0].window_seconds" and "must be from 1" in message


@pytest.mark.parametrize("seconds", [0, -5])
def test_non_positive_window_sizes_are_refused(seconds: float) -> None:
    assert [loc for loc, _ in problems(window(window_seconds=seconds))] == ["triggers[0].window_seconds"]


def test_a_threshold_beyond_what_a_window_can_hold_is_refused() -> None:
    [(location, message)] = problems(window(threshold=MAX_WINDOW_THRESHOLD + 1))
    assert location == "triggers[0].threshold" and f"at most {MAX_WINDOW_THRESHOLD}" in message
    assert [loc for loc, _ in problems(window(threshold=0))] == ["triggers[0].threshold"]


@pytest.mark.parametrize("seconds", [1, 1.5, 19.5, 60, 3600, MAX_WINDOW_SECONDS])
def test_window_sizes_the_trigger_runs_are_fine_and_give_at_most_20_windows(seconds: float) -> None:
    from faust.windows import HoppingWindow

    from triggers.window_counts import hop_step

    parse_definition(window(window_seconds=seconds, threshold=MAX_WINDOW_THRESHOLD))
    hop = hop_step(seconds)
    assert 1 <= hop <= seconds
    ranges = HoppingWindow(seconds, hop, expires=2 * seconds).ranges(1_767_225_600.5)
    assert 1 <= len(ranges) <= 20
