"""Read-only secret stores from the deployment, and the chain the worker reads through.

- ``SettingsSecrets``: ``ORCHESTRATOR_SECRET_<NAME>`` variables and the ``ORCHESTRATOR_SECRETS_FILE``
  (a YAML or JSON mapping; a variable wins over the file). Names are case-insensitive. The
  default tenant's secret is the key ``NAME``; tenant ``T``'s is the file key ``T/NAME``
  (environment variables serve the default tenant only).
- ``DirectorySecrets``: ``ORCHESTRATOR_SECRETS_DIR`` holds one file per secret, its content
  the value (one trailing newline dropped): ``<dir>/<tenant>/<NAME>``, and for the default
  tenant also ``<dir>/<NAME>`` (how container platforms mount secrets).
- ``ChainedSecrets``: the first store that has the name wins.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Mapping, Sequence
from pathlib import Path

from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import SecretInfo, SecretStore, SecretsUnavailable
from orchestrator.settings import Settings
from schemas.secrets import valid_name
from schemas.tenant import DEFAULT_TENANT

__all__ = ["ChainedSecrets", "DirectorySecrets", "InvalidSecretName", "SettingsSecrets", "check_name", "lookup_chain"]

MAX_VALUE_BYTES = 64 * 1024


class InvalidSecretName(ValueError):
    """Not a secret name (``schemas.secrets.NAME_PATTERN``)."""


def check_name(name: str) -> str:
    if not valid_name(name):
        raise InvalidSecretName(
            f"invalid secret name {name!r}: a letter or '_', then letters, digits and '_' (at most 128)"
        )
    return name


class _ReadOnly(Lifecycle):
    what = "this store"

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def put(self, tenant: str, name: str, value: str) -> SecretInfo:
        raise SecretsUnavailable(f"{self.what} is read-only")

    async def delete(self, tenant: str, name: str) -> bool:
        raise SecretsUnavailable(f"{self.what} is read-only")

    async def list(self, tenant: str) -> builtins.list[SecretInfo]:
        return []  # read-only stores are the deployment's business; the API lists stored ones


class SettingsSecrets(_ReadOnly):
    """Secrets from the environment and the secrets file (``Settings.secrets``)."""

    what = "the environment and the secrets file"

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._by_key = {key.upper(): value for key, value in secrets.items()}

    async def get(self, tenant: str, name: str) -> str | None:
        key = name if tenant == DEFAULT_TENANT else f"{tenant}/{name}"
        return self._by_key.get(key.upper())


class DirectorySecrets(_ReadOnly):
    """One file per secret under a directory (module docstring); read at each use."""

    what = "the secrets directory"

    def __init__(self, directory: str) -> None:
        self._root = Path(directory)

    async def get(self, tenant: str, name: str) -> str | None:
        if not valid_name(name):  # never a path: no '/', no '..'
            return None
        candidates = [self._root / tenant / name]
        if tenant == DEFAULT_TENANT:
            candidates.append(self._root / name)
        return await asyncio.to_thread(_first_file, candidates)


def _first_file(candidates: Sequence[Path]) -> str | None:
    for path in candidates:
        try:
            with path.open("rb") as file:
                raw = file.read(MAX_VALUE_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        if len(raw) > MAX_VALUE_BYTES:
            raise SecretsUnavailable(f"{path} is larger than {MAX_VALUE_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretsUnavailable(f"{path} is not UTF-8 text") from None
        return text[:-1] if text.endswith("\n") else text
    return None


class ChainedSecrets(Lifecycle):
    """Looks a name up in each store in turn (the worker's ``SecretLookup``)."""

    def __init__(self, stores: Sequence[SecretStore]) -> None:
        self.stores = list(stores)

    async def start(self) -> None:
        pass  # the stores are started by their owner

    async def stop(self) -> None:
        pass

    async def get(self, tenant: str, name: str) -> str | None:
        for store in self.stores:
            value = await store.get(tenant, name)
            if value is not None:
                return value
        return None


def lookup_chain(settings: Settings, stored: SecretStore) -> ChainedSecrets:
    """Where the worker looks a name up: the stored secrets, the secrets directory, then the
    environment and the secrets file."""
    stores: list[SecretStore] = [stored]
    if settings.secrets_dir:
        stores.append(DirectorySecrets(settings.secrets_dir))
    stores.append(SettingsSecrets(settings.secrets))
    return ChainedSecrets(stores)
