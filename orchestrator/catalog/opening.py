"""Where the catalog lives: its store beside the event log (the same SQLite file) or at
``ORCHESTRATOR_CATALOG_URL``, and the signing key (``ORCHESTRATOR_CATALOG_SIGNING_KEY``, else
generated beside the SQLite file)."""

from __future__ import annotations

import importlib
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.catalog.ports import CatalogStore
from orchestrator.catalog.signing import KEY_FILE, Signer, signer_at
from orchestrator.catalog.sqlite import sqlite_path

CATALOG_STORES = {
    "memory": "orchestrator.catalog.memory:MemoryCatalog",
    "sqlite": "orchestrator.catalog.sqlite:SQLiteCatalog",
    "cassandra": "orchestrator.catalog.cassandra:CassandraCatalog",
}


class CatalogSettingsError(ValueError):
    """No catalog store serves that URL, or the signing key is unusable."""


def catalog_url(event_log_url: str, configured: str | None = None) -> str:
    """``configured`` (``ORCHESTRATOR_CATALOG_URL``) when set, else the event log's URL when the
    catalog has a backend for its scheme (sqlite, cassandra), else memory."""
    if configured:
        return configured
    return event_log_url if urlsplit(event_log_url).scheme in ("sqlite", "cassandra") else "memory://"


def open_catalog_store(url: str) -> CatalogStore:
    """The (not started) store for ``url``."""
    target = CATALOG_STORES.get(urlsplit(url).scheme)
    if target is None:
        known = ", ".join(f"{scheme}://" for scheme in sorted(CATALOG_STORES))
        raise CatalogSettingsError(f"no catalog store for {urlsplit(url).scheme}://; known: {known}")
    module, _, name = target.partition(":")
    store: CatalogStore = getattr(importlib.import_module(module), name).from_url(url)
    return store


def catalog_signer(url: str, key_file: str | None = None) -> Signer:
    """The signer of ``key_file`` (``ORCHESTRATOR_CATALOG_SIGNING_KEY``: must exist), else of the
    key beside the SQLite file (generated when absent), else a key for this process only."""
    try:
        if key_file:
            return signer_at(Path(key_file), create=False)
        if urlsplit(url).scheme == "sqlite":
            return signer_at(Path(sqlite_path(url)).resolve().parent / KEY_FILE, create=True)
    except ValueError as exc:
        raise CatalogSettingsError(str(exc)) from None
    return Signer.generate()
