"""Load definitions from YAML or JSON files, refusing what a parser would silently accept.

A file is read as UTF-8 (at most ``MAX_FILE_BYTES``), parsed as JSON (``.json``) or YAML, and
must hold one mapping nested at most ``MAX_DEPTH`` levels (``MAX_VALUES`` values in all). A key written twice in one mapping is
refused (YAML and JSON parsers otherwise keep the last one) with the key and its line. Values
must be what strict JSON holds (``schemas.strict_json``: no NaN or infinity, YAML ``.inf``/``.nan``
or ``1e400``, no dates or binary, no unpaired surrogates). Every failure is a ``DefinitionError``
naming the file, never another exception.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from schemas import strict_json
from schemas.definition import WorkflowDefinition
from schemas.validation import DefinitionError, Problem, parse_definition

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "UniqueKeyLoader",
    "UniqueKeys",
    "load_data",
    "load_definition",
    "parse_json_text",
    "parse_yaml_text",
    "syntax_error",
]

MAX_FILE_BYTES = 4 * 1024 * 1024  # a definition is a few KB; anything near this is a mistake
MAX_DEPTH = 100  # mappings and lists in a definition; deeper is garbage, and would risk RecursionError
MAX_VALUES = 200_000  # values in the parsed graph, counted through aliases
MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeys:
    """A YAML constructor mix-in: a key written twice in one mapping is a ConstructorError naming
    the key and both lines. Keys brought in by a ``<<`` merge may be overridden, as YAML allows."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[attr-defined]
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue  # an unhashable key: the base constructor reports it
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)  # type: ignore[misc]
        return mapping


class UniqueKeyLoader(UniqueKeys, yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys."""


def parse_yaml_text(text: str, loader: type[yaml.SafeLoader] = UniqueKeyLoader) -> Any:
    """One YAML document as plain data; yaml.YAMLError or RecursionError when it is not valid."""
    return yaml.load(text, Loader=loader)


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def parse_json_text(text: str) -> Any:
    """JSON as plain data, refusing a key twice in one object: ValueError (a
    ``json.JSONDecodeError`` for syntax) or RecursionError."""
    try:
        return json.loads(text, object_pairs_hook=_object_pairs, **strict_json.PARSE_HOOKS)
    except _DuplicateKey as exc:
        raise ValueError(_located_duplicate(text, exc.key)) from None


def _located_duplicate(text: str, key: str) -> str:
    """Where the duplicate is: JSON is (nearly always) YAML, whose parser knows lines."""
    try:
        parse_yaml_text(text)
    except yaml.MarkedYAMLError as exc:
        if exc.problem and exc.problem.startswith("duplicate key"):
            return syntax_error(exc)
    except (yaml.YAMLError, RecursionError):
        pass
    return f"duplicate key {key!r}"


def _shape_problem(data: Any) -> str | None:
    """Too deep, or too many values (YAML aliases can make a small file a huge graph)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return f"holds more than {MAX_VALUES} values (aliases included)"
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels"
            children = value.values() if isinstance(value, dict) else value
            stack += [(child, depth + 1) for child in children]
    return None


def syntax_error(exc: ValueError | yaml.YAMLError) -> str:
    """One line: what is wrong and where (``line L, column C: ...`` for YAML)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = ", ".join(part for part in (exc.context, exc.problem) if part)
        return f"line {mark.line + 1}, column {mark.column + 1}: {' '.join(what.split())}"
    return " ".join(str(exc).split())


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean"}.get(type(value), type(value).__name__)


def load_data(path: str | Path) -> Any:
    """Parse a YAML or JSON file into plain data (a mapping); DefinitionError if it is not one."""
    file = Path(path)

    def problem(message: str, location: str = str(file)) -> DefinitionError:
        return DefinitionError([Problem(location, message)])

    try:
        with file.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise problem(f"cannot read file: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise problem(f"the file is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise problem(f"not UTF-8 text (byte {exc.start} cannot be decoded)") from None
    kind = "JSON" if file.suffix == ".json" else "YAML"
    try:
        data = parse_json_text(text) if kind == "JSON" else parse_yaml_text(text)
    except RecursionError:
        raise problem(f"not valid YAML/JSON ({kind}): nested too deeply") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise problem(f"not valid YAML/JSON ({kind}): {syntax_error(exc)}") from None
    if data is None:
        raise problem("the file is empty: expected a workflow definition (a mapping)", "(root)")
    if not isinstance(data, dict):
        raise problem(f"expected a workflow definition (a mapping), not {_kind(data)}", "(root)")
    shape = _shape_problem(data)
    if shape is not None:
        raise problem(shape, "(root)")
    try:
        strict_json.check(data, "", max_depth=MAX_DEPTH + 1)  # what JSON holds: no .inf/.nan, dates
    except strict_json.StrictJSONError as exc:
        raise problem(f"not valid YAML/JSON ({kind}): {exc}") from None
    return data


def load_definition(path: str | Path) -> WorkflowDefinition:
    """Load and validate one definition file."""
    return parse_definition(load_data(path))
