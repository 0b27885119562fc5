"""OffsetTracker: the commit point of a partition whose records finish out of order."""

from __future__ import annotations

import random

from triggers.kafka_offsets import OffsetTracker


def test_nothing_taken_commits_nothing() -> None:
    tracker = OffsetTracker()
    assert tracker.commit_offset is None
    assert not tracker.needs_commit
    assert tracker.rewind() is None


def test_commit_stops_at_the_lowest_unfinished_record() -> None:
    tracker = OffsetTracker()
    for offset in range(10, 15):
        assert tracker.take(offset)
    assert tracker.commit_offset == 10
    tracker.finish(12)
    tracker.finish(13)
    assert tracker.commit_offset == 10  # 10 and 11 are still running
    tracker.finish(10)
    assert tracker.commit_offset == 11
    tracker.finish(11)
    assert tracker.commit_offset == 14
    tracker.finish(14)
    assert tracker.commit_offset == 15  # all done: one past the last record
    assert tracker.in_flight == 0


def test_gaps_in_offsets_are_contiguous_records() -> None:
    """Compaction and transaction markers leave gaps: the next record, not offset + 1, follows."""
    tracker = OffsetTracker()
    for offset in (3, 7, 20):
        tracker.take(offset)
    tracker.finish(3)
    assert tracker.commit_offset == 7
    tracker.finish(20)
    assert tracker.commit_offset == 7
    tracker.finish(7)
    assert tracker.commit_offset == 21


def test_needs_commit_follows_the_last_commit() -> None:
    tracker = OffsetTracker()
    tracker.take(0)
    tracker.finish(0)
    assert tracker.needs_commit
    tracker.committed = tracker.commit_offset
    assert not tracker.needs_commit
    tracker.take(1)
    assert not tracker.needs_commit  # 1 is running: the commit point has not moved
    tracker.finish(1)
    assert tracker.needs_commit and tracker.commit_offset == 2


def test_rewind_goes_back_to_the_first_unfinished_record() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.take(offset)
    tracker.finish(0)
    tracker.finish(1)
    tracker.finish(3)  # 2 failed, 4 was abandoned
    assert tracker.rewind() == 2
    assert tracker.commit_offset == 2
    assert tracker.in_flight == 0
    assert tracker.position == 2
    # The records from 2 on are read again; 3 again too, though it finished (dedup makes it harmless).
    for offset in (2, 3, 4):
        assert tracker.take(offset)
    for offset in (4, 2, 3):
        tracker.finish(offset)
    assert tracker.commit_offset == 5


def test_rewind_with_nothing_unfinished_seeks_past_the_last_record() -> None:
    tracker = OffsetTracker()
    tracker.take(8)
    tracker.finish(8)
    assert tracker.rewind() == 9
    assert tracker.commit_offset == 9


def test_stale_records_are_refused() -> None:
    tracker = OffsetTracker()
    tracker.take(4)
    assert not tracker.take(4)
    assert not tracker.take(2)
    assert tracker.in_flight == 1
    tracker.finish(99)  # unknown: ignored
    assert tracker.is_unfinished(4)
    assert tracker.commit_offset == 4


def test_random_completion_orders_never_commit_past_an_unfinished_record() -> None:
    rng = random.Random(7)
    for _ in range(200):
        tracker = OffsetTracker()
        offsets = sorted(rng.sample(range(1000), 40))
        for offset in offsets:
            tracker.take(offset)
        done: set[int] = set()
        for offset in rng.sample(offsets, len(offsets)):
            tracker.finish(offset)
            done.add(offset)
            commit = tracker.commit_offset
            assert commit is not None
            # Everything below the commit point is done; the record at it (if any) is not.
            assert all(o in done for o in offsets if o < commit)
            unfinished = [o for o in offsets if o not in done]
            assert commit == (min(unfinished) if unfinished else offsets[-1] + 1)
