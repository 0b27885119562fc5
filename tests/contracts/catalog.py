"""The catalog store contract: each backend's test says how to build its started store."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.catalog.model import CatalogEntry, Review, checksum
from orchestrator.catalog.ports import CatalogStore, VersionConflict


def document(template_id: str = "hello", version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    meta = {"id": template_id, "version": version, "title": "Hello", "author": "ann", "licence": "MIT"}
    return {"metadata": meta, "workflow": {"name": template_id}, **extra}


def entry(template_id: str = "hello", version: str = "1.0.0", **extra: Any) -> CatalogEntry:
    doc = document(template_id, version, **extra)
    return CatalogEntry(
        template_id, version, doc, checksum(doc), "ann", "sig", "pending", None, "2026-01-01T00:00:00Z"
    )


class CatalogStoreContract(ABC):
    @abstractmethod
    async def make_store(self, tmp_path: Path) -> CatalogStore:
        """A started store; durable backends open the same data when called again."""

    durable = True

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[CatalogStore]:
        store = await self.make_store(tmp_path)
        try:
            yield store
        finally:
            await store.stop()

    async def test_a_version_round_trips(self, store: CatalogStore) -> None:
        first = entry()
        assert await store.put_version(first) == first
        assert await store.get_version("hello", "1.0.0") == first
        assert await store.get_version("hello", "2.0.0") is None
        assert await store.get_version("other", "1.0.0") is None

    async def test_versions_are_immutable(self, store: CatalogStore) -> None:
        await store.put_version(entry())
        assert await store.put_version(entry()) == entry()  # the same content again: the stored one
        with pytest.raises(VersionConflict):
            await store.put_version(entry(description="changed"))
        stored = await store.get_version("hello", "1.0.0")
        assert stored is not None and "description" not in stored.document

    async def test_versions_and_entries(self, store: CatalogStore) -> None:
        for tid, version in (("b", "1.0.0"), ("a", "2.0.0"), ("a", "1.0.0")):
            await store.put_version(entry(tid, version))
        assert {e.version for e in await store.versions("a")} == {"1.0.0", "2.0.0"}
        assert await store.versions("missing") == []
        assert sorted((e.id, e.version) for e in await store.entries()) == [
            ("a", "1.0.0"),
            ("a", "2.0.0"),
            ("b", "1.0.0"),
        ]

    async def test_status_changes(self, store: CatalogStore) -> None:
        await store.put_version(entry())
        changed = await store.set_status("hello", "1.0.0", "rejected", "no licence file")
        assert changed is not None and (changed.status, changed.reason) == ("rejected", "no licence file")
        stored = await store.get_version("hello", "1.0.0")
        assert stored is not None and stored.status == "rejected"
        assert await store.set_status("hello", "9.9.9", "approved", None) is None

    async def test_one_review_per_reviewer(self, store: CatalogStore) -> None:
        await store.put_review(Review("hello", "bob", 3, "ok", "t1"))
        await store.put_review(Review("hello", "bob", 5, "great", "t2", "reported", ("eve",)))
        await store.put_review(Review("hello", "amy", 1, "bad", "t3"))
        await store.put_review(Review("other", "bob", 2, "meh", "t4"))
        reviews = await store.reviews("hello")
        assert [(r.reviewer, r.rating) for r in sorted(reviews, key=lambda r: r.reviewer)] == [
            ("amy", 1),
            ("bob", 5),
        ]
        bob = next(r for r in reviews if r.reviewer == "bob")
        assert bob.status == "reported" and bob.reports == ("eve",)

    async def test_durable_stores_reopen_their_data(self, tmp_path: Path) -> None:
        store = await self.make_store(tmp_path)
        try:
            await store.put_version(entry())
            await store.put_review(Review("hello", "bob", 4, "good", "t1"))
        finally:
            await store.stop()
        again = await self.make_store(tmp_path)
        try:
            found = await again.get_version("hello", "1.0.0")
            assert (found is not None) == self.durable
            assert len(await again.reviews("hello")) == (1 if self.durable else 0)
        finally:
            await again.stop()
