"""Remote catalogs the command line knows: ``{name: {url, key_env, public_key}}`` in a small JSON
file (``ORCHESTRATOR_CATALOGS_FILE``, else ``catalogs.json`` in the user's config directory:
``$XDG_CONFIG_HOME/orchestrator`` or ``~/.config/orchestrator``). The public key is pinned when
the catalog is added; every download from it is checked against its checksum and that key."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.catalog.model import checksum
from orchestrator.catalog.signing import verify
from orchestrator.cli.errors import CliError

FILE_VARIABLE = "ORCHESTRATOR_CATALOGS_FILE"
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


@dataclass(frozen=True, slots=True)
class RemoteCatalog:
    name: str
    url: str
    public_key: str
    key_env: str | None = None  # the variable holding an API key for that server

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.key_env) or None if self.key_env else None


def catalogs_file(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(FILE_VARIABLE):
        return Path(env[FILE_VARIABLE])
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "orchestrator" / "catalogs.json"


def load_catalogs(path: Path) -> dict[str, RemoteCatalog]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {name: RemoteCatalog(name=name, **entry) for name, entry in data.items()}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise CliError(f"cannot read the catalogs file {path}: {exc}") from None


def save_catalog(path: Path, catalog: RemoteCatalog) -> None:
    if not NAME.match(catalog.name):
        raise CliError(f"catalog name {catalog.name!r}: lowercase letters, digits, '.', '_', '-'", 2)
    known = load_catalogs(path)
    known[catalog.name] = catalog
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {name: {k: v for k, v in asdict(c).items() if k != "name"} for name, c in sorted(known.items())}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def remote_catalog(path: Path, name: str) -> RemoteCatalog:
    found = load_catalogs(path).get(name)
    if found is None:
        raise CliError(f"no catalog named {name!r} (orchestrator catalog add NAME URL)", 2)
    return found


def verified(download: Any, public_key: str) -> dict[str, Any]:
    """The downloaded document, once its checksum and signature hold; CliError otherwise."""
    if not isinstance(download, dict) or not isinstance(download.get("document"), dict):
        raise CliError("the catalog answered no template document")
    document: dict[str, Any] = download["document"]
    if checksum(document) != download.get("checksum"):
        raise CliError("the downloaded template does not match its checksum: refused")
    if not verify(public_key, str(download.get("checksum")), str(download.get("signature", ""))):
        raise CliError("the downloaded template's signature does not verify with the pinned key: refused")
    return document
