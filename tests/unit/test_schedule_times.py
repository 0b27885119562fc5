"""Fire times: DST in two zones, month ends, leap days, seconds, intervals, bounds, jitter; and
what croniter's own time-zone handling gets wrong (the reason fire times map zones themselves)."""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from schemas.definition import ScheduleTrigger
from schemas.schedule_times import FireTimes, parse_duration, rfc3339_ms
from schemas.validation import DefinitionError, parse_definition

PARIS = "Europe/Paris"  # 2026: spring forward 29 March 02:00 -> 03:00; fall back 25 October 03:00 -> 02:00
NEW_YORK = "America/New_York"  # 2026: spring forward 8 March 02:00 -> 03:00; fall back 1 November 02:00 -> 01:00


def times(cron: str | None = None, zone: str = "UTC", **fields: Any) -> FireTimes:
    return FireTimes(ScheduleTrigger(name="s", cron=cron, timezone=zone, **fields), "wf/s")


def local(fire: FireTimes, after: str, count: int) -> list[str]:
    return [fire.local(t) for t in fire.upcoming(datetime.fromisoformat(after).timestamp(), count)]


# -- daylight saving: Europe/Paris ---------------------------------------------------------------


def test_paris_daily_fire_in_the_spring_gap_moves_past_the_gap_once() -> None:
    assert local(times("30 2 * * *", PARIS), "2026-03-28T12:00:00+01:00", 3) == [
        "2026-03-29T03:30:00+02:00",  # 02:30 does not exist that night: read with +01:00
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_paris_every_half_hour_across_the_spring_gap_keeps_real_time_steps() -> None:
    assert local(times("*/30 * * * *", PARIS), "2026-03-29T01:00:00+01:00", 4) == [
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:00 and 02:30 do not exist and land on 03:00, 03:30: once
        "2026-03-29T03:30:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]


def test_paris_daily_fire_in_the_repeated_hour_fires_once_and_next_day_at_its_time() -> None:
    assert local(times("30 2 * * *", PARIS), "2026-10-24T12:00:00+02:00", 3) == [
        "2026-10-25T02:30:00+02:00",  # the first 02:30 only
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


def test_paris_every_half_hour_fires_in_both_occurrences_of_the_repeated_hour() -> None:
    fire = times("*/30 * * * *", PARIS)
    assert local(fire, "2026-10-25T01:00:00+02:00", 6) == [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    instants = fire.upcoming(datetime.fromisoformat("2026-10-25T01:00:00+02:00").timestamp(), 6)
    assert {b - a for a, b in pairwise(instants)} == {1800.0}


# -- daylight saving: America/New_York -----------------------------------------------------------


def test_new_york_daily_fire_in_the_spring_gap_and_the_repeated_hour() -> None:
    assert local(times("0 2 * * *", NEW_YORK), "2026-03-07T12:00:00-05:00", 3) == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:00:00-04:00",
        "2026-03-10T02:00:00-04:00",
    ]
    assert local(times("30 1 * * *", NEW_YORK), "2026-10-31T12:00:00-04:00", 3) == [
        "2026-11-01T01:30:00-04:00",  # 01:30 happens twice: the first one fires
        "2026-11-02T01:30:00-05:00",
        "2026-11-03T01:30:00-05:00",
    ]


def test_new_york_hourly_fires_every_real_hour_through_both_transitions() -> None:
    fire = times("15 * * * *", NEW_YORK)
    spring = fire.upcoming(datetime.fromisoformat("2026-03-08T00:00:00-05:00").timestamp(), 4)
    fall = fire.upcoming(datetime.fromisoformat("2026-11-01T00:00:00-04:00").timestamp(), 4)
    for instants in (spring, fall):
        assert {b - a for a, b in pairwise(instants)} == {3600.0}
    assert [fire.local(t) for t in fall] == [
        "2026-11-01T00:15:00-04:00",
        "2026-11-01T01:15:00-04:00",
        "2026-11-01T01:15:00-05:00",
        "2026-11-01T02:15:00-05:00",
    ]


def test_a_start_inside_the_repeated_hour_continues_from_there() -> None:
    fire = times("*/30 * * * *", PARIS)
    second_two = datetime.fromisoformat("2026-10-25T02:10:00+01:00").timestamp()  # the second 02:10
    assert [fire.local(t) for t in fire.upcoming(second_two, 2)] == [
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


# -- what croniter itself does with a time zone (why we do not let it) ---------------------------


def test_croniter_with_a_zone_fires_at_the_wrong_hour_after_fall_back() -> None:
    it = croniter("30 2 * * *", datetime(2026, 10, 24, 23, 0, tzinfo=ZoneInfo(PARIS)))
    croniter_says = [it.get_next(datetime).isoformat() for _ in range(2)]
    assert croniter_says[1] == "2026-10-26T03:30:00+01:00"  # 03:30, not 02:30
    ours = local(times("30 2 * * *", PARIS), "2026-10-24T23:00:00+02:00", 2)
    assert ours[1] == "2026-10-26T02:30:00+01:00"


def test_croniter_with_a_zone_skips_the_repeated_hour_of_a_half_hourly_cron() -> None:
    it = croniter("*/30 * * * *", datetime(2026, 10, 25, 2, 15, tzinfo=ZoneInfo(PARIS)))
    croniter_says = [it.get_next(datetime).isoformat() for _ in range(2)]
    assert croniter_says == ["2026-10-25T02:30:00+02:00", "2026-10-25T03:00:00+01:00"]  # 90 minutes
    ours = local(times("*/30 * * * *", PARIS), "2026-10-25T02:15:00+02:00", 2)
    assert ours == ["2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00"]  # 30 minutes


# -- calendars -------------------------------------------------------------------------------------


def test_day_31_fires_only_in_months_that_have_one() -> None:
    assert local(times("0 12 31 * *"), "2027-01-01T00:00:00+00:00", 4) == [
        "2027-01-31T12:00:00+00:00",
        "2027-03-31T12:00:00+00:00",
        "2027-05-31T12:00:00+00:00",
        "2027-07-31T12:00:00+00:00",
    ]


def test_the_last_day_of_each_month_follows_month_lengths_and_leap_years() -> None:
    assert local(times("0 0 L * *", PARIS), "2027-12-15T00:00:00+01:00", 4) == [
        "2027-12-31T00:00:00+01:00",
        "2028-01-31T00:00:00+01:00",
        "2028-02-29T00:00:00+01:00",
        "2028-03-31T00:00:00+02:00",
    ]


def test_a_leap_day_schedule_fires_every_four_years_and_not_in_2100() -> None:
    fire = times("0 9 29 2 *")
    assert local(fire, "2026-06-01T00:00:00+00:00", 2) == ["2028-02-29T09:00:00+00:00", "2032-02-29T09:00:00+00:00"]
    assert local(fire, "2096-03-01T00:00:00+00:00", 1) == ["2104-02-29T09:00:00+00:00"]


def test_six_fields_put_seconds_first() -> None:
    assert local(times("*/20 * * * * *"), "2027-01-05T01:00:00+00:00", 3) == [
        "2027-01-05T01:00:20+00:00",
        "2027-01-05T01:00:40+00:00",
        "2027-01-05T01:01:00+00:00",
    ]


def test_a_fire_time_is_strictly_after_the_instant_given() -> None:
    fire = times("0 * * * *")
    exactly = datetime.fromisoformat("2027-01-05T01:00:00+00:00").timestamp()
    assert fire.next_after(exactly) == exactly + 3600


# -- intervals, bounds, jitter ---------------------------------------------------------------------


def test_every_is_anchored_at_start_at_and_stops_after_end_at() -> None:
    fire = times(every="1h30m", start_at="2027-01-01T00:10:00Z", end_at="2027-01-01T04:40:00Z")
    assert [rfc3339_ms(t) for t in fire.upcoming(0, 10)] == [
        "2027-01-01T00:10:00.000Z",
        "2027-01-01T01:40:00.000Z",
        "2027-01-01T03:10:00.000Z",
        "2027-01-01T04:40:00.000Z",
    ]


def test_every_without_start_at_is_anchored_at_the_epoch_so_every_process_agrees() -> None:
    fire = times(every=30)
    assert fire.next_after(1_000_000_007.5) == 1_000_000_020.0
    assert list(fire.between(90.0, 180.0)) == [120.0, 150.0, 180.0]


def test_cron_respects_start_at() -> None:
    fire = times("0 0 * * *", start_at="2027-03-10T00:00:00Z")
    assert rfc3339_ms(fire.upcoming(0, 1)[0]) == "2027-03-10T00:00:00.000Z"


def test_jitter_is_stable_per_fire_bounded_and_spread() -> None:
    fire = times(every=60, jitter="30s")
    delays = [fire.jitter(t) for t in fire.upcoming(0, 200)]
    assert delays == [fire.jitter(t) for t in fire.upcoming(0, 200)]
    assert all(0 <= d < 30 for d in delays)
    assert max(delays) - min(delays) > 20
    assert times(every=60).jitter(60.0) == 0.0


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("2d", 172_800.0), (12.5, 12.5), ("0.5s", 0.5)]
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


# -- validation -------------------------------------------------------------------------------------


def schedule_problems(**trigger: Any) -> list[str]:
    data = {"name": "wf", "triggers": [{"type": "schedule", "name": "s", **trigger}], "steps": [{"name": "a", "type": "succeed"}]}
    with pytest.raises(DefinitionError) as raised:
        parse_definition(data)
    return [str(problem) for problem in raised.value.problems]


def test_validation_names_each_problem_of_a_schedule() -> None:
    assert schedule_problems(cron="0 6 * *") == [
        "triggers[0].cron: cron '0 6 * *' has 4 fields; it needs 5 (minute hour day month weekday) or 6 (second first)"
    ]
    assert schedule_problems(cron="61 6 * * *")[0].startswith("triggers[0].cron: cron '61 6 * * *' is invalid")
    assert schedule_problems(cron="0 0 30 2 *")[0].startswith("triggers[0].cron: cron '0 0 30 2 *' is invalid")
    assert schedule_problems(cron="0 6 * * *", timezone="Europe/Parsi") == [
        "triggers[0].timezone: unknown time zone 'Europe/Parsi' (an IANA name such as 'Europe/Paris' or 'UTC')"
    ]
    assert schedule_problems(every="3x") == [
        "triggers[0].every: every '3x' is not a duration like '30s', '5m', '1h30m', '2d' or seconds"
    ]
    assert schedule_problems(every=0.5) == ["triggers[0].every: must be at least 1s, not 0.5s"]
    assert schedule_problems() == ["triggers[0]: a schedule trigger needs exactly one of 'cron' or 'every'"]
    assert schedule_problems(cron="* * * * *", every="1m") == [
        "triggers[0]: a schedule trigger needs exactly one of 'cron' or 'every'"
    ]
    assert schedule_problems(every="1m", start_at="2027-01-02T00:00:00Z", end_at="2027-01-01T00:00:00Z") == [
        "triggers[0].end_at: must be after start_at"
    ]
    assert schedule_problems(every="1m", catchup_window="2y")[0].startswith("triggers[0].catchup_window:")
    assert schedule_problems(every="1m", jitter="2d") == ["triggers[0].jitter: must be at most 86400s, not 172800s"]
    naive = schedule_problems(every="1m", start_at="2027-01-01T00:00:00")
    assert len(naive) == 1 and "timezone" in naive[0].lower()
    assert any("catchup" in p for p in schedule_problems(every="1m", catchup="some"))
    assert any("overlap" in p for p in schedule_problems(every="1m", overlap="queue"))


def test_a_valid_schedule_passes_validation() -> None:
    definition = parse_definition(
        {
            "name": "wf",
            "triggers": [{"type": "schedule", "name": "s", "cron": "0 6 * * 1-5", "timezone": PARIS, "input": "{at: scheduled_time}"}],
            "steps": [{"name": "a", "type": "succeed"}],
        }
    )
    assert definition.triggers[0].type == "schedule"
