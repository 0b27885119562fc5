"""The catalog in the event log's Cassandra keyspace (migration 17): ``catalog_versions`` (one
partition per template, a row per version), ``catalog_ids`` (every template id, for listing) and
``catalog_reviews`` (a partition per template, a row per reviewer). A version is written with
``IF NOT EXISTS``, so the first content of an id@version wins on every node."""

from __future__ import annotations

import json
from typing import ClassVar

from orchestrator.backends.cassandra.schema import CassandraBackend, CassandraSettings
from orchestrator.catalog.model import CatalogEntry, Review, Status
from orchestrator.catalog.ports import VersionConflict

SCOPE = "all"
_CQL = {
    "get": "SELECT checksum, entry FROM {ks}.catalog_versions WHERE id = ? AND version = ?",
    "versions": "SELECT entry FROM {ks}.catalog_versions WHERE id = ?",
    "ids": "SELECT id FROM {ks}.catalog_ids WHERE scope = ?",
    "add_id": "INSERT INTO {ks}.catalog_ids (scope, id) VALUES (?, ?)",
    "set": "UPDATE {ks}.catalog_versions SET entry = ? WHERE id = ? AND version = ?",
    "review": "INSERT INTO {ks}.catalog_reviews (id, reviewer, review) VALUES (?, ?, ?)",
    "reviews": "SELECT review FROM {ks}.catalog_reviews WHERE id = ?",
}
_CONDITIONAL = {
    "insert": "INSERT INTO {ks}.catalog_versions (id, version, checksum, entry) VALUES (?, ?, ?, ?) IF NOT EXISTS",
}


class CassandraCatalog(CassandraBackend):
    """``CatalogStore`` in three Cassandra tables; entries and reviews as JSON."""

    STATEMENTS = _CQL
    CONDITIONAL: ClassVar[dict[str, str]] = _CONDITIONAL

    def __init__(self, settings: CassandraSettings) -> None:
        super().__init__(settings, "catalog")

    @classmethod
    def from_url(cls, url: str) -> CassandraCatalog:
        return cls(CassandraSettings.from_url(url))

    async def put_version(self, entry: CatalogEntry) -> CatalogEntry:
        await self._db.rows(self._cql["add_id"], SCOPE, entry.id)
        values = (entry.id, entry.version, entry.checksum, json.dumps(entry.to_dict()))
        statement = self._cql["insert"].bind(values)
        await self._db.run_repeatable(statement, f"publishing {entry.id}@{entry.version}")
        rows = await self._db.rows(self._cql["get"], entry.id, entry.version)
        stored_checksum, stored = rows[0]
        if stored_checksum != entry.checksum:
            raise VersionConflict(f"{entry.id}@{entry.version} is already published with other content")
        return CatalogEntry.from_dict(json.loads(stored))

    async def get_version(self, template_id: str, version: str) -> CatalogEntry | None:
        rows = await self._db.rows(self._cql["get"], template_id, version)
        return CatalogEntry.from_dict(json.loads(rows[0][1])) if rows else None

    async def versions(self, template_id: str) -> list[CatalogEntry]:
        found: list[CatalogEntry] = []
        async for rows in self._db.pages(self._cql["versions"].bind((template_id,))):
            found += [CatalogEntry.from_dict(json.loads(row[0])) for row in rows]
        return found

    async def entries(self) -> list[CatalogEntry]:
        ids: list[str] = []
        async for rows in self._db.pages(self._cql["ids"].bind((SCOPE,))):
            ids += [str(row[0]) for row in rows]
        found: list[CatalogEntry] = []
        for template_id in sorted(ids):
            found += await self.versions(template_id)
        return found

    async def set_status(
        self, template_id: str, version: str, status: Status, reason: str | None
    ) -> CatalogEntry | None:
        found = await self.get_version(template_id, version)
        if found is None:
            return None
        changed = found.with_status(status, reason)
        await self._db.rows(self._cql["set"], json.dumps(changed.to_dict()), template_id, version)
        return changed

    async def put_review(self, review: Review) -> Review:
        await self._db.rows(self._cql["review"], review.template_id, review.reviewer, json.dumps(review.to_dict()))
        return review

    async def reviews(self, template_id: str) -> list[Review]:
        found: list[Review] = []
        async for rows in self._db.pages(self._cql["reviews"].bind((template_id,))):
            found += [Review.from_dict(json.loads(row[0])) for row in rows]
        return found
