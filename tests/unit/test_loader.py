"""Loading definition files: duplicate keys (YAML and JSON) are refused with the key and line, and
whatever a file holds becomes a DefinitionError naming it, never another exception."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from schemas.loader import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_VALUES,
    UniqueKeyLoader,
    load_data,
    load_definition,
    parse_json_text,
    parse_yaml_text,
)
from schemas.validation import DefinitionError, Problem

VALID = "name: ok\nsteps:\n  - {name: done, type: succeed}\n"


def problem_of(path: Path) -> Problem:
    with pytest.raises(DefinitionError) as raised:
        load_definition(path)
    [problem] = raised.value.problems
    return problem


def test_a_duplicate_yaml_key_is_refused_with_the_key_and_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: first\nsteps:\n  - {name: done, type: succeed}\nname: second\n")
    problem = problem_of(path)
    assert problem.location == str(path)
    assert problem.message == (
        "not valid YAML/JSON (YAML): line 4, column 1: duplicate key 'name' (first at line 1)"
    )


def test_a_duplicate_key_in_a_nested_mapping_is_refused() -> None:
    with pytest.raises(yaml.YAMLError, match=r"duplicate key 'next' \(first at line 3\)") as raised:
        parse_yaml_text("steps:\n  - name: a\n    next: b\n    next: c\n")
    assert isinstance(raised.value, yaml.MarkedYAMLError) and raised.value.problem_mark is not None
    assert raised.value.problem_mark.line + 1 == 4


def test_merge_keys_may_be_overridden_as_yaml_allows() -> None:
    data = parse_yaml_text("base: &b {seconds: 1, next: x}\nstep:\n  <<: *b\n  seconds: 5\n")
    assert data["step"] == {"seconds": 5, "next": "x"}
    assert yaml.load("a: 1\na: 2\n", Loader=yaml.SafeLoader) == {"a": 2}  # what we no longer accept
    with pytest.raises(yaml.YAMLError):
        yaml.load("a: 1\na: 2\n", Loader=UniqueKeyLoader)


def test_a_duplicate_json_key_is_refused_with_the_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text('{"name": "x",\n "steps": [{"name": "done", "type": "succeed",\n   "type": "fail"}]}')
    problem = problem_of(path)
    assert problem.location == str(path)
    assert problem.message == "not valid YAML/JSON (JSON): line 3, column 4: duplicate key 'type' (first at line 2)"
    assert parse_json_text('{"a": {"k": 1}, "b": {"k": 2}}') == {"a": {"k": 1}, "b": {"k": 2}}  # not duplicates


def test_a_json_duplicate_yaml_cannot_place_still_names_the_key() -> None:
    long_key = "k" * 2000  # valid JSON; too long a key for the YAML parser that finds the line
    with pytest.raises(ValueError, match=r"^duplicate key 'a'$"):
        parse_json_text(f'{{"{long_key}": 1, "a": 1, "a": 2}}')


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x01\x02\x03binary", "not valid YAML/JSON (YAML): "),
        (b"name: caf\xe9\n", "not UTF-8 text (byte 9 cannot be decoded)"),
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid YAML/JSON (YAML): nested too deeply"),
        (b"---\nname: a\n---\nname: b\n", "not valid YAML/JSON (YAML): "),
    ],
    ids=["control characters", "latin-1", "binary", "deep", "two documents"],
)
def test_unreadable_content_is_one_problem_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    problem = problem_of(path)
    assert problem.location == str(path) and problem.message.startswith(message)
    assert "\n" not in problem.message


def test_deep_json_is_a_problem_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)
    assert problem_of(path).message == "not valid YAML/JSON (JSON): nested too deeply"


def test_a_file_over_the_size_limit_is_refused_without_parsing_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(VALID + "description: " + "x" * MAX_FILE_BYTES + "\n")
    assert problem_of(path).message == f"the file is larger than {MAX_FILE_BYTES} bytes"


def test_nesting_beyond_the_limit_is_refused_after_parsing(tmp_path: Path) -> None:
    path = tmp_path / "nested.yaml"
    path.write_text(VALID + "input_schema: " + "{a: " * MAX_DEPTH + "1" + "}" * MAX_DEPTH + "\n")
    problem = problem_of(path)
    assert (problem.location, problem.message) == ("(root)", f"nested deeper than {MAX_DEPTH} levels")
    path.write_text(VALID + "input_schema: " + "{a: " * 10 + "{}" + "}" * 10 + "\n")
    assert load_data(path)["input_schema"]["a"]["a"]


def test_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["k0: &k0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"k{i}: &k{i} [{', '.join([f'*k{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10**9 values
    path = tmp_path / "bomb.yaml"
    path.write_text(VALID + "\n".join(lines) + "\n")
    problem = problem_of(path)
    assert problem.message == f"holds more than {MAX_VALUES} values (aliases included)"


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "a list"), ("42\n", "int"), ("true\n", "a boolean")])
def test_a_file_that_is_not_a_mapping_says_what_it_holds(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    problem = problem_of(path)
    assert (problem.location, problem.message) == ("(root)", f"expected a workflow definition (a mapping), not {kind}")


def test_a_directory_or_missing_file_cannot_be_read(tmp_path: Path) -> None:
    assert problem_of(tmp_path).message.startswith("cannot read file: ")
    assert problem_of(tmp_path / "absent.json").message == "cannot read file: No such file or directory"


def test_a_valid_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(VALID)
    assert load_definition(path).name == "ok"
