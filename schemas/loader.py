"""Load definitions from YAML or JSON files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from schemas.definition import WorkflowDefinition
from schemas.validation import DefinitionError, Problem, parse_definition


def load_data(path: str | Path) -> Any:
    """Parse a YAML or JSON file into plain data; raise DefinitionError if unreadable."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError([Problem(str(file), f"cannot read file: {exc.strerror}")]) from None
    try:
        if file.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DefinitionError([Problem(str(file), f"not valid YAML/JSON: {exc}")]) from None


def load_definition(path: str | Path) -> WorkflowDefinition:
    """Load and validate one definition file."""
    return parse_definition(load_data(path))
