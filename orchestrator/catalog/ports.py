"""The catalog's ports: where entries and reviews are kept, and how a template is installed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from orchestrator.catalog.model import CatalogEntry, Review, Status


class VersionConflict(ValueError):
    """That id@version is published with other content: versions are immutable."""


class CatalogStore(Protocol):
    """Template versions and reviews. ``put_version`` keeps the first content of an id@version:
    the same content again returns the stored entry, other content raises VersionConflict."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def put_version(self, entry: CatalogEntry) -> CatalogEntry: ...

    async def get_version(self, template_id: str, version: str) -> CatalogEntry | None: ...

    async def versions(self, template_id: str) -> list[CatalogEntry]: ...

    async def entries(self) -> list[CatalogEntry]: ...

    async def set_status(
        self, template_id: str, version: str, status: Status, reason: str | None
    ) -> CatalogEntry | None: ...

    async def put_review(self, review: Review) -> Review: ...

    async def reviews(self, template_id: str) -> list[Review]: ...


class Installer(Protocol):
    """Turns a template document and its parameters into what runs in a tenant."""

    async def install(
        self, document: Mapping[str, Any], parameters: Mapping[str, Any], *, tenant: str, actor: str
    ) -> dict[str, Any]: ...
