"""What a definition needs from outside itself (schemas/dependencies.py): connectors, child
workflows and versions, and the order a batch must be registered in."""

from __future__ import annotations

from typing import Any

from schemas.definition import WorkflowDefinition
from schemas.dependencies import children, connector_problems, dependency_order, subworkflow_problems
from schemas.validation import parse_definition

DONE = {"name": "done", "type": "succeed"}


def definition(name: str, *steps: dict[str, Any], version: int | None = None) -> WorkflowDefinition:
    data: dict[str, Any] = {"name": name, "steps": [*steps, DONE]}
    if version is not None:
        data["version"] = version
    return parse_definition(data)


def child(workflow: str, version: int | None = None, name: str = "kid") -> dict[str, Any]:
    step: dict[str, Any] = {"name": name, "type": "subworkflow", "workflow": workflow, "next": "done"}
    if version is not None:
        step["version"] = version
    return step


def task(name: str, connector: str) -> dict[str, Any]:
    return {"name": name, "type": "task", "connector": connector, "next": "done"}


def test_an_unknown_connector_is_reported_where_the_step_names_it() -> None:
    parallel = {"name": "fan", "type": "parallel", "next": "done",
                "branches": [{"steps": [{"name": "inner", "type": "task", "connector": "smtp"}]}]}  # fmt: skip
    wf = definition("wf", task("a", "noop") | {"next": "fan"}, parallel)
    [problem] = connector_problems(wf, ["http", "noop", "python"])
    assert problem.location == "steps[1].branches[0].steps[0].connector"
    assert problem.message == "unknown connector 'smtp' (this process has: http, noop, python)"
    assert connector_problems(wf, ["noop", "smtp"]) == []


def test_a_child_workflow_must_be_registered() -> None:
    wf = definition("parent", child("kid"))
    assert children(wf) == {"kid"}
    [problem] = subworkflow_problems(wf, {"kid": []})
    assert (problem.location, problem.message) == ("steps[0].workflow", "unknown workflow 'kid': register it first")
    assert subworkflow_problems(wf, {"kid": [1]}) == []


def test_a_pinned_version_must_be_registered() -> None:
    wf = definition("parent", child("kid", version=3))
    [problem] = subworkflow_problems(wf, {"kid": [1, 2]})
    assert problem.location == "steps[0].version"
    assert problem.message == "workflow 'kid' has no version 3 (registered: 1, 2)"
    assert subworkflow_problems(wf, {"kid": [1, 2, 3]}) == []


def test_a_workflow_may_start_itself_unpinned_or_pinned_to_a_version_it_has_or_gets() -> None:
    assert subworkflow_problems(definition("tree", child("tree")), {}) == []
    assert subworkflow_problems(definition("tree", child("tree", version=1)), {}) == []  # it will be v1
    assert subworkflow_problems(definition("tree", child("tree", version=2), version=2), {"tree": [1]}) == []
    [problem] = subworkflow_problems(definition("tree", child("tree", version=5)), {"tree": [1]})
    assert problem.message == "workflow 'tree' has no version 5 (registered: 1)"


def test_a_batch_is_ordered_children_first_else_as_given() -> None:
    batch = [definition("parent", child("middle")), definition("leaf"), definition("middle", child("leaf")),
             definition("other")]  # fmt: skip
    assert dependency_order(batch) == ([1, 2, 0, 3], [])
    assert dependency_order([definition("a"), definition("b")]) == ([0, 1], [])


def test_every_version_of_a_child_comes_before_its_parent() -> None:
    batch = [definition("kid", version=1), definition("parent", child("kid", version=2)), definition("kid", version=2)]
    assert dependency_order(batch) == ([0, 2, 1], [])


def test_workflows_that_start_each_other_cannot_be_ordered() -> None:
    batch = [definition("a", child("b")), definition("b", child("a")), definition("c", child("a")),
             definition("self", child("self"))]  # fmt: skip
    order, [problem] = dependency_order(batch)
    assert order == [3]
    assert "workflows 'a', 'b', 'c' start each other" in problem.message
