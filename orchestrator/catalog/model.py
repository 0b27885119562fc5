"""Catalog entries and reviews, the template metadata they are published with, and checksums.

A template document is a JSON object; the catalog reads only its ``metadata`` and stores the
whole document with the sha256 of its canonical JSON (sorted keys, compact separators).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

TEMPLATE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
Status = Literal["pending", "approved", "rejected", "unlisted"]
STATUSES: tuple[Status, ...] = ("pending", "approved", "rejected", "unlisted")
ReviewStatus = Literal["visible", "reported", "hidden"]
MAX_DOCUMENT_BYTES = 1024 * 1024


class CatalogError(ValueError):
    """A refused catalog request; ``code`` is the API error code, ``status`` its HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def invalid(message: str) -> CatalogError:
    return CatalogError(400, "invalid_template", message)


class TemplateMetadata(BaseModel):
    """The ``metadata`` object of a template document."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(pattern=TEMPLATE_ID.pattern)
    version: str = Field(max_length=128)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    categories: tuple[str, ...] = Field(default=(), max_length=20)
    tags: tuple[str, ...] = Field(default=(), max_length=50)
    author: str = Field(min_length=1, max_length=200)
    licence: str = Field(min_length=1, max_length=100)
    engine: str = Field(default="*", max_length=100)

    @field_validator("version")
    @classmethod
    def semver(cls, value: str) -> str:
        if not SEMVER.match(value):
            raise ValueError(f"{value!r} is not a semantic version (MAJOR.MINOR.PATCH)")
        return value


def canonical(document: Mapping[str, Any]) -> bytes:
    """The canonical JSON of a document: sorted keys, compact separators, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def checksum(document: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` over the canonical JSON."""
    return "sha256:" + hashlib.sha256(canonical(document)).hexdigest()


def read_metadata(document: Any) -> TemplateMetadata:
    """The validated metadata of a template document; CatalogError 400 when it is not one."""
    if not isinstance(document, Mapping):
        raise invalid("a template document is a JSON object")
    if len(canonical(document)) > MAX_DOCUMENT_BYTES:
        raise CatalogError(
            413, "template_too_large", f"a template document is at most {MAX_DOCUMENT_BYTES} bytes"
        )
    try:
        return TemplateMetadata.model_validate(document.get("metadata"))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'metadata'}: {e['msg']}" for e in exc.errors()
        )
        raise invalid(f"metadata: {problems}") from None


def version_key(version: str) -> tuple[Any, ...]:
    """Sort key of a semantic version (a pre-release sorts before its release)."""
    core, _, rest = version.partition("+")[0].partition("-")
    numbers = tuple(int(part) for part in core.split(".")) if SEMVER.match(version) else (0, 0, 0)
    pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in rest.split(".")) if rest else ()
    return (*numbers, 0 if rest else 1, pre)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One published version of a template."""

    id: str
    version: str
    document: Mapping[str, Any]
    checksum: str
    publisher: str
    signature: str
    status: Status
    reason: str | None
    published_at: str

    @property
    def metadata(self) -> TemplateMetadata:
        return TemplateMetadata.model_validate(self.document["metadata"])

    def with_status(self, status: Status, reason: str | None) -> CatalogEntry:
        return replace(self, status=status, reason=reason)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "document": dict(self.document)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CatalogEntry:
        return cls(**dict(data))


@dataclass(frozen=True, slots=True)
class Review:
    """One principal's rating and review of a template (one per reviewer, editable)."""

    template_id: str
    reviewer: str
    rating: int
    text: str
    updated_at: str
    status: ReviewStatus = "visible"
    reports: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reports": list(self.reports)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Review:
        return cls(**{**dict(data), "reports": tuple(data.get("reports", ()))})
