"""Sealing secret values at rest: AES-256-GCM behind a tiny ``Sealer`` interface.

With encryption at rest configured, values are sealed by the keyring instead
(``orchestrator.secrets.keyring_sealing``); this module's single key then only opens values
sealed before. A sealed value is ``b"S1" | len(key id) | key id | 12-byte nonce | ciphertext+tag``; the
associated data binds it to its tenant and name, so a value copied to another row fails to
open. The key comes from ``ORCHESTRATOR_SECRETS_KEY`` (32 bytes, base64); its id is the first
8 bytes of its SHA-256, in hex. Without a key nothing is sealed: storing is refused (never
plaintext). Any other keyring that can seal and open bytes can stand in for ``AesGcmSealer``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator.ports import SecretsUnavailable

__all__ = ["KEY_VARIABLE", "AesGcmSealer", "NoKey", "Sealer", "associated_data", "new_key", "sealer_from"]

KEY_VARIABLE = "ORCHESTRATOR_SECRETS_KEY"
_MAGIC = b"S1"
_NONCE = 12


class Sealer(Protocol):
    """Encrypts and authenticates the value of one (tenant, name); ``key_id`` names the key new
    values are sealed with. Both start and stop with the store."""

    @property
    def key_id(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def seal(self, tenant: str, name: str, plaintext: bytes) -> bytes: ...

    async def open(self, tenant: str, name: str, sealed: bytes) -> bytes:
        """The plaintext; SecretsUnavailable for another key, tampering or another row's value."""


class _NoLifecycle:
    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def associated_data(tenant: str, name: str) -> bytes:
    return b"orchestrator-secret\x00" + tenant.encode() + b"\x00" + name.encode()


def new_key() -> str:
    """A fresh key for ``ORCHESTRATOR_SECRETS_KEY``."""
    return base64.b64encode(os.urandom(32)).decode()


class AesGcmSealer(_NoLifecycle):
    """The single key of ``ORCHESTRATOR_SECRETS_KEY``."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError(f"an AES-256 key is 32 bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:16]

    @classmethod
    def from_text(cls, text: str) -> AesGcmSealer:
        """A key written as base64 (standard or URL-safe alphabet)."""
        try:
            key = base64.b64decode(text.strip().replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{KEY_VARIABLE} is not base64 (make one: orchestrator secrets keygen)") from None
        try:
            return cls(key)
        except ValueError as exc:
            raise ValueError(f"{KEY_VARIABLE}: {exc} (make one: orchestrator secrets keygen)") from None

    async def seal(self, tenant: str, name: str, plaintext: bytes) -> bytes:
        return self.seal_bytes(plaintext, associated_data(tenant, name))

    async def open(self, tenant: str, name: str, sealed: bytes) -> bytes:
        return self.open_bytes(sealed, associated_data(tenant, name))

    def seal_bytes(self, plaintext: bytes, associated: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        key_id = self.key_id.encode()
        return _MAGIC + bytes([len(key_id)]) + key_id + nonce + self._aead.encrypt(nonce, plaintext, associated)

    def open_bytes(self, sealed: bytes, associated: bytes) -> bytes:
        if not sealed.startswith(_MAGIC) or len(sealed) < 3:
            raise SecretsUnavailable("the stored value is not a sealed secret")
        size = sealed[2]
        key_id = sealed[3 : 3 + size].decode(errors="replace")
        if key_id != self.key_id:
            raise SecretsUnavailable(f"sealed with key {key_id}, but the configured key is {self.key_id}")
        nonce = sealed[3 + size : 3 + size + _NONCE]
        try:
            return self._aead.decrypt(nonce, sealed[3 + size + _NONCE :], associated)
        except InvalidTag:
            raise SecretsUnavailable("the sealed value does not authenticate (tampered, or another row's)") from None


class NoKey(_NoLifecycle):
    """No key configured: every seal and open is refused, saying how to configure one."""

    key_id = ""

    async def seal(self, tenant: str, name: str, plaintext: bytes) -> bytes:
        raise SecretsUnavailable(
            f"no secrets key: configure encryption at rest (ORCHESTRATOR_ENCRYPTION_KEYS or"
            f" ORCHESTRATOR_ENCRYPTION_KEYRING), or set {KEY_VARIABLE} (make one: orchestrator secrets keygen)"
        )

    async def open(self, tenant: str, name: str, sealed: bytes) -> bytes:
        raise SecretsUnavailable(f"a stored secret cannot be read without {KEY_VARIABLE}")


def sealer_from(key_text: str | None) -> Sealer:
    return NoKey() if not key_text else AesGcmSealer.from_text(key_text)
