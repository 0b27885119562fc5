"""The quick canonical encoding writes exactly the standard library's bytes, or refuses as it does."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import random
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.canonical_json import canonical_bytes

STRICT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
LENIENT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode


def reference(value: Any, lenient: bool = False) -> bytes:
    return (LENIENT if lenient else STRICT)(value).encode("utf-8")


def floats(n: int) -> list[float]:
    rng = random.Random(7)
    found = [1e-05, 1e-4, 9.99e-5, 1e15, 1e16, 1e22, 5e-324, 1.7976931348623157e308, -0.0, 0.1, 2.5]
    while len(found) < n:
        value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(value):
            found.append(value)
        found.append(rng.uniform(-1e-3, 1e-3))
        found.append(round(rng.uniform(-1e6, 1e6), rng.randint(0, 8)))
    return found


def test_every_float_is_written_as_the_standard_encoder_writes_it() -> None:
    values = floats(30_000)
    assert [canonical_bytes(v) for v in values] == [reference(v) for v in values]
    assert canonical_bytes({"xs": values}) == reference({"xs": values})


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": {"d": None, "c": [1, 2.5, True, False]}},
        {"é": 1, "e": 2, "Z": 3, "\U0001f600": 4, "\uffff": 5, "\u2028": "\u2029\x7f\ufeff"},
        "".join(chr(i) for i in range(128)),
        {"n": 2**63, "m": -(2**63), "u": 2**64 - 1},
        {"big": 2**64, "bigger": -(10**40)},  # past orjson's range: the long way
        {"1e5": "null", "x": "0.00001"},  # text that looks like what differs: the long way, same bytes
        [[[[[[[[[[[]]]]]]]]]]],
        [1] * 3 + [[1, {"a": [2]}]],
        (1, 2, "tuple"),
        {"wall_seconds": 3.2e-05, "more": [3.2e-05, 1e-05, 5e-324], "big": 1.5e16},
        {"wall_seconds": 3.2e-05, "text": "took 0.000032 s"},  # its text in a string: the long way
        {"a": 3e-05, "b": 13e-05, "c": 10.00003},  # one float's text inside another's
        {"negative": -3.2e-05, "x": 1},
    ],
)
def test_json_values_are_byte_for_byte_the_standard_encoding(value: Any) -> None:
    assert canonical_bytes(value) == reference(value)
    assert canonical_bytes(value, lenient=True) == reference(value, lenient=True)


def test_deeper_than_orjson_goes_the_long_way() -> None:
    deep: Any = 1
    for _ in range(400):
        deep = [deep]
    assert canonical_bytes(deep) == reference(deep)


class Colour(enum.StrEnum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), -math.inf, {"a": [math.nan]}, Point(1), datetime.datetime(2026, 1, 1), {1: "a"}],
)
def test_what_the_standard_encoder_refuses_is_refused_or_written_alike(value: Any) -> None:
    try:
        expected: bytes | type[Exception] = reference(value)
    except (TypeError, ValueError) as exc:
        expected = type(exc)
    if isinstance(expected, bytes):
        assert canonical_bytes(value) == expected
    else:
        with pytest.raises(expected):
            canonical_bytes(value)
    assert canonical_bytes(value, lenient=True) == reference(value, lenient=True)


def test_subclasses_are_written_by_the_standard_encoder() -> None:
    value = {"c": Colour.RED, "b": True}
    assert canonical_bytes(value) == reference(value) == b'{"b":true,"c":"red"}'


def test_an_unpaired_surrogate_fails_to_encode() -> None:
    with pytest.raises(UnicodeEncodeError):
        canonical_bytes({"s": "\ud800"})


def test_the_guard_can_fail() -> None:
    """Without the guard orjson's bytes differ for a small float: the guard is what keeps them equal."""
    import orjson

    assert orjson.dumps(1e-05) != reference(1e-05)
    assert canonical_bytes(1e-05) == reference(1e-05)
    assert orjson.dumps(math.nan) == b"null"
    with pytest.raises(ValueError):
        canonical_bytes(math.nan)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_any_json_value_is_the_standard_encoding(value: Any) -> None:
    try:
        expected = reference(value)
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == expected


def test_a_cycle_is_refused_as_the_standard_encoder_refuses_it() -> None:
    looped: dict[str, Any] = {"a": 1}
    looped["self"] = looped
    with pytest.raises(ValueError, match="Circular"):
        canonical_bytes(looped)


def test_a_long_list_is_the_standard_encoding() -> None:
    wide = {"xs": list(range(150_000)), "f": [0.5] * 10}
    assert canonical_bytes(wide) == reference(wide)


def test_small_positive_floats_are_mended_not_sent_the_long_way(monkeypatch: pytest.MonkeyPatch) -> None:
    import schemas.canonical_json as canonical

    def no_long_way(value: Any) -> str:
        raise AssertionError("went the long way")

    monkeypatch.setattr(canonical, "_STRICT", no_long_way)
    value = {"resources": {"wall_seconds": 3.2e-05, "bytes_in": 2}, "at": 1765160000.123456}
    assert canonical_bytes(value) == reference(value) == b'{"at":1765160000.123456,"resources":{"bytes_in":2,"wall_seconds":3.2e-05}}'
    with pytest.raises(AssertionError, match="long way"):
        canonical_bytes({"wall_seconds": 3.2e-05, "text": "0.000032"})
