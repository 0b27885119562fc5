"""Template libraries: documents by id and version, from folders (the shipped library first).

A library holds parsed ``WorkflowTemplate`` documents (templates and fragments); ``find`` picks
the highest version in a range. The shipped templates live in ``orchestrator/templates/library``
(package data, in the wheel).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.templates import semver
from orchestrator.templates.errors import TemplateError, problem
from schemas.loader import load_data
from schemas.template import WorkflowTemplate
from schemas.validation import Problem

SHIPPED = Path(__file__).with_name("library")
SUFFIXES = (".yaml", ".yml", ".json")


def parse_template(data: Any, where: str = "(template)") -> WorkflowTemplate:
    """A template document from plain data; TemplateError listing every schema problem."""
    if isinstance(data, WorkflowTemplate):
        return data
    try:
        template = WorkflowTemplate.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(".".join(str(p) for p in error["loc"]) or where, error["msg"]) for error in exc.errors()
        ]
        raise TemplateError(problems) from None
    problems = []
    for at, text in [("metadata.engine", template.metadata.engine)] + [
        (f"include[{i}]", ref.partition("@")[2] or "*") for i, ref in enumerate(template.include)
    ]:
        try:
            semver.check_range(text)
        except semver.RangeInvalid as exc:
            problems.append(Problem(at, str(exc)))
    if problems:
        raise TemplateError(problems)
    return template


def split_reference(reference: str) -> tuple[str, str]:
    """``id@range`` -> (id, range); no range is ``*``."""
    name, _, wanted = reference.partition("@")
    return name, wanted or "*"


class TemplateLibrary:
    """Templates and fragments by id, then version."""

    def __init__(self, templates: Iterable[WorkflowTemplate] = ()) -> None:
        self._by_id: dict[str, dict[str, WorkflowTemplate]] = {}
        for template in templates:
            self.add(template)

    @classmethod
    def from_paths(cls, paths: Iterable[Path | str], *, shipped: bool = True) -> TemplateLibrary:
        """The shipped library (unless ``shipped`` is False) plus every template file under ``paths``."""
        library = cls()
        roots = [SHIPPED, *map(Path, paths)] if shipped else list(map(Path, paths))
        for root in roots:
            files = sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES) if root.is_dir() else [root]
            for file in files:
                library.add(load_file(file))
        return library

    def add(self, template: WorkflowTemplate) -> None:
        self._by_id.setdefault(template.metadata.id, {})[template.metadata.version] = template

    def ids(self, kind: str | None = "template") -> list[str]:
        return sorted(
            name for name, versions in self._by_id.items()
            if kind is None or next(iter(versions.values())).metadata.kind == kind
        )  # fmt: skip

    def versions(self, template_id: str) -> list[str]:
        return sorted(self._by_id.get(template_id, {}), key=semver.parse)

    def find(self, reference: str, where: str = "(template)") -> WorkflowTemplate:
        """The highest version matching ``id@range``; TemplateError ``unknown_template``."""
        name, wanted = split_reference(reference)
        versions = self._by_id.get(name)
        if not versions:
            raise problem(where, f"no template {name!r} in the library", "unknown_template")
        chosen = semver.best(list(versions), wanted)
        if chosen is None:
            raise problem(
                where,
                f"no version of {name!r} in {wanted!r} (have {', '.join(self.versions(name))})",
                "unknown_template",
            )
        return versions[chosen]

    def all(self, kind: str | None = "template") -> list[WorkflowTemplate]:
        return [self.find(name) for name in self.ids(kind)]


def load_file(path: Path | str) -> WorkflowTemplate:
    """One template file (YAML or JSON, read like a definition file)."""
    try:
        return parse_template(load_data(path), str(path))
    except TemplateError as exc:
        raise TemplateError(
            [Problem(f"{path}: {p.location}", p.message) for p in exc.problems], exc.code
        ) from None


def as_mapping(template: WorkflowTemplate) -> Mapping[str, Any]:
    return template.model_dump(mode="json", exclude_none=True)
