"""The pure decisions of a schedule: each catch-up policy, each overlap policy, pause, the buffer."""

from __future__ import annotations

from typing import Any

import pytest

from triggers.schedule_policy import (
    LATE_AFTER,
    REASON_BUFFER_FULL,
    REASON_LATEST,
    REASON_NONE,
    REASON_PAUSED,
    REASON_RUNNING,
    REASON_WINDOW,
    Catchup,
    Due,
    Kind,
    Overlap,
    Policy,
    failed,
    initial_state,
    plan,
)


def ident(time: float, kind: Kind) -> str:
    return f"{kind}@{time:g}"


def policy(catchup: Catchup = "all", window: float = 3600.0, overlap: Overlap = "allow") -> Policy:
    return Policy(catchup, window, overlap)


def due(*times: float) -> list[Due]:
    return [Due(t, t) for t in times]


def starts(state: dict[str, Any]) -> list[tuple[float, str]]:
    return [(a["time"], a["kind"]) for a in state["pending"] if a["do"] == "start"]


def reasons(state: dict[str, Any]) -> list[tuple[float, str]]:
    return [(s["time"], s["reason"]) for s in state["skips"]]


def test_an_on_time_fire_starts_and_moves_the_cursor() -> None:
    new = plan(initial_state(0.0), due(60.0), 60.5, policy(), False, ident)
    assert starts(new) == [(60.0, "scheduled")]
    assert new["cursor"] == 60.0
    assert new["last"] == {"time": 60.0, "execution_id": "scheduled@60"}
    assert new["counts"]["started"] == 1


def test_catchup_all_starts_every_missed_fire_in_order_marked_as_catchup() -> None:
    new = plan(initial_state(0.0), due(60.0, 120.0, 180.0), 180.0 + 1, policy("all"), False, ident)
    assert starts(new) == [(60.0, "catchup"), (120.0, "catchup"), (180.0, "scheduled")]
    assert all(a["catchup"] == (a["kind"] == "catchup") for a in new["pending"])


def test_catchup_latest_starts_only_the_latest_and_records_the_others() -> None:
    new = plan(initial_state(0.0), due(60.0, 120.0, 180.0), 500.0, policy("latest"), False, ident)
    assert starts(new) == [(180.0, "catchup")]
    assert reasons(new) == [(60.0, REASON_LATEST), (120.0, REASON_LATEST)]
    assert new["counts"]["skipped"] == 2


def test_catchup_none_starts_only_on_time_fires() -> None:
    late_and_on_time = due(60.0, 120.0, 500.0)
    new = plan(initial_state(0.0), late_and_on_time, 500.0 + LATE_AFTER / 2, policy("none"), False, ident)
    assert starts(new) == [(500.0, "scheduled")]
    assert reasons(new) == [(60.0, REASON_NONE), (120.0, REASON_NONE)]


def test_fires_older_than_the_catchup_window_are_skipped_whatever_the_policy() -> None:
    new = plan(initial_state(0.0), due(60.0, 4000.0), 4100.0, policy("all", window=600.0), False, ident)
    assert starts(new) == [(4000.0, "catchup")]
    assert reasons(new) == [(60.0, REASON_WINDOW)]


def test_lateness_counts_from_the_jittered_due_time() -> None:
    jittered = [Due(60.0, 60.0 + 25.0)]
    new = plan(initial_state(0.0), jittered, 60.0 + 25.0 + 1, policy("none"), False, ident)
    assert starts(new) == [(60.0, "scheduled")]


@pytest.mark.parametrize("overlap", ["allow", "skip", "buffer_one", "cancel_previous", "terminate_previous"])
def test_without_a_running_previous_run_every_overlap_policy_starts(overlap: Overlap) -> None:
    state = {**initial_state(0.0), "last": {"time": 0.0, "execution_id": "old"}}
    new = plan(state, due(60.0), 60.0, policy(overlap=overlap), False, ident)
    assert [a["do"] for a in new["pending"]] == ["start"]


def running_state() -> dict[str, Any]:
    return {**initial_state(0.0), "last": {"time": 0.0, "execution_id": "old"}}


def test_overlap_allow_starts_beside_the_running_one() -> None:
    new = plan(running_state(), due(60.0), 60.0, policy(overlap="allow"), True, ident)
    assert [a["do"] for a in new["pending"]] == ["start"]


def test_overlap_skip_records_the_fire_as_skipped() -> None:
    new = plan(running_state(), due(60.0), 60.0, policy(overlap="skip"), True, ident)
    assert new["pending"] == []
    assert reasons(new) == [(60.0, REASON_RUNNING)]
    assert new["last"]["execution_id"] == "old"


def test_overlap_buffer_one_keeps_one_and_skips_the_rest() -> None:
    new = plan(running_state(), due(60.0, 62.0), 63.0, policy(overlap="buffer_one"), True, ident)
    assert new["pending"] == []
    assert new["buffered"] == {"time": 60.0, "kind": "scheduled", "catchup": False}
    assert reasons(new) == [(62.0, REASON_BUFFER_FULL)]


def test_the_buffered_fire_starts_once_the_previous_run_finished() -> None:
    waiting = {**running_state(), "buffered": {"time": 60.0, "kind": "scheduled", "catchup": False}}
    assert plan(waiting, [], 90.0, policy(overlap="buffer_one"), True, ident)["pending"] == []
    released = plan(waiting, [], 90.0, policy(overlap="buffer_one"), False, ident)
    assert starts(released) == [(60.0, "buffered")]
    assert released["buffered"] is None
    # a fire due at the same moment waits for the buffered one, which is running now
    both = plan(waiting, due(120.0), 120.0, policy(overlap="buffer_one"), False, ident)
    assert starts(both) == [(60.0, "buffered")]
    assert both["buffered"] == {"time": 120.0, "kind": "scheduled", "catchup": False}


@pytest.mark.parametrize(("overlap", "verb"), [("cancel_previous", "cancelled"), ("terminate_previous", "terminated")])
def test_cancel_and_terminate_previous_cancel_the_running_one_before_starting(overlap: Overlap, verb: str) -> None:
    new = plan(running_state(), due(60.0), 60.0, policy(overlap=overlap), True, ident)
    cancel, start = new["pending"]
    assert cancel["do"] == "cancel" and cancel["execution_id"] == "old"
    assert cancel["reason"].startswith(f"{verb} by schedule")
    assert start["do"] == "start" and start["time"] == 60.0


def test_a_paused_schedule_skips_due_fires_and_starts_nothing() -> None:
    paused = {**initial_state(0.0), "paused": True}
    new = plan(paused, due(60.0, 120.0), 121.0, policy(), False, ident)
    assert new["pending"] == []
    assert reasons(new) == [(60.0, REASON_PAUSED), (120.0, REASON_PAUSED)]
    assert new["cursor"] == 120.0


def test_a_start_that_failed_is_recorded_and_is_no_previous_run() -> None:
    new = plan(initial_state(0.0), due(60.0), 60.0, policy(), False, ident)
    done = {**new, "pending": []}
    failed(done, new["pending"][0], "input invalid")
    assert done["last"] is None
    assert done["counts"] == {"started": 0, "skipped": 0, "failed": 1}
    assert reasons(done) == [(60.0, "could not start: input invalid")]


def test_plan_leaves_its_input_unchanged() -> None:
    state = running_state()
    before = repr(state)
    plan(state, due(60.0, 120.0), 500.0, policy("latest", overlap="cancel_previous"), True, ident)
    assert repr(state) == before
