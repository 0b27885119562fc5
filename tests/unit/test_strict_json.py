"""The strict JSON loader and check: what they refuse, and that the edge of each bound passes."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from schemas import strict_json
from schemas.strict_json import MAX_DEPTH, MAX_INT_DIGITS, StrictJSONError

DEEP = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
EDGE_DEEP = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b"Infinity", "Infinity is not valid JSON"),
        (b"[-Infinity]", "-Infinity is not valid JSON"),
        (b"1e400", "too large for a JSON number"),
        (b'{"x": -1e400}', "too large for a JSON number"),
        (b"1" * (MAX_INT_DIGITS + 1), f"longer than {MAX_INT_DIGITS} digits"),
        (b"-" + b"9" * (MAX_INT_DIGITS + 1), f"longer than {MAX_INT_DIGITS} digits"),
        (DEEP, f"nested deeper than {MAX_DEPTH} levels"),
        (b"[" * 100_000, f"nested deeper than {MAX_DEPTH} levels"),  # the parser's RecursionError
        (b'{"ok": "\xff"}', "not UTF-8 (invalid byte at position 8)"),
        (b'"\\ud800"', "unpaired surrogate"),
        (b'{"\\udc80": 1}', "unpaired surrogate"),
        (b"{'a': 1}", "Expecting property name"),
        (b"", "Expecting value at line 1 column 1"),
    ],
)
def test_loads_refuses_what_is_not_strict_json(raw: bytes, reason: str) -> None:
    with pytest.raises(StrictJSONError) as caught:
        strict_json.loads(raw)
    assert reason in str(caught.value)
    assert isinstance(caught.value, ValueError)  # callers that catch ValueError keep working


@pytest.mark.parametrize(
    "raw",
    [
        EDGE_DEEP,
        b"9" * MAX_INT_DIGITS,
        b"1.7976931348623157e308",  # the largest double
        b"5e-324",
        b'{"caf\xc3\xa9": ["\\ud83d\\ude00", true, null, -0.0]}',  # a surrogate pair is fine
    ],
)
def test_loads_accepts_the_edge_of_every_bound(raw: bytes) -> None:
    assert strict_json.loads(raw) == json.loads(raw)
    assert strict_json.loads(raw.decode()) == json.loads(raw)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"a": [1, float("nan")]}, "the value at a[1]: nan is not a JSON number"),
        ([float("inf")], "inf is not a JSON number"),
        ({"when": datetime.date(2024, 1, 1)}, "(date) is not a JSON value"),
        ({1: "x"}, "key 1 is not a string"),
        ({"b": b"bytes"}, "(bytes) is not a JSON value"),
        ((1, 2), "(tuple) is not a JSON value"),
        ({"s": "\udc80"}, "unpaired surrogate"),
        pytest.param(10**MAX_INT_DIGITS, f"longer than {MAX_INT_DIGITS} digits", id="huge-int"),
    ],
)
def test_check_names_what_and_where(value: Any, reason: str) -> None:
    with pytest.raises(StrictJSONError) as caught:
        strict_json.check(value)
    assert reason in str(caught.value)


def test_check_bounds_depth_iteratively_and_size_counting_shared_references() -> None:
    deep: Any = 1
    for _ in range(10_000):  # far beyond the recursion limit: the check must not recurse
        deep = [deep]
    with pytest.raises(StrictJSONError, match=f"nested deeper than {MAX_DEPTH} levels"):
        strict_json.check(deep)
    strict_json.check(json.loads(EDGE_DEEP))
    strict_json.check(deep, max_depth=10_001)
    shared = ["x" * 1000]
    doubled: Any = shared
    for _ in range(40):  # 2**40 references to one string: tiny in memory, huge as JSON
        doubled = [doubled, doubled]
    with pytest.raises(StrictJSONError, match="larger than 100000 bytes"):
        strict_json.check(doubled, max_depth=100, max_size=100_000)
    strict_json.check(["x" * 1000] * 10, max_size=100_000)


def test_dumps_is_strict_and_compact() -> None:
    assert strict_json.dumps({"b": [1, "é"], "a": None}, sort_keys=True) == '{"a":null,"b":[1,"é"]}'
    with pytest.raises(StrictJSONError, match="at x: inf is not a JSON number"):
        strict_json.dumps({"x": float("inf")})
    with pytest.raises(StrictJSONError, match="unpaired surrogate"):
        strict_json.dumps("\ud800")


QUICK_CASES = [
    b'{"a": [1, 2.5, -0, -0.0, 1e308, 0.1e-400, 1E5, true, false, null, "s"]}',
    b'{"a":1,"a":2}',
    b'"\\ud83d\\ude00 \\u00e9 \\u0000"',
    "\"caf\u00e9 \U0001f600\"".encode(),
    b"9223372036854775807",
    b"-9223372036854775808",
    b"18446744073709551615",
    b"18446744073709551616",  # orjson would give a float: the long way keeps the integer
    b"-9223372036854775809",
    b"123456789012345678901234567890",
    b"0.12345678901234567890123",
    b"1e400",
    b"-1e400",
    b"NaN",
    b"Infinity",
    b"[-Infinity]",
    b'"\\ud800"',
    b'{"\\udc00": 1}',
    b"\xef\xbb\xbf{}",
    b'{"a":1}x',
    b'"\x01"',
    b" {} ",
    b"[" * 127 + b"]" * 127,
    b"[" * 128 + b"]" * 128,
    b"[" * 600 + b"]" * 600,
    b'{"deep": ' + b'{"a": ' * 130 + b"1" + b"}" * 131,
    b"",
    b"[1,]",
]


@pytest.mark.parametrize("raw", QUICK_CASES, ids=lambda raw: raw[:24].decode("utf-8", "replace"))
def test_bytes_parse_exactly_as_the_long_way_parses_their_text(raw: bytes) -> None:
    """Bytes may take orjson's quick path; text always takes the long one: same value, same
    types, or the same refusal."""

    def outcome(source: bytes | str) -> str:
        try:
            return repr(strict_json.loads(source))
        except StrictJSONError as exc:
            return f"refused: {exc}"

    assert outcome(raw) == outcome(raw.decode("utf-8"))


def test_invalid_utf8_is_refused_on_the_quick_path_too() -> None:
    with pytest.raises(StrictJSONError, match="not UTF-8"):
        strict_json.loads(b'"\xed\xa0\x80"')
    with pytest.raises(StrictJSONError, match="not UTF-8"):
        strict_json.loads(b'{"a": "\xff"}')
