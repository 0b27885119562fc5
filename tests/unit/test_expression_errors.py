"""Expressions fail in one way only: ExpressionError, whatever the expression and the data.

Examples of each class jmespath itself lets through as other exceptions (TypeError, ValueError,
OverflowError, RecursionError) or as values JSON cannot hold, then a property: random expressions
from a small grammar over random JSON either give a strict JSON value or raise ExpressionError.
"""

from __future__ import annotations

import json
from typing import Any

import jmespath
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import strict_json
from schemas.expressions import (
    MAX_RESULT_BYTES,
    RESULT_DEPTH,
    ExpressionError,
    compile_expression,
    evaluate,
)

MIXED = [{"a": 1}, {"a": "x"}]


def _deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


DEEP, OTHER_DEEP = _deep(5000), _deep(5000)  # beyond the recursion limit: only code builds this


@pytest.mark.parametrize(
    ("expression", "data", "reason"),
    [
        ("sum(@)", ["a", 1], "invalid type for value: a"),
        ("sort_by(@, &a)", MIXED, "sort_by()"),
        ("max_by(@, &a)", MIXED, "cannot compare these values"),  # TypeError in jmespath
        ("min_by(@, &a)", MIXED, "cannot compare these values"),
        ("[?a > `1`]", MIXED, "cannot compare these values"),
        ("@[::0]", [1, 2], "slice step cannot be zero"),  # ValueError in jmespath
        ("abs(@)", None, "invalid type for value: None"),
        ("length(@)", None, "length()"),
        ("ceil(`1e400`)", None, "OverflowError"),
        ("floor(to_number('nan'))", None, "ValueError"),
        ("to_number(@)", "1e400", "unusable result: inf is not a JSON number"),
        ("to_number('nan')", None, "nan is not a JSON number"),
        ("`1e400`", None, "inf is not a JSON number"),
        ("sum(@)", [1e308, 1e308], "inf is not a JSON number"),
        ("avg(@)", [1e308, 1e308], "inf is not a JSON number"),
        ("`NaN`", None, "nan is not a JSON number"),
        ("join('', [@, @, @, @])", "x" * (MAX_RESULT_BYTES // 3), "join() would make a string"),
        ("[[@, @], [@, @]]", ["x" * (MAX_RESULT_BYTES // 3)], f"larger than {MAX_RESULT_BYTES} bytes"),
        ("to_string(@)", DEEP, "nested too deeply"),  # RecursionError in json.dumps
        ("a == b", {"a": DEEP, "b": OTHER_DEEP}, "nested too deeply"),  # RecursionError in ==
        ("@", DEEP, f"nested deeper than {RESULT_DEPTH} levels"),
        ("not_a_function(@)", 1, "Unknown function"),
        ("keys(@, @)", {}, "Expected 1 argument"),
    ],
)
def test_every_failure_on_data_is_an_expression_error(expression: str, data: Any, reason: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate(expression, data)
    message = str(caught.value)
    assert reason in message
    assert len(message) <= 1000  # jmespath quotes the value; a large one is cut


@pytest.mark.parametrize(
    "expression",
    ["(" * 3000 + "@" + ")" * 3000, "!" * 3000 + "@", "[" * 3000 + "@" + "]" * 3000, "a.", "`[1", "[?"],
)
def test_every_failure_to_parse_is_an_expression_error(expression: str) -> None:
    with pytest.raises(ExpressionError, match="invalid expression"):
        compile_expression(expression)
    with pytest.raises(ExpressionError, match="invalid expression"):
        evaluate(expression, {})


def test_without_the_guard_jmespath_raises_other_exceptions() -> None:
    """What the wrapping is for: these escape jmespath as non-JMESPath exceptions or bad values."""
    with pytest.raises(TypeError):
        jmespath.search("max_by(@, &a)", MIXED)
    with pytest.raises(ValueError):
        jmespath.search("@[::0]", [1])
    with pytest.raises(RecursionError):
        jmespath.compile("(" * 3000 + "@" + ")" * 3000)
    assert jmespath.search("to_number('1e400')", None) == float("inf")


def test_good_expressions_still_evaluate() -> None:
    data = {"a": [{"n": 3}, {"n": 1}], "s": "xy"}
    assert evaluate("sort_by(a, &n)[0].n", data) == 1
    assert evaluate("join('-', [s, s])", data) == "xy-xy"
    assert evaluate("sum(a[].n)", data) == 4
    assert evaluate("[::-1]", [1, 2, 3]) == [3, 2, 1]
    assert evaluate("missing", data) is None


# -- the property -------------------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c", "items"])
LITERALS = st.sampled_from(
    ["`1`", "`-2.5`", "`1e400`", "`NaN`", '`"s"`', "'raw'", "`null`", '`[1, "a", null]`',
     '`{"a": 1}`', "`true`", "`" + "9" * 5000 + "`", "`1e308`"]
)  # fmt: skip
FUNCTIONS = st.sampled_from(
    ["abs", "avg", "ceil", "contains", "ends_with", "floor", "join", "keys", "length", "map",
     "max", "max_by", "merge", "min", "min_by", "not_null", "reverse", "sort", "sort_by",
     "starts_with", "sum", "to_array", "to_number", "to_string", "type", "values"]
)  # fmt: skip
OPERATORS = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "&&", "||", "|"])
SLICE_PART = st.sampled_from(["", "0", "1", "-1", "2", "-2"])
SLICE_STEP = st.sampled_from(["", ":0", ":1", ":-1", ":2"])


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    argument = st.one_of(inner, inner.map(lambda e: f"&{e}"))
    call = st.builds(lambda f, args: f"{f}({', '.join(args)})", FUNCTIONS, st.lists(argument, max_size=3))
    by_key = st.builds(lambda f, e, k: f"{f}({e}, &{k})", st.sampled_from(["sort_by", "max_by", "min_by"]), inner, inner)
    return st.one_of(
        call,
        by_key,
        st.builds(lambda f, e: f"{f}({e})", FUNCTIONS, inner),
        st.builds(lambda e, n: f"{e}.{n}", inner, NAMES),
        st.builds(lambda e, i: f"{e}[{i}]", inner, st.integers(-3, 3)),
        st.builds(lambda e, a, b, s: f"{e}[{a}:{b}{s}]", inner, SLICE_PART, SLICE_PART, SLICE_STEP),
        inner.map(lambda e: f"{e}[*]"),
        inner.map(lambda e: f"{e}[]"),
        inner.map(lambda e: f"{e}.*"),
        inner.map(lambda e: f"!{e}"),
        inner.map(lambda e: f"({e})"),
        st.builds(lambda a, op, b: f"{a} {op} {b}", inner, OPERATORS, inner),
        st.builds(lambda e, c: f"{e}[?{c}]", inner, inner),
        st.lists(inner, min_size=1, max_size=3).map(lambda es: "[" + ", ".join(es) + "]"),
        st.lists(st.tuples(NAMES, inner), min_size=1, max_size=3).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
        ),
        st.builds(lambda f, args: f"{f}({', '.join(args)})", FUNCTIONS, st.lists(argument, max_size=3)),
    )


EXPRESSIONS = st.recursive(st.one_of(NAMES, LITERALS, st.just("@"), st.just("*")), _extend, max_leaves=12)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["a", "1", "1e400", "nan", "-0", ""]),
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(NAMES, st.text(max_size=3)), children, max_size=4),
    ),
    max_leaves=20,
)
DATA = st.one_of(JSON, st.dictionaries(NAMES, st.one_of(JSON, st.lists(JSON, max_size=5)), max_size=4))


@pytest.mark.filterwarnings("ignore:deprecated string literal syntax")
@settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS, DATA)
def test_random_expressions_on_random_json_raise_only_expression_errors(expression: str, data: Any) -> None:
    try:
        result = evaluate(expression, data)
    except ExpressionError as exc:
        assert str(exc)
        return
    strict_json.check(result, max_depth=RESULT_DEPTH)  # what it gives can be stored as it is
    json.dumps(result, allow_nan=False)
