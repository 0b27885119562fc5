"""The diff's and the timeline's bounds: whatever the input, the answer lists at most so much and
says what it left out; a timeline page counts time from the execution's first event."""

from __future__ import annotations

import json

from orchestrator.core.state import fold
from orchestrator.history import diff, timeline
from orchestrator.history.diff import MAX_CHANGES, MAX_TAIL, MAX_VALUE_CHARS, diff_executions
from tests.unit.test_history_diff import A, B, event, history


def test_a_complete_small_diff_is_not_truncated() -> None:
    found = diff_executions(A, history(A), B, history(B, x=2))
    body = found.to_dict()
    assert body["truncated"] is False and body["truncation"] == []
    assert body["history"]["only_in"] == {"a": 0, "b": 0}


def test_long_tails_are_listed_up_to_the_cap_and_counted() -> None:
    a = history(A)
    extra = [event(B, 5 + i, "SignalReceived", {"name": f"s{i}"}) for i in range(MAX_TAIL + 50)]
    found = diff_executions(A, a, B, history(B) + extra)
    h = found.history
    assert len(h.only_in_b) == MAX_TAIL and h.tail_b == MAX_TAIL + 50
    assert h.first_divergence == 5  # still where b goes on alone
    assert found.to_dict()["truncated"] is True
    assert f"the first {MAX_TAIL} of {MAX_TAIL + 50} events only in b" in " ".join(found.truncation())


def test_changes_per_event_are_capped_and_big_values_clipped() -> None:
    wide_a = {f"k{i}": i for i in range(MAX_CHANGES + 30)}
    wide_b = {f"k{i}": -i for i in range(MAX_CHANGES + 30)}
    big = "x" * (MAX_VALUE_CHARS * 3)
    a = history(A, output_extra={"wide": wide_a, "big": {"blob": big}})
    b = history(B, output_extra={"wide": wide_b, "big": [big]})
    found = diff_executions(A, a, B, b)
    succeeded = next(e for e in found.history.events if e.type_a == "StepSucceeded")
    assert len(succeeded.changes) == MAX_CHANGES and succeeded.omitted > 0
    body = found.to_dict()
    assert body["truncated"] is True
    listed = next(e for e in body["history"]["events"] if e["type"]["a"] == "StepSucceeded")
    assert listed["changes_omitted"] == succeeded.omitted
    notes = " ".join(body["truncation"])
    assert "changes of the listed events are not shown" in notes and "state changes are not shown" in notes
    clipped = [c for c in found.history.events[-1].changes if c.path == "data.output.big"]
    assert clipped and isinstance(clipped[0].a, str) and clipped[0].a.endswith("...")
    assert len(clipped[0].a) == MAX_VALUE_CHARS
    assert len(json.dumps(body)) < 40 * MAX_VALUE_CHARS * 3  # not every wide key, not whole blobs
    assert any(line.startswith("truncated: ") for line in diff.render(body))


def test_a_history_longer_than_compared_is_named_and_never_identical_by_length() -> None:
    a, b = history(A), history(B)
    state_a, state_b = fold(a), fold(b)
    assert state_a is not None and state_b is not None
    found = diff_executions(A, a[:2], B, b[:2], totals=(4, 4), states=(state_a, state_b))
    assert found.identical and found.to_dict()["truncated"] is True
    assert found.truncation() == [
        f"compared the first 2 of the 4 events of {name} (at most {diff.MAX_DIFF_EVENTS})" for name in "ab"
    ]
    assert "identical in what was compared" in found.render()[-1]
    longer = diff_executions(A, a[:2], B, b[:2], totals=(4, 9), states=(state_a, state_b))
    assert not longer.identical  # the same prefix, but b has more events


def test_a_timeline_page_counts_from_the_given_origin() -> None:
    events = history(A)
    times = ["2024-05-01T10:00:00Z", "2024-05-01T10:00:01Z", "2024-05-01T10:00:03Z", "2024-05-01T10:00:04Z"]
    stamped = [event(A, e.sequence, e.type, e.data, t) for e, t in zip(events, times, strict=True)]
    whole = timeline.build(stamped)
    page = timeline.build(stamped[2:], origin=timeline.moment_of(stamped[0]))
    assert [row.offset for row in page.rows] == [row.offset for row in whole.rows[2:]] == [3.0, 4.0]
    alone = timeline.build(stamped[2:])
    assert [row.offset for row in alone.rows] == [0.0, 1.0]  # without an origin: from the page
    assert page.to_dict()["next_after"] is None
