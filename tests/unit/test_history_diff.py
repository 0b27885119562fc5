"""orchestrator.history.diff: two executions compared, ids and times ignored, paths named."""

from __future__ import annotations

from typing import Any

from orchestrator.history.diff import deep_changes, diff_executions, diff_histories, json_path
from schemas.envelope import TYPE_PREFIX, Envelope

T0 = "2024-05-01T10:00:00.000000Z"
T1 = "2024-05-01T11:30:00.250000Z"
A, B = "3f1c0e2a-aaaa", "9b7d4c1e-bbbb"


def event(execution_id: str, sequence: int, type_: str, data: dict[str, Any], time: str = T0) -> Envelope:
    return Envelope(
        id=f"{execution_id}-{sequence}",
        type=type_,
        subject=execution_id,
        sequence=sequence,
        time=time,
        workflow="shop",
        workflowversion=1,
        data=data,
        causationid=f"command-{execution_id}-{sequence}",
        chainhash=f"hash-{execution_id}-{sequence}",
    )


def history(
    execution_id: str,
    x: int = 1,
    *,
    time: str = T0,
    due: float = 1000.0,
    fail: bool = False,
    output_extra: dict[str, Any] | None = None,
) -> list[Envelope]:
    """start -> task a (timeout, so a deadline) -> succeed or fail."""
    args = {"x": x}
    events = [
        (
            "ExecutionStarted",
            {
                "execution_id": execution_id,
                "workflow": "shop",
                "version": 1,
                "tenant": "default",
                "input": {"x": x},
                "dedup_key": f"key-{execution_id}",
            },
        ),
        (
            "StepScheduled",
            {
                "step": "a",
                "visit": 1,
                "attempt": 1,
                "attempt_id": "a:1:1",
                "connector": "noop",
                "config": {},
                "args": args,
                "idempotency_key": f"{execution_id}:a:1",
                "timeout_seconds": 30,
                "deadline": due,
            },
        ),
    ]
    if fail:
        error = {"type": "boom", "message": "no", "retryable": False}
        events += [
            (
                "StepFailed",
                {"step": "a", "attempt_id": "a:1:1", "attempt": 1, "error": error, "abandoned": []},
            ),
            ("ExecutionFailed", {"error": error, "step": "a"}),
        ]
    else:
        output = {**args, **(output_extra or {})}
        events += [
            ("StepSucceeded", {"step": "a", "attempt_id": "a:1:1", "output": output}),
            ("ExecutionSucceeded", {"output": output}),
        ]
    return [event(execution_id, i, type_, data, time) for i, (type_, data) in enumerate(events, start=1)]


def test_ids_times_hashes_and_keys_are_ignored() -> None:
    a = history(A, time=T0, due=1000.0)
    b = history(B, time=T1, due=6400.25)
    diff = diff_executions(A, a, B, b)
    assert diff.identical
    assert diff.history.first_divergence is None and diff.history.same_types
    body = diff.to_dict()
    assert body["identical"] is True
    assert body["a"] == {
        "execution_id": A,
        "workflow": "shop",
        "version": 1,
        "status": "succeeded",
        "events": 4,
    }
    assert diff.render()[-1].startswith("identical")


def test_a_different_input_names_every_path() -> None:
    diff = diff_executions(A, history(A, x=1), B, history(B, x=2))
    assert not diff.identical
    h = diff.history
    assert h.same_types and h.first_type_divergence is None
    assert h.first_divergence == 1 and h.differing == 4
    first = h.events[0]
    assert (first.sequence, first.type_a, first.type_b) == (1, "ExecutionStarted", "ExecutionStarted")
    assert [(c.path, c.kind, c.a, c.b) for c in first.changes] == [("data.input.x", "changed", 1, 2)]
    assert [c.path for c in h.events[1].changes] == ["data.args.x"]
    assert h.events[1].step_a == h.events[1].step_b == "a"
    state = diff.state
    assert [(c.path, c.a, c.b) for c in state.changes] == [("input.x", 1, 2), ("output.x", 1, 2)]
    assert list(state.steps_changed) == ["a"]
    assert [c.path for c in state.steps_changed["a"]] == ["steps.a.x"]
    lines = diff.render()
    assert "history: same event types; first divergence at sequence 1; 4 aligned event(s) differ" in lines
    assert "      data.input.x: 1 -> 2" in lines
    assert "  steps.a.x: 1 -> 2" in lines


def test_a_different_path_reports_the_first_type_divergence() -> None:
    ok, failed = history(A), history(B, fail=True)
    diff = diff_executions(A, ok, B, failed)
    h = diff.history
    assert not h.same_types
    assert h.first_type_divergence == 3 and h.first_divergence == 3
    assert (h.events[0].type_a, h.events[0].type_b) == ("StepSucceeded", "StepFailed")
    assert (h.events[1].type_a, h.events[1].type_b) == ("ExecutionSucceeded", "ExecutionFailed")
    status = next(c for c in diff.state.changes if c.path == "status")
    assert (status.a, status.b) == ("succeeded", "failed")
    error = next(c for c in diff.state.changes if c.path == "error")
    assert error.a is None and error.b["type"] == "boom"
    assert diff.state.steps_changed["a"][0].path == "steps.a.error"  # an output vs an error
    assert "3: StepSucceeded(a) | StepFailed(a)" in "\n".join(diff.render())


def test_a_longer_history_lists_its_tail() -> None:
    running = history(A)[:2]
    done = history(B)
    h = diff_histories(running, done, A, B)
    assert h.length_a == 2 and h.length_b == 4
    assert not h.same_types and h.first_type_divergence == 3 and h.first_divergence == 3
    assert h.events == () and h.only_in_a == ()
    assert [(t.sequence, t.type, t.step) for t in h.only_in_b] == [
        (3, "StepSucceeded", "a"),
        (4, "ExecutionSucceeded", None),
    ]
    state = diff_executions(A, running, B, done).state
    assert state.steps_added == ("a",) and state.steps_removed == ()


def test_only_the_known_time_and_id_paths_are_ignored() -> None:
    a = history(A, output_extra={"due": "2024-06-01", "execution_id": "mine"})
    b = history(B, output_extra={"due": "2024-07-01", "execution_id": "mine"})
    h = diff_histories(a, b, A, B)
    assert h.first_divergence == 3
    assert [c.path for c in h.events[0].changes] == ["data.output.due"]


def test_an_embedded_execution_id_reads_as_a_placeholder_but_other_text_counts() -> None:
    a, b = history(A), history(B)
    b[1] = event(B, 2, "StepScheduled", {**b[1].data, "idempotency_key": f"{B}:a:2"})
    h = diff_histories(a, b, A, B)
    change = h.events[0].changes[0]
    assert (change.path, change.a, change.b) == (
        "data.idempotency_key",
        "<execution>:a:1",
        "<execution>:a:2",
    )


def test_cloudevent_dicts_as_the_api_returns_them() -> None:
    a = [e.to_cloudevent() for e in history(A, x=1)]
    b = [e.to_cloudevent() for e in history(B, x=5)]
    assert a[0]["type"].startswith(TYPE_PREFIX)
    diff = diff_executions(A, a, B, b)
    assert diff.history.first_divergence == 1
    assert diff.history.events[0].type_a == "ExecutionStarted"
    assert diff.a.status == "succeeded"


def test_a_short_id_is_not_looked_for_in_strings() -> None:
    a, b = history("a"), history("b")  # "a" is also the step's name
    h = diff_histories(a, b, "a", "b")
    assert h.first_divergence == 2
    assert [c.path for c in h.events[0].changes] == ["data.idempotency_key"]


def test_deep_changes_and_paths() -> None:
    found = deep_changes(
        {"k": [1, 2], "odd key": True, "gone": 1}, {"k": [1], "odd key": 1, "new": 2}, "data"
    )
    assert [(c.path, c.kind) for c in found] == [
        ("data.gone", "removed"),
        ("data.k[1]", "removed"),
        ("data.new", "added"),
        ('data["odd key"]', "changed"),  # True is not 1
    ]
    assert json_path("", "steps") == "steps" and json_path("steps", 0) == "steps[0]"
    assert found[0].to_dict() == {"path": "data.gone", "kind": "removed", "a": 1}
    assert found[2].to_dict() == {"path": "data.new", "kind": "added", "b": 2}
