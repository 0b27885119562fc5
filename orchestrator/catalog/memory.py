"""The catalog kept in memory (tests, embedded use without a database)."""

from __future__ import annotations

from orchestrator.catalog.model import CatalogEntry, Review, Status
from orchestrator.catalog.ports import VersionConflict


class MemoryCatalog:
    """``CatalogStore`` in dictionaries."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, str], CatalogEntry] = {}
        self._reviews: dict[tuple[str, str], Review] = {}

    @classmethod
    def from_url(cls, url: str) -> MemoryCatalog:
        return cls()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def put_version(self, entry: CatalogEntry) -> CatalogEntry:
        key = (entry.id, entry.version)
        found = self._versions.get(key)
        if found is None:
            self._versions[key] = entry
            return entry
        if found.checksum != entry.checksum:
            raise VersionConflict(f"{entry.id}@{entry.version} is already published with other content")
        return found

    async def get_version(self, template_id: str, version: str) -> CatalogEntry | None:
        return self._versions.get((template_id, version))

    async def versions(self, template_id: str) -> list[CatalogEntry]:
        return [e for (tid, _), e in sorted(self._versions.items()) if tid == template_id]

    async def entries(self) -> list[CatalogEntry]:
        return [e for _, e in sorted(self._versions.items())]

    async def set_status(
        self, template_id: str, version: str, status: Status, reason: str | None
    ) -> CatalogEntry | None:
        found = self._versions.get((template_id, version))
        if found is None:
            return None
        self._versions[(template_id, version)] = changed = found.with_status(status, reason)
        return changed

    async def put_review(self, review: Review) -> Review:
        self._reviews[(review.template_id, review.reviewer)] = review
        return review

    async def reviews(self, template_id: str) -> list[Review]:
        return [r for (tid, _), r in sorted(self._reviews.items()) if tid == template_id]
