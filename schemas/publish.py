"""The published JSON Schema of workflow definitions, generated from the pydantic models.

``python -m schemas.publish`` (re)writes ``schemas/workflow-definition.schema.json``;
``python -m schemas.publish --check`` exits 1 when the checked-in file has drifted. Editors and
other languages validate definitions with the file; ``schemas.validation`` adds the semantic
checks (references, reachability, expressions) that a JSON Schema cannot express.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from schemas.definition import WorkflowDefinition
from schemas.template import WorkflowTemplate

SCHEMA_PATH = Path(__file__).with_name("workflow-definition.schema.json")
SCHEMA_ID = "urn:orchestrator:schema:workflow-definition"  # an identifier, not a download URL
META_SCHEMA = "https://json-schema.org/draft/2020-12/schema"  # the draft pydantic generates
TITLE = "Workflow definition"


def definition_schema() -> dict[str, Any]:
    """The JSON Schema of ``WorkflowDefinition`` with ``$schema``, ``$id`` and a title."""
    generated = WorkflowDefinition.model_json_schema()
    return {"$schema": META_SCHEMA, "$id": SCHEMA_ID, **generated, "title": TITLE}


TEMPLATE_PATH = Path(__file__).with_name("workflow-template.schema.json")


def template_schema() -> dict[str, Any]:
    """The JSON Schema of workflow templates (docs/templates.md)."""
    generated = WorkflowTemplate.model_json_schema()
    return {"$schema": META_SCHEMA, "$id": "urn:orchestrator:schema:workflow-template", **generated, "title": "Workflow template"}


def render_template_schema() -> str:
    return json.dumps(template_schema(), indent=2, ensure_ascii=False) + "\n"


def render() -> str:
    """The file's exact text: stable key order, two-space indent, trailing newline."""
    return json.dumps(definition_schema(), indent=2, ensure_ascii=False) + "\n"


def write(path: Path = SCHEMA_PATH) -> bool:
    """Write the schema file; True if its content changed."""
    text = render()
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.publish", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    parser.add_argument("--path", type=Path, default=SCHEMA_PATH, help="where the file lives")
    args = parser.parse_args(argv)
    path: Path = args.path
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != render():
            print(f"{path} is out of date: run python -m schemas.publish", file=sys.stderr)
            return 1
        return 0
    print(f"{path}: {'written' if write(path) else 'unchanged'}")
    if path == SCHEMA_PATH:
        TEMPLATE_PATH.write_text(render_template_schema(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
