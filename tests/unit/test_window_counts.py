"""The windowed trigger's pure decisions, run over faust's own hopping-window grid."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

import pytest
from faust.windows import HoppingWindow

from orchestrator.core.timefmt import rfc3339
from schemas.expressions import ExpressionError
from triggers.inbound import InboundMessage
from triggers.window_counts import (
    Range,
    decide,
    dedup_key,
    group_key,
    hop_step,
    window_event,
    window_input,
)
from triggers.window_source import counting_identity

T0 = 1_800_000_000.0  # a whole minute


@dataclass
class Counter:
    """What the faust tables hold, as plain dicts; ``see`` does what the count agent does."""

    size: float = 60.0
    threshold: int = 5
    windows: dict[tuple[str, Range], list[str]] = field(default_factory=dict)
    quiet: dict[str, float] = field(default_factory=dict)
    fired: list[tuple[str, float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.grid = HoppingWindow(self.size, hop_step(self.size), expires=2 * self.size)

    def see(self, key: str, identity: str, ts: float) -> float | None:
        current = {r: self.windows.get((key, r), []) for r in self.grid.ranges(ts)}
        decision = decide(current, identity, self.threshold, self.size, self.quiet.get(key))
        for window, ids in decision.updates.items():
            self.windows[(key, window)] = ids
        if decision.quiet_until is not None:
            self.quiet[key] = decision.quiet_until
        elif decision.forget:
            self.quiet.pop(key, None)
        if decision.fire is None:
            return None
        self.fired.append((key, decision.fire[0], decision.count))
        return decision.fire[0]


def test_the_hop_is_a_tenth_of_the_window_in_whole_seconds() -> None:
    assert [hop_step(w) for w in (1, 5, 19.5, 20, 60, 3600)] == [1, 1, 1, 2, 6, 360]
    with pytest.raises(ValueError, match="at least 1"):
        hop_step(0.5)


def test_group_keys_are_text_and_empty_ones_are_none() -> None:
    assert group_key("ada") == "ada"
    assert group_key(42) == "42"
    assert group_key({"b": 1, "a": [2]}) == '{"a":[2],"b":1}'
    assert [group_key(v) for v in (None, "", [], {})] == [None, None, None, None]


def test_five_within_the_window_fire_once_four_never() -> None:
    counter = Counter()
    fires = [counter.see("ada", f"m{i}", T0 + 7 + i * 2) for i in range(5)]
    assert fires[:4] == [None] * 4 and fires[4] is not None
    assert [counter.see("bob", f"b{i}", T0 + 7 + i) for i in range(4)] == [None] * 4
    ((key, start, count),) = counter.fired
    assert (key, count) == ("ada", 5)
    assert start == T0 + 6  # the window starting last that holds the whole burst (7..15): hop 6 s


def test_a_burst_spanning_less_than_window_minus_hop_always_fires() -> None:
    rng = random.Random(7)
    for _ in range(300):
        counter = Counter()
        first = T0 + rng.uniform(0, 120)
        span = rng.uniform(0, 60 - 6 - 0.01)
        times = sorted([first, first + span, *(first + rng.uniform(0, span) for _ in range(3))])
        rng.shuffle(times)  # arrival order does not matter
        results = [counter.see("k", f"m{i}", t) for i, t in enumerate(times)]
        assert sum(r is not None for r in results) == 1, (first, span)


def test_messages_further_apart_than_the_window_never_fire() -> None:
    counter = Counter()
    assert [counter.see("k", f"m{i}", T0 + i * 15.5) for i in range(5)] == [None] * 5  # 62 s from first to last


def test_a_replayed_message_counts_once_and_a_replay_repeats_the_same_decision() -> None:
    counter = Counter()
    for i in range(4):
        counter.see("k", f"m{i}", T0 + i)
    assert counter.see("k", "m3", T0 + 3) is None  # the same message again: still 4
    start = counter.see("k", "m4", T0 + 4)
    assert start is not None
    assert start == T0
    # Redelivered after a crash, with all, none or part of the state written: the same window (so
    # the same dedup key) or nothing at all (the start was made before the state was written).
    assert counter.see("k", "m4", T0 + 4) is None
    lost_quiet = Counter(windows=dict(counter.windows))
    assert lost_quiet.see("k", "m4", T0 + 4) == start
    lost_windows = Counter(quiet=dict(counter.quiet))
    assert [lost_windows.see("k", f"m{i}", T0 + i) for i in range(5)] == [None] * 5


def test_after_a_start_the_key_is_quiet_for_a_window_then_fires_again() -> None:
    counter = Counter()
    fires = [(t, s) for t in range(0, 180) if (s := counter.see("k", f"m{t}", T0 + t)) is not None]
    assert [t for t, _ in fires] == [4, 64, 124]  # one failure a second: one start a minute
    starts = [s for _, s in fires]
    assert all(later >= earlier + 60 for earlier, later in itertools.pairwise(starts))
    assert [count for _, _, count in counter.fired] == [5, 5, 5]


def test_a_stale_quiet_mark_is_forgotten() -> None:
    counter = Counter()
    for i in range(5):
        counter.see("k", f"m{i}", T0 + i)
    assert "k" in counter.quiet
    counter.see("k", "late", T0 + 200)
    assert "k" not in counter.quiet


def test_dedup_keys_name_trigger_window_start_and_key() -> None:
    assert dedup_key("failed_logins", "ada", 1_800_000_042.0) == "kafka_window:failed_logins:1800000042:ada"
    assert dedup_key("t", "a:b", 10.5) == "kafka_window:t:10.5:a:b"
    long = dedup_key("t", "x" * 600, 10.0)
    assert long.startswith("kafka_window:t:10:sha256:") and len(long) < 120
    assert long != dedup_key("t", "x" * 601, 10.0)


def test_the_input_is_the_window_event_or_an_expression_over_it() -> None:
    message = {"data": {"user": "ada", "ip": "10.0.0.5"}, "topic": "logins", "key": None}
    event = window_event("ada", 5, T0, 60, message)
    assert event == {
        "key": "ada",
        "count": 5,
        "window_start": "2027-01-15T08:00:00.000Z",
        "window_end": "2027-01-15T08:01:00.000Z",
        "message": message,
    }
    assert rfc3339(T0, "milliseconds") == event["window_start"]
    assert window_input(None, event) == event
    assert window_input("{user: key, n: count, ip: message.data.ip}", event) == {"user": "ada", "n": 5, "ip": "10.0.0.5"}
    with pytest.raises(ExpressionError):
        window_input("{user: ", event)


def test_messages_count_by_cloudevent_id_else_by_kafka_position() -> None:
    plain = InboundMessage(data={}, identity="kafka:logins/2/41")
    assert counting_identity(plain) == "kafka:logins/2/41"
    event = InboundMessage(data={}, identity="kafka:logins/0/7", cloudevent={"id": "e1", "source": "/auth"})
    assert counting_identity(event) == "ce:/auth/e1"
