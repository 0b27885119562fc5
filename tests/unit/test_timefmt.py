"""The one RFC 3339 formatter and parser."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest

from orchestrator.core.timefmt import parse_rfc3339, rfc3339


def test_formats_utc_with_microseconds_and_a_z() -> None:
    assert rfc3339(1.5) == "1970-01-01T00:00:01.500000Z"
    assert rfc3339(1.5, "milliseconds") == "1970-01-01T00:00:01.500Z"


def test_parsing_inverts_formatting() -> None:
    moment = 1_800_000_000.123456
    assert parse_rfc3339(rfc3339(moment)) == pytest.approx(moment, abs=1e-6)
    assert parse_rfc3339("2027-01-15T08:00:00+01:00") == parse_rfc3339("2027-01-15T07:00:00Z")


def test_bad_text_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_rfc3339("yesterday")


def standard(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_the_quick_microsecond_text_is_what_datetime_writes() -> None:
    rng = random.Random(11)
    edges = [0.0, 1.0, -1.0, -0.5, 0.9999995, 0.9999994, 1.0000005, 1_765_160_000.9999996, 1e-7, -1e-7]
    edges += [1_765_160_000 + k / 1e6 + 5e-7 for k in range(0, 1_000_000, 9_973)]  # halves
    values = edges + [rng.uniform(0, 4e9) for _ in range(50_000)] + [rng.uniform(-1e9, 0) for _ in range(5_000)]
    values += [round(rng.uniform(1.7e9, 1.8e9), 6) for _ in range(20_000)]
    assert [rfc3339(v) for v in values] == [standard(v) for v in values]


def test_an_out_of_range_time_fails_as_datetime_does() -> None:
    for bad in (math.inf, math.nan, 1e20):
        with pytest.raises((OverflowError, ValueError, OSError)):
            rfc3339(bad)


def test_the_quick_parse_is_what_datetime_reads() -> None:
    rng = random.Random(5)
    values = [rng.uniform(-1e9, 4e9) for _ in range(30_000)] + [0.0, 1.0, -0.5, 1_765_160_000.999999]
    texts = [rfc3339(v) for v in values]
    assert [parse_rfc3339(t) for t in texts] == [datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in texts]


@pytest.mark.parametrize(
    "text",
    ["2026-13-01T00:00:00.000000Z", "2026-12-08T25:00:00.000000Z", "2026-12-08T00:00:00.+00000Z",
     "2026-12-08T00:00:00.00000²Z", "2026-12-08T00:00:00.0_0000Z", "2026-12-08 00:00:00.000000X"],
)  # fmt: skip
def test_bad_text_in_the_engines_shape_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)
