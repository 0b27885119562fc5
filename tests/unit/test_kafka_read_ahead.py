"""Read-ahead of a tasks partition: bounded per tenant, deferred records read again, and a commit
point that never passes a record not finished."""

from __future__ import annotations

import random

import pytest

from orchestrator.backends.kafka.client import KafkaOptions
from orchestrator.backends.kafka.read_ahead import ReadAhead, Seen


def read(ahead: ReadAhead, records: list[tuple[int, str]]) -> list[int]:
    """Feed records as a fetch would; the offsets taken."""
    taken = []
    for offset, tenant in records:
        if ahead.seen(offset) is not Seen.OLD and ahead.admit(offset, tenant):
            taken.append(offset)
    return taken


def test_a_tenant_over_its_bound_is_deferred_and_another_is_still_taken() -> None:
    ahead = ReadAhead(per_tenant=2, total=10, window=100)
    records = [(o, "noisy") for o in range(10)] + [(10, "quiet")]
    assert read(ahead, records) == [0, 1, 10]  # the quiet record is read past the flood
    assert ahead.deferred == 8 and ahead.lowest_deferred == 2
    assert ahead.seen(5) is Seen.DEFERRED and ahead.seen(0) is Seen.OLD and ahead.seen(11) is Seen.NEW


def test_caught_up_it_rewinds_once_the_tenant_is_down_to_half() -> None:
    ahead = ReadAhead(per_tenant=4, total=100, window=100)
    read(ahead, [(o, "noisy") for o in range(12)])
    assert ahead.next_position(12) is None  # noisy holds 4: no room
    ahead.finish("noisy")
    assert ahead.next_position(12) is None  # 3 held: not down to half yet
    ahead.finish("noisy")
    assert ahead.next_position(12) == 4  # 2 held: read again from the lowest deferred record
    assert read(ahead, [(o, "noisy") for o in range(4, 12)]) == [4, 5]
    assert ahead.next_position(12) is None


def test_rereading_jumps_to_the_next_takeable_record_then_forward() -> None:
    ahead = ReadAhead(per_tenant=1, total=100, window=100)
    read(ahead, [(0, "a"), (1, "a"), (2, "b"), (3, "b"), (4, "a"), (5, "c")])
    assert ahead.deferred == 3  # 1, 3 and 4
    ahead.finish("b")
    assert ahead.next_position(6) == 3  # caught up: b has room, its record 3 is the lowest
    # Re-reading from 3: after 3 is taken, nothing ahead can be taken (a is full): jump to the end.
    assert read(ahead, [(3, "b")]) == [3]
    assert ahead.next_position(4) == 6
    ahead.finish("a")
    assert ahead.next_position(6) == 1
    assert ahead.next_position(2) == 4  # re-reading past 1 (not taken): a's next deferred record


def test_the_lane_total_bounds_every_tenant() -> None:
    ahead = ReadAhead(per_tenant=10, total=3, window=100)
    assert read(ahead, [(0, "a"), (1, "b"), (2, "c"), (3, "d")]) == [0, 1, 2]
    assert ahead.seen(3) is Seen.DEFERRED and ahead.held_total == 3
    ahead.finish("a")
    assert ahead.next_position(4) is None  # 2 held of 3: not down to half
    ahead.finish("b")
    assert ahead.next_position(4) == 3


def test_the_window_is_counted_from_the_commit_point() -> None:
    ahead = ReadAhead(per_tenant=1, total=10, window=5)
    assert not ahead.beyond_window(4, commit_point=0)
    assert ahead.beyond_window(5, commit_point=0)
    assert not ahead.beyond_window(5, commit_point=None)  # nothing read yet


def test_a_forgotten_record_is_neither_held_nor_deferred() -> None:
    ahead = ReadAhead(per_tenant=1, total=10, window=100)
    read(ahead, [(0, "a"), (1, "a")])
    ahead.forget(1)  # it no longer decodes
    assert ahead.deferred == 0 and ahead.seen(1) is Seen.OLD and ahead.next == 2


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        ReadAhead(per_tenant=0, total=1, window=1)


def test_random_floods_hold_every_bound_and_take_every_record_once() -> None:
    """A model of a lane: records of random tenants, finishing at random, with rewinds as the lane
    does them; every record is taken exactly once, the bounds hold, and the commit point (lowest
    of held and deferred) never passes a record that did not finish."""
    rng = random.Random(11)
    for _ in range(50):
        ahead = ReadAhead(per_tenant=rng.randint(1, 4), total=rng.randint(2, 8), window=10_000)
        tenants = rng.choices("abc", weights=[10, 1, 2], k=200)
        held: dict[int, str] = {}
        finished: set[int] = set()
        taken: list[int] = []
        position = 0
        while len(finished) < len(tenants):
            end = min(position + rng.randint(1, 20), len(tenants))
            for offset in range(position, end):
                if ahead.seen(offset) is not Seen.OLD and ahead.admit(offset, tenants[offset]):
                    held[offset] = tenants[offset]
                    taken.append(offset)
            position = end
            target = ahead.next_position(position) if position < len(tenants) or ahead.deferred else None
            for offset in rng.sample(sorted(held), k=min(len(held), rng.randint(0, 3))):
                ahead.finish(held.pop(offset))
                finished.add(offset)
            if target is None:
                target = ahead.next_position(position)
            if target is not None:
                position = target
            assert ahead.held_total == len(held) <= ahead.total
            assert all(ahead.held.get(t, 0) <= ahead.per_tenant for t in "abc")
            lowest = [o for o in (min(held, default=None), ahead.lowest_deferred) if o is not None]
            commit = min(lowest) if lowest else ahead.next
            assert commit is not None
            assert all(o in finished for o in range(commit))
        assert sorted(taken) == list(range(len(tenants)))


def test_a_deferred_record_without_room_is_passed_over_undecoded() -> None:
    ahead = ReadAhead(per_tenant=1, total=10, window=100)
    read(ahead, [(0, "a"), (1, "a"), (2, "b"), (3, "b")])
    assert ahead.deferred_without_room(1) and ahead.deferred_without_room(3)
    ahead.finish("a")
    assert not ahead.deferred_without_room(1)  # a has room: decode it and take it
    assert not ahead.deferred_without_room(0)  # held, not deferred


def test_the_url_options_fair_and_read_ahead() -> None:
    options = KafkaOptions.from_url("kafka://h?fair=false&read_ahead=50")
    assert (options.fair, options.read_ahead) == (False, 50)
    assert KafkaOptions.from_url("kafka://h").fair and KafkaOptions.from_url("kafka://h?fair=TRUE").fair
    with pytest.raises(ValueError, match=r"fair='maybe' .* is not true or false"):
        KafkaOptions.from_url("kafka://h?fair=maybe")
    with pytest.raises(ValueError, match="read_ahead"):
        KafkaOptions.from_url("kafka://h?read_ahead=0")
