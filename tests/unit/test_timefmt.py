"""The one RFC 3339 formatter and parser."""

from __future__ import annotations

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
