"""schemas.definition_diff: per-field changes between versions, each with its compatibility impact."""

from __future__ import annotations

import copy
from typing import Any

from schemas.definition_diff import BREAKING, CONDITIONAL, SAFE, DefinitionDiff, diff_definitions
from schemas.validation import parse_definition

BASE: dict[str, Any] = {
    "name": "shop",
    "version": 1,
    "description": "Charge, then notify.",
    "input_schema": {"type": "object", "required": ["order_id"]},
    "triggers": [{"type": "webhook", "name": "orders"}],
    "steps": [
        {
            "name": "charge",
            "type": "task",
            "connector": "http",
            "config": {"url": "https://pay.example/charge"},
            "input": {"order": "input.order_id"},
            "retry": {"max_attempts": 3},
            "next": "route",
        },
        {
            "name": "route",
            "type": "choice",
            "choices": [{"when": "steps.charge.ok", "next": "both"}],
            "default": "refund",
        },
        {
            "name": "both",
            "type": "parallel",
            "branches": [
                {
                    "steps": [
                        {"name": "notify", "type": "task", "connector": "noop", "next": "log"},
                        {"name": "log", "type": "task", "connector": "noop"},
                    ]
                },
                {"steps": [{"name": "ship", "type": "task", "connector": "noop"}]},
            ],
            "next": "done",
        },
        {"name": "refund", "type": "task", "connector": "noop", "next": "done"},
        {"name": "done", "type": "succeed"},
    ],
}


def changed(edit: Any, version: int = 2) -> DefinitionDiff:
    data = copy.deepcopy(BASE)
    edit(data)
    data["version"] = version
    return diff_definitions(parse_definition(BASE), parse_definition(data))


def step(data: dict[str, Any], name: str) -> dict[str, Any]:
    for top in data["steps"]:
        if top["name"] == name:
            return dict(top)
        for branch in top.get("branches", []):
            for inner in branch["steps"]:
                if inner["name"] == name:
                    return dict(inner)
    raise KeyError(name)


def by_path(diff: DefinitionDiff) -> dict[str, dict[str, Any]]:
    return {change["path"]: change for change in diff.to_dict()["changes"]}


def test_identical_versions() -> None:
    diff = changed(lambda d: None)
    assert diff.identical and diff.compatibility == SAFE and diff.changes == ()
    assert diff.render() == ["shop v1 -> v2: identical"]


def test_a_retry_count_is_conditional() -> None:
    diff = changed(lambda d: d["steps"][0]["retry"].update(max_attempts=5))
    assert by_path(diff) == {
        "steps.charge.retry.max_attempts": {
            "path": "steps.charge.retry.max_attempts",
            "kind": "changed",
            "from": 3,
            "to": 5,
            "impact": CONDITIONAL,
            "reason": "decides whether and when a failed attempt is retried (matters only when the step fails)",
        }
    }
    assert diff.compatibility == CONDITIONAL and diff.steps_changed == ("charge",)
    assert diff.render()[1].startswith("  ~ steps.charge.retry.max_attempts: 3 -> 5  [conditional:")


def test_a_timeout_is_breaking_because_step_scheduled_records_it() -> None:
    diff = changed(lambda d: d["steps"][0].update(timeout_seconds=10))
    change = by_path(diff)["steps.charge.timeout_seconds"]
    assert (change["from"], change["to"], change["impact"]) == (None, 10.0, BREAKING)
    assert diff.compatibility == BREAKING


def test_next_and_nested_changes_name_the_step() -> None:
    def edit(d: dict[str, Any]) -> None:
        notify = d["steps"][2]["branches"][0]["steps"][0]
        notify["next"] = None
        notify["input"] = {"to": "input.email"}
        d["steps"][2]["branches"][0]["steps"].pop()  # log
        d["steps"][2]["branches"][1]["steps"].append({"name": "audit", "type": "task", "connector": "noop"})
        d["steps"][2]["branches"][1]["steps"][0]["next"] = "audit"

    diff = changed(edit)
    paths = by_path(diff)
    assert paths["steps.notify.next"]["kind"] == "changed"
    assert (paths["steps.notify.next"]["from"], paths["steps.notify.next"]["to"]) == ("log", None)
    assert paths["steps.notify.input.to"] == {
        "path": "steps.notify.input.to",
        "kind": "added",
        "to": "input.email",
        "impact": BREAKING,
        "reason": "the arguments recorded when the step is entered",
    }
    assert paths["steps.log"]["kind"] == "removed" and paths["steps.log"]["impact"] == BREAKING
    assert paths["steps.audit"]["kind"] == "added" and paths["steps.audit"]["impact"] == SAFE
    assert paths["steps.ship.next"]["to"] == "audit"
    assert paths["steps.both.branches[0].steps[1]"]["kind"] == "removed"
    assert paths["steps.both.branches[1].steps[1]"]["kind"] == "added"
    assert diff.steps_added == ("audit",) and diff.steps_removed == ("log",)
    assert set(diff.steps_changed) == {"both", "notify", "ship"}
    lines = diff.render()
    assert '  ~ steps.notify.next: "log" -> null  [breaking: the step after this one]' in lines


def test_choices_and_kind_are_breaking() -> None:
    diff = changed(lambda d: d["steps"][1]["choices"][0].update(when="steps.charge.paid"))
    assert by_path(diff)["steps.route.choices[0].when"]["impact"] == BREAKING

    def to_wait(d: dict[str, Any]) -> None:
        d["steps"][3] = {"name": "refund", "type": "wait", "seconds": 5, "next": "done"}

    diff = changed(to_wait)
    assert list(by_path(diff)) == ["steps.refund.type"]  # nothing more about a different kind
    assert by_path(diff)["steps.refund.type"]["from"] == "task"


def test_safe_changes() -> None:
    def edit(d: dict[str, Any]) -> None:
        d["description"] = "Charge, notify, ship."
        d["input_schema"] = {"type": "object"}
        d["triggers"] = [
            {"type": "webhook", "name": "orders", "enabled": False},
            {"type": "webhook", "name": "new"},
        ]
        d["steps"][0]["description"] = "take the money"
        d["steps"][0]["output"] = "result.body"
        d["steps"][2]["branches"][1]["name"] = "shipping"
        d["debounce"] = {"key": "input.order_id", "period": "5s"}  # the start records what it used

    diff = changed(edit)
    paths = by_path(diff)
    assert {change["impact"] for change in paths.values()} == {SAFE}
    assert diff.compatibility == SAFE and not diff.identical
    assert "triggers.orders.enabled" in paths and paths["triggers.new"]["kind"] == "added"
    assert paths["input_schema.required"]["kind"] == "removed"
    assert "steps.charge.output" in paths and "steps.both.branches[1].name" in paths


def test_workflow_output_start_and_moves_are_breaking() -> None:
    diff = changed(lambda d: d.update(output="steps.charge"))
    assert by_path(diff)["output"]["impact"] == BREAKING

    def reorder(d: dict[str, Any]) -> None:
        d["steps"].insert(0, d["steps"].pop(3))  # refund first: the default start moves
        d["steps"][0]["next"] = "charge"

    assert by_path(changed(reorder))["start"] == {
        "path": "start",
        "kind": "changed",
        "from": "charge",
        "to": "refund",
        "impact": BREAKING,
        "reason": "the first step every execution enters",
    }
    same_start = changed(lambda d: d.update(start="charge"))
    assert same_start.identical  # the explicit start is the default one

    def move(d: dict[str, Any]) -> None:
        branches = d["steps"][2]["branches"]
        branches[1]["steps"].insert(0, branches[0]["steps"].pop(0))  # notify moves to branch 1
        branches[1]["steps"][0]["next"] = "ship"
        branches[0]["steps"].insert(0, {"name": "first", "type": "task", "connector": "noop", "next": "log"})

    paths = by_path(changed(move))
    assert paths["steps.notify"]["kind"] == "moved"
    assert (paths["steps.notify"]["from"], paths["steps.notify"]["to"]) == (
        "parallel both branch 0",
        "parallel both branch 1",
    )
    assert paths["steps.ship"]["kind"] == "moved"  # no longer the first step of its branch
    assert paths["steps.ship"]["impact"] == BREAKING


def test_a_renamed_step_is_recognised() -> None:
    def rename(d: dict[str, Any]) -> None:
        d["steps"][3]["name"] = "give_back"
        d["steps"][1]["default"] = "give_back"

    diff = changed(rename)
    assert diff.renamed == (("refund", "give_back"),)
    assert diff.to_dict()["steps"]["renamed"] == [{"from": "refund", "to": "give_back"}]
    assert diff.compatibility == BREAKING
    assert "  note: step refund looks renamed to give_back (breaking)" in diff.render()


def test_to_dict_shape() -> None:
    body = changed(lambda d: d["steps"][0]["retry"].update(max_attempts=4), version=7).to_dict()
    assert {k: body[k] for k in ("name", "from", "to", "identical", "compatibility")} == {
        "name": "shop",
        "from": 1,
        "to": 7,
        "identical": False,
        "compatibility": CONDITIONAL,
    }
    assert body["steps"] == {"added": [], "removed": [], "changed": ["charge"], "renamed": []}
    assert step(BASE, "log")["name"] == "log"
