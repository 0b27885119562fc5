"""The catalog in a SQLite file (beside the event log: tables ``catalog_versions`` and
``catalog_reviews``). Every sqlite3 call runs on this store's one explicit worker thread, on its
own connection, as the other SQLite stores do.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import unquote

from orchestrator.catalog.model import CatalogEntry, Review, Status
from orchestrator.catalog.ports import VersionConflict

T = TypeVar("T")
PREFIX = "sqlite:///"
_DDL = (
    "CREATE TABLE IF NOT EXISTS catalog_versions (id TEXT NOT NULL, version TEXT NOT NULL,"
    " checksum TEXT NOT NULL, entry TEXT NOT NULL, PRIMARY KEY (id, version)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS catalog_reviews (id TEXT NOT NULL, reviewer TEXT NOT NULL,"
    " review TEXT NOT NULL, PRIMARY KEY (id, reviewer)) WITHOUT ROWID",
)


def sqlite_path(url: str) -> str:
    """The file of ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` (query ignored)."""
    if not url.startswith(PREFIX):
        raise ValueError(f"{url!r} is not sqlite:///relative.db or sqlite:////absolute.db")
    path = unquote(url.removeprefix(PREFIX).partition("?")[0])
    if not path:
        raise ValueError(f"{url!r} names no database file")
    return path


class SQLiteCatalog:
    """``CatalogStore`` in two tables of a SQLite file; entries and reviews as JSON."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    @classmethod
    def from_url(cls, url: str) -> SQLiteCatalog:
        return cls(sqlite_path(url))

    async def start(self) -> None:
        if self._executor is not None:
            raise RuntimeError(f"{self.path}: the catalog is already started")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-catalog")
        await self._run(self._connect)

    async def stop(self) -> None:
        if self._executor is None:
            return
        try:
            await self._run(self._disconnect)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError(f"{self.path}: the catalog is not started")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError(f"{self.path}: the catalog is not started")
        return self._connection

    def _connect(self) -> None:
        connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        connection.execute("PRAGMA journal_mode = WAL")
        for statement in _DDL:
            connection.execute(statement)
        self._connection = connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def put_version(self, entry: CatalogEntry) -> CatalogEntry:
        return await self._run(self._put_version, entry)

    def _put_version(self, entry: CatalogEntry) -> CatalogEntry:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT checksum, entry FROM catalog_versions WHERE id = ? AND version = ?",
                (entry.id, entry.version),
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO catalog_versions VALUES (?, ?, ?, ?)",
                    (entry.id, entry.version, entry.checksum, json.dumps(entry.to_dict())),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if row is None:
            return entry
        if row[0] != entry.checksum:
            raise VersionConflict(f"{entry.id}@{entry.version} is already published with other content")
        return CatalogEntry.from_dict(json.loads(row[1]))

    async def get_version(self, template_id: str, version: str) -> CatalogEntry | None:
        return await self._run(self._get_version, template_id, version)

    def _get_version(self, template_id: str, version: str) -> CatalogEntry | None:
        sql = "SELECT entry FROM catalog_versions WHERE id = ? AND version = ?"
        row = self._db.execute(sql, (template_id, version)).fetchone()
        return None if row is None else CatalogEntry.from_dict(json.loads(row[0]))

    async def versions(self, template_id: str) -> list[CatalogEntry]:
        return await self._run(self._select, "WHERE id = ?", (template_id,))

    async def entries(self) -> list[CatalogEntry]:
        return await self._run(self._select, "", ())

    def _select(self, where: str, args: tuple[str, ...]) -> list[CatalogEntry]:
        rows = self._db.execute(f"SELECT entry FROM catalog_versions {where} ORDER BY id, version", args)
        return [CatalogEntry.from_dict(json.loads(row[0])) for row in rows]

    async def set_status(
        self, template_id: str, version: str, status: Status, reason: str | None
    ) -> CatalogEntry | None:
        return await self._run(self._set_status, template_id, version, status, reason)

    def _set_status(
        self, template_id: str, version: str, status: Status, reason: str | None
    ) -> CatalogEntry | None:
        found = self._get_version(template_id, version)
        if found is None:
            return None
        changed = found.with_status(status, reason)
        sql = "UPDATE catalog_versions SET entry = ? WHERE id = ? AND version = ?"
        self._db.execute(sql, (json.dumps(changed.to_dict()), template_id, version))
        return changed

    async def put_review(self, review: Review) -> Review:
        return await self._run(self._put_review, review)

    def _put_review(self, review: Review) -> Review:
        sql = (
            "INSERT INTO catalog_reviews VALUES (?, ?, ?)"
            " ON CONFLICT (id, reviewer) DO UPDATE SET review = excluded.review"
        )
        self._db.execute(sql, (review.template_id, review.reviewer, json.dumps(review.to_dict())))
        return review

    async def reviews(self, template_id: str) -> list[Review]:
        return await self._run(self._reviews, template_id)

    def _reviews(self, template_id: str) -> list[Review]:
        rows = self._db.execute(
            "SELECT review FROM catalog_reviews WHERE id = ? ORDER BY reviewer", (template_id,)
        )
        return [Review.from_dict(json.loads(row[0])) for row in rows]
