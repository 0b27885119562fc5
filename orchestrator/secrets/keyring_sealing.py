"""Secrets sealed by the encryption-at-rest keyring (envelope encryption), and re-sealing them.

With a keyring configured (``ORCHESTRATOR_ENCRYPTION_KEYS`` / ``_KEYRING``), a value is sealed
under its tenant's data key for the current master key (``orchestrator.crypto.data_keys``: random
per tenant, wrapped by the master key, stored beside the events): the blob of
``orchestrator.crypto.sealing`` names the tenant and the key id, and the associated data binds
that header and ``secret/<tenant>/<name>``, so a value copied to another row or tenant fails to
open. Values sealed earlier with ``ORCHESTRATOR_SECRETS_KEY`` still open through that key, when it
is set; :func:`reseal` (``orchestrator secrets reseal``, and ``orchestrator keys rotate-data``)
moves every value not under the current master key to it, after which the old master key can be
retired and ``ORCHESTRATOR_SECRETS_KEY`` dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.crypto.data_keys import DataKeys
from orchestrator.crypto.keyring import Keyring
from orchestrator.crypto.sealing import DecryptionError, header, is_sealed, open_sealed, seal
from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import DataKeyStore, SecretsUnavailable
from orchestrator.secrets.sealed import SealedSecrets
from orchestrator.secrets.sealing import Sealer, sealer_from

__all__ = ["KeyringSealer", "ResealReport", "reseal", "secret_sealer", "secrets_under"]


def _context(tenant: str, name: str) -> str:
    return f"secret/{tenant}/{name}"


class KeyringSealer:
    """Seals with the tenant's current data key; opens keyring blobs by the key id they name and
    anything else with ``legacy`` (the ``ORCHESTRATOR_SECRETS_KEY`` sealer, or ``NoKey``).

    ``owned``: a data key store this sealer starts and stops itself (the CLI's); the runtime's
    event log is started by the runtime."""

    def __init__(self, keys: DataKeys, legacy: Sealer, owned: Lifecycle | None = None) -> None:
        self.keys = keys
        self.legacy = legacy
        self._owned = owned

    @property
    def key_id(self) -> str:
        return self.keys.current_id

    async def start(self) -> None:
        if self._owned is not None:
            await self._owned.start()

    async def stop(self) -> None:
        if self._owned is not None:
            await self._owned.stop()

    async def seal(self, tenant: str, name: str, plaintext: bytes) -> bytes:
        key_id, key = await self.keys.current(tenant)
        return seal(key, tenant, key_id, plaintext, _context(tenant, name))

    async def open(self, tenant: str, name: str, sealed: bytes) -> bytes:
        if not is_sealed(sealed):  # sealed before the keyring, with ORCHESTRATOR_SECRETS_KEY
            return await self.legacy.open(tenant, name, sealed)
        try:
            found = header(sealed)
            if found.tenant != tenant:
                raise SecretsUnavailable(f"the sealed value does not authenticate (it is tenant {found.tenant!r}'s)")
            key = await self.keys.key(tenant, found.key_id)
            return open_sealed(key, sealed, _context(tenant, name))
        except DecryptionError as exc:
            raise SecretsUnavailable(f"the sealed value does not authenticate or its key is missing: {exc}") from None


def secret_sealer(
    secrets_key: str | None, keyring: Keyring | None, log: object | None, open_log: Callable[[], Lifecycle]
) -> Sealer:
    """The keyring's sealer when encryption is configured, its data keys in ``log`` (an event log
    its owner starts) or, without one, in the event log ``open_log`` makes (started with the
    store: the CLI's case); else the ``ORCHESTRATOR_SECRETS_KEY`` sealer (or ``NoKey``).
    ValueError for a malformed ``ORCHESTRATOR_SECRETS_KEY`` or a log that keeps no data keys."""
    legacy = sealer_from(secrets_key)
    if keyring is None:
        return legacy
    owned = None
    if log is None:
        log = owned = open_log()
    if not isinstance(log, DataKeyStore):
        raise ValueError(f"{type(log).__name__} keeps no data keys: secrets cannot be sealed by the keyring")
    return KeyringSealer(DataKeys(keyring, log), legacy, owned)


@dataclass(slots=True)
class ResealReport:
    current_key: str
    resealed: int = 0
    current: int = 0  # already under the current key: not touched

    def to_dict(self) -> dict[str, object]:
        return {"current_key": self.current_key, "resealed": self.resealed, "current": self.current}


async def reseal(store: SealedSecrets) -> ResealReport:
    """Seal again every stored value whose key id is not the current one (every tenant).

    A value written meanwhile is already under the current key; run it while nobody deletes the
    secrets it is moving (a value deleted between its read and its write would come back)."""
    report = ResealReport(store.sealer.key_id)
    for tenant in await store.records.tenants():
        for info in await store.records.list(tenant):
            if info.key_id == report.current_key:
                report.current += 1
                continue
            value = await store.get(tenant, info.name)
            if value is not None:
                await store.put(tenant, info.name, value)
                report.resealed += 1
    return report


async def secrets_under(store: SealedSecrets, key_id: str) -> int:
    """How many stored values (every tenant) are sealed under ``key_id``."""
    found = 0
    for tenant in await store.records.tenants():
        found += sum(1 for info in await store.records.list(tenant) if info.key_id == key_id)
    return found
