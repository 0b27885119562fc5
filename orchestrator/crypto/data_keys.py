"""Per-tenant data keys: random AES-256 keys, wrapped by a master key, stored in the event log backend.

A tenant has one data key per master key, identified by the master key's id: the key id every
ciphertext names. The first write of a tenant under a master key creates its data key with a
conditional insert (``DataKeyStore.insert_data_key``), so processes creating it at once converge
on the one stored first. Unwrapped keys are cached in the process; only the keyring's master keys
can unwrap them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator.core.timefmt import rfc3339
from orchestrator.crypto.keyring import KEY_BYTES, Keyring
from orchestrator.crypto.sealing import NONCE_BYTES, DecryptionError
from orchestrator.ports import DataKeyRecord, DataKeyStore

TRANSPORT_SCOPE = "_transport"  # the data keys of Kafka records (no tenant name starts with "_")


def _context(tenant: str, key_id: str) -> bytes:
    return f"datakey/{tenant}/{key_id}".encode()


def wrap(master: bytes, tenant: str, key_id: str, key: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(master).encrypt(nonce, key, _context(tenant, key_id))


def unwrap(master: bytes, record: DataKeyRecord) -> bytes:
    nonce, sealed = record.wrapped[:NONCE_BYTES], record.wrapped[NONCE_BYTES:]
    try:
        key = AESGCM(master).decrypt(nonce, sealed, _context(record.tenant, record.key_id))
    except InvalidTag:
        raise DecryptionError(
            f"the data key of tenant {record.tenant!r} under master key {record.key_id!r} does not"
            " unwrap: the keyring holds another key under that id, or the record was altered"
        ) from None
    if len(key) != KEY_BYTES:
        raise DecryptionError(f"the data key of tenant {record.tenant!r} has {len(key)} bytes")
    return key


class DataKeys:
    """The data keys of every tenant, created on first use and cached once unwrapped."""

    def __init__(self, keyring: Keyring, store: DataKeyStore, clock: Callable[[], float] = time.time) -> None:
        self.keyring = keyring
        self.store = store
        self._clock = clock
        self._keys: dict[tuple[str, str], bytes] = {}

    @property
    def current_id(self) -> str:
        return self.keyring.current

    def cached(self, tenant: str, key_id: str) -> bytes | None:
        return self._keys.get((tenant, key_id))

    async def current(self, tenant: str) -> tuple[str, bytes]:
        """(key id, data key) new writes of ``tenant`` use: created under the current master key."""
        key_id = self.keyring.current
        key = self._keys.get((tenant, key_id))
        if key is None:
            key = await self._load(tenant, key_id, create=True)
        return key_id, key

    async def key(self, tenant: str, key_id: str) -> bytes:
        """The data key a ciphertext names; DecryptionError when there is none to be had."""
        key = self._keys.get((tenant, key_id))
        if key is None:
            key = await self._load(tenant, key_id, create=False)
        return key

    async def preload(self, tenant: str) -> None:
        """Unwrap every stored data key of ``tenant`` the keyring can, and create the current one."""
        for record in await self.store.data_keys(tenant):
            master = self.keyring.master(record.key_id)
            if master is not None:
                self._keys[(tenant, record.key_id)] = unwrap(master, record)
        await self.current(tenant)

    async def _load(self, tenant: str, key_id: str, *, create: bool) -> bytes:
        master = self.keyring.master(key_id)
        if master is None:
            raise DecryptionError(
                f"data of tenant {tenant!r} is encrypted under master key {key_id!r}, which the"
                f" keyring {self.keyring.source} does not hold"
            )
        stored = [r for r in await self.store.data_keys(tenant) if r.key_id == key_id]
        if stored:
            record = stored[0]
        elif create:
            fresh = DataKeyRecord(tenant, key_id, wrap(master, tenant, key_id, os.urandom(KEY_BYTES)), rfc3339(self._clock()))
            record = await self.store.insert_data_key(fresh)  # another process may have won
        else:
            raise DecryptionError(f"tenant {tenant!r} has no data key under master key {key_id!r}")
        key = self._keys[(tenant, key_id)] = unwrap(master, record)
        return key
