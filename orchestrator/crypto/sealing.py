"""The sealed blob: AES-256-GCM with the tenant and key id in its header, bound as associated data.

Layout: ``MAGIC | len(tenant) | tenant | len(key id) | key id | 12-byte nonce | ciphertext+tag``.
The associated data is the header plus a context (``event/<execution>/<sequence>`` and the like),
so a blob copied to another event, tenant or key id fails to open. Pure: no I/O.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"\x00OE\x01"  # never the first bytes of JSON, so sealed and plain bodies tell apart
NONCE_BYTES = 12
ALGORITHM = "aes256gcm"  # the envelope's ``codec`` of sealed event data


class DecryptionError(ValueError):
    """A ciphertext that does not open: tampered, moved to another event, or under a missing key."""


@dataclass(frozen=True, slots=True)
class Header:
    tenant: str
    key_id: str
    size: int  # bytes of header before the nonce


def is_sealed(blob: bytes) -> bool:
    return blob[:4] == MAGIC


def header(blob: bytes) -> Header:
    """The tenant and key id a blob names; DecryptionError when it is no sealed blob."""
    try:
        if blob[:4] != MAGIC:
            raise ValueError("no sealed-data marker")
        at = 4
        tenant_len = blob[at]
        tenant = blob[at + 1 : at + 1 + tenant_len].decode()
        at += 1 + tenant_len
        key_len = blob[at]
        key_id = blob[at + 1 : at + 1 + key_len].decode()
        at += 1 + key_len
        if len(key_id) != key_len or len(blob) < at + NONCE_BYTES + 16:
            raise ValueError("truncated")
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise DecryptionError(f"not a sealed blob: {exc}") from None
    return Header(tenant, key_id, at)


def _head(tenant: str, key_id: str) -> bytes:
    t, k = tenant.encode(), key_id.encode()
    return MAGIC + bytes([len(t)]) + t + bytes([len(k)]) + k


def seal(key: bytes, tenant: str, key_id: str, plaintext: bytes, context: str) -> bytes:
    head = _head(tenant, key_id)
    nonce = os.urandom(NONCE_BYTES)
    return head + nonce + AESGCM(key).encrypt(nonce, plaintext, head + context.encode())


def open_sealed(key: bytes, blob: bytes, context: str) -> bytes:
    """The plaintext; DecryptionError naming the key id when the tag does not verify."""
    found = header(blob)
    head, nonce = blob[: found.size], blob[found.size : found.size + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[found.size + NONCE_BYTES :], head + context.encode())
    except InvalidTag:
        raise DecryptionError(
            f"{context}: ciphertext under key {found.key_id!r} of tenant {found.tenant!r} does not"
            " verify (tampered, or moved from another event)"
        ) from None
