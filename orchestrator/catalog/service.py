"""The catalog's rules over a store and a signer: who sees which version, publishing,
reviews, moderation and installation. Every refusal is a CatalogError with an API code."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from orchestrator.catalog.engine import satisfies
from orchestrator.catalog.model import (
    CatalogEntry,
    CatalogError,
    Review,
    checksum,
    read_metadata,
    version_key,
)
from orchestrator.catalog.ports import CatalogStore, Installer, VersionConflict
from orchestrator.catalog.signing import Signer

Moderation = Literal["approve", "reject", "unlist"]
ReviewModeration = Literal["hide", "keep"]
MODERATION_STATUS = {"approve": "approved", "reject": "rejected", "unlist": "unlisted"}
LISTED = frozenset({"approved"})
DOWNLOADABLE = frozenset({"approved", "unlisted"})  # an unlisted version still installs by number


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks: a principal name, and whether they may moderate (see every version)."""

    name: str
    moderator: bool = False

    def sees(self, entry: CatalogEntry, *, listing: bool) -> bool:
        if self.moderator or entry.publisher == self.name:
            return True
        return entry.status in (LISTED if listing else DOWNLOADABLE)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    q: str | None = None
    category: str | None = None
    tag: str | None = None
    author: str | None = None
    engine: str | None = None


def not_found(template_id: str, version: str | None = None) -> CatalogError:
    what = template_id if version is None else f"{template_id}@{version}"
    return CatalogError(404, "template_not_found", f"no catalog template {what}")


class Catalog:
    """Publish, search, download, review, moderate and install catalog templates."""

    def __init__(
        self, store: CatalogStore, signer: Signer, installer: Installer, now: Callable[[], str]
    ) -> None:
        self.store = store
        self.signer = signer
        self.installer = installer
        self.now = now

    async def publish(self, document: Any, publisher: str) -> tuple[CatalogEntry, bool]:
        """The stored entry, pending moderation, and whether it is new (False: the same content
        was already published); CatalogError 409 ``version_exists`` for other content."""
        meta = read_metadata(document)
        digest = checksum(document)
        entry = CatalogEntry(
            meta.id, meta.version, dict(document), digest, publisher, self.signer.sign(digest),
            "pending", None, self.now(),
        )  # fmt: skip
        existing = await self.store.get_version(meta.id, meta.version)
        if existing is None:
            others = await self.store.versions(meta.id)
            if others and all(o.publisher != publisher for o in others):
                raise CatalogError(403, "template_owned", f"{meta.id} is published by another principal")
        try:
            stored = await self.store.put_version(entry)
        except VersionConflict as exc:
            raise CatalogError(409, "version_exists", str(exc)) from None
        return stored, existing is None

    async def visible_versions(
        self, viewer: Viewer, template_id: str, *, listing: bool
    ) -> list[CatalogEntry]:
        found = [e for e in await self.store.versions(template_id) if viewer.sees(e, listing=listing)]
        return sorted(found, key=lambda e: version_key(e.version))

    async def search(self, viewer: Viewer, query: SearchQuery) -> list[dict[str, Any]]:
        """One summary per template with a version the viewer may list, its latest such version."""
        latest: dict[str, CatalogEntry] = {}
        for entry in await self.store.entries():
            if not viewer.sees(entry, listing=True) or not matches(entry, query):
                continue
            held = latest.get(entry.id)
            if held is None or version_key(entry.version) > version_key(held.version):
                latest[entry.id] = entry
        return [await self.summary(viewer, entry) for _, entry in sorted(latest.items())]

    async def summary(self, viewer: Viewer, entry: CatalogEntry) -> dict[str, Any]:
        meta = entry.metadata
        versions = await self.visible_versions(viewer, entry.id, listing=True)
        return {
            "id": entry.id, "version": entry.version, "status": entry.status, "title": meta.title,
            "description": meta.description, "categories": list(meta.categories), "tags": list(meta.tags),
            "author": meta.author, "licence": meta.licence, "engine": meta.engine, "publisher": entry.publisher,
            "versions": [v.version for v in versions], "rating": await self.rating(entry.id),
        }  # fmt: skip

    async def show(self, viewer: Viewer, template_id: str) -> dict[str, Any]:
        versions = await self.visible_versions(viewer, template_id, listing=True)
        if not versions:
            raise not_found(template_id)
        shown = await self.summary(viewer, versions[-1])
        reviews = [
            r for r in await self.store.reviews(template_id) if r.status != "hidden" or viewer.moderator
        ]
        return {**shown, "reviews": [review_json(r, viewer) for r in reviews]}

    async def versions(self, viewer: Viewer, template_id: str) -> list[dict[str, Any]]:
        found = await self.visible_versions(viewer, template_id, listing=True)
        if not found:
            raise not_found(template_id)
        return [version_json(e) for e in found]

    async def download(self, viewer: Viewer, template_id: str, version: str) -> CatalogEntry:
        entry = await self.store.get_version(template_id, version)
        if entry is None or not viewer.sees(entry, listing=False):
            raise not_found(template_id, version)
        return entry

    async def rating(self, template_id: str) -> dict[str, Any]:
        ratings = [r.rating for r in await self.store.reviews(template_id) if r.status != "hidden"]
        average = round(sum(ratings) / len(ratings), 2) if ratings else None
        return {"average": average, "count": len(ratings)}

    async def review(self, viewer: Viewer, template_id: str, rating: int, text: str) -> tuple[Review, bool]:
        """Create or replace the viewer's review; and whether it is new."""
        if not await self.visible_versions(viewer, template_id, listing=False):
            raise not_found(template_id)
        before = {r.reviewer: r for r in await self.store.reviews(template_id)}.get(viewer.name)
        review = Review(template_id, viewer.name, rating, text, self.now())
        if before is not None and before.status == "hidden":
            review = replace(review, status="hidden")  # editing does not undo a moderator's decision
        return await self.store.put_review(review), before is None

    async def find_review(self, template_id: str, reviewer: str) -> Review:
        for review in await self.store.reviews(template_id):
            if review.reviewer == reviewer:
                return review
        raise CatalogError(404, "review_not_found", f"no review of {template_id} by {reviewer}")

    async def report(self, viewer: Viewer, template_id: str, reviewer: str) -> Review:
        review = await self.find_review(template_id, reviewer)
        if review.status == "hidden" and not viewer.moderator:
            raise CatalogError(404, "review_not_found", f"no review of {template_id} by {reviewer}")
        reports = review.reports if viewer.name in review.reports else (*review.reports, viewer.name)
        status = "reported" if review.status == "visible" else review.status
        return await self.store.put_review(replace(review, reports=reports, status=status))

    async def moderate_review(self, template_id: str, reviewer: str, action: ReviewModeration) -> Review:
        review = await self.find_review(template_id, reviewer)
        status: Literal["hidden", "visible"] = "hidden" if action == "hide" else "visible"
        return await self.store.put_review(replace(review, status=status, reports=()))

    async def moderate(
        self, template_id: str, version: str, action: Moderation, reason: str | None
    ) -> CatalogEntry:
        if action == "reject" and not reason:
            raise CatalogError(400, "reason_required", "rejecting a version needs a reason")
        status = MODERATION_STATUS[action]
        changed = await self.store.set_status(template_id, version, status, reason)  # type: ignore[arg-type]
        if changed is None:
            raise not_found(template_id, version)
        return changed

    async def install(
        self, viewer: Viewer, template_id: str, version: str, parameters: Mapping[str, Any], *, tenant: str
    ) -> dict[str, Any]:
        entry = await self.download(viewer, template_id, version)
        if entry.status not in DOWNLOADABLE:
            raise CatalogError(409, "template_not_approved", f"{template_id}@{version} is {entry.status}")
        result = await self.installer.install(entry.document, parameters, tenant=tenant, actor=viewer.name)
        return {"template": template_id, "version": version, "checksum": entry.checksum, **result}


def matches(entry: CatalogEntry, query: SearchQuery) -> bool:
    meta = entry.metadata
    if query.q:
        needle = query.q.lower()
        text = " ".join([meta.id, meta.title, meta.description, *meta.tags, *meta.categories]).lower()
        if needle not in text:
            return False
    if query.category and query.category not in meta.categories:
        return False
    if query.tag and query.tag not in meta.tags:
        return False
    if query.author and query.author.lower() != meta.author.lower():
        return False
    return not query.engine or satisfies(query.engine, meta.engine)


def version_json(entry: CatalogEntry) -> dict[str, Any]:
    return {
        "id": entry.id, "version": entry.version, "status": entry.status, "reason": entry.reason,
        "checksum": entry.checksum, "publisher": entry.publisher, "published_at": entry.published_at,
    }  # fmt: skip


def download_json(entry: CatalogEntry, public_key: str) -> dict[str, Any]:
    return {
        **version_json(entry),
        "document": entry.document,
        "signature": entry.signature,
        "key": public_key,
    }


def review_json(review: Review, viewer: Viewer) -> dict[str, Any]:
    shown = review.to_dict()
    if not viewer.moderator:
        shown.pop("reports")
    return shown
