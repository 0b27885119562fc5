"""The sealed blob: AES-256-GCM with the tenant and key id in its header, bound as associated data.

Layout: ``MAGIC | len(tenant) | tenant | len(key id) | key id | 12-byte nonce | ciphertext+tag``.
The associated data is the header plus a context (``event/<execution>/<sequence>`` and the like),
so a blob copied to another event, tenant or key id fails to open. No I/O but the OS's random
bytes for nonces.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"\x00OE\x01"  # never the first bytes of JSON, so sealed and plain bodies tell apart
NONCE_BYTES = 12
NONCE_BATCH = 256  # nonces read from the OS at once by a Sealer
CACHED_KEYS = 64  # AESGCM instances a Sealer keeps, most recently used
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
    return _seal(AESGCM(key), os.urandom(NONCE_BYTES), tenant, key_id, plaintext, context)


def open_sealed(key: bytes, blob: bytes, context: str) -> bytes:
    """The plaintext; DecryptionError naming the key id when the tag does not verify."""
    return _open(AESGCM(key), blob, context)


def _seal(cipher: AESGCM, nonce: bytes, tenant: str, key_id: str, plaintext: bytes, context: str) -> bytes:
    head = _head(tenant, key_id)
    return head + nonce + cipher.encrypt(nonce, plaintext, head + context.encode())


def _open(cipher: AESGCM, blob: bytes, context: str) -> bytes:
    found = header(blob)
    head, nonce = blob[: found.size], blob[found.size : found.size + NONCE_BYTES]
    try:
        return cipher.decrypt(nonce, blob[found.size + NONCE_BYTES :], head + context.encode())
    except InvalidTag:
        raise DecryptionError(
            f"{context}: ciphertext under key {found.key_id!r} of tenant {found.tenant!r} does not"
            " verify (tampered, or moved from another event)"
        ) from None


class Sealer:
    """``seal`` and ``open_sealed`` for a hot path: nonces read from the OS ``NONCE_BATCH`` at a
    time, and one prepared AESGCM per key.

    ``os.urandom`` gives up the GIL on every call, and getting it back costs tens of
    microseconds while another thread (a SQLite commit) holds it; one read per 256 nonces
    takes that cost once. Nonces stay unique: the buffer is taken under a lock, every nonce is
    handed out once, and a process forked with a half-used buffer refills before its first
    nonce (the buffer remembers the pid that read it), so parent and child never share one.
    """

    def __init__(self, batch: int = NONCE_BATCH) -> None:
        self._batch = batch
        self._buffer = b""
        self._at = 0
        self._pid = 0
        self._lock = threading.Lock()
        self._ciphers: OrderedDict[bytes, AESGCM] = OrderedDict()

    def nonce(self) -> bytes:
        with self._lock:
            pid = os.getpid()
            if self._at >= len(self._buffer) or pid != self._pid:
                self._buffer, self._at, self._pid = os.urandom(NONCE_BYTES * self._batch), 0, pid
            at = self._at
            self._at = at + NONCE_BYTES
            return self._buffer[at : at + NONCE_BYTES]

    def seal(self, key: bytes, tenant: str, key_id: str, plaintext: bytes, context: str) -> bytes:
        return _seal(self._cipher(key), self.nonce(), tenant, key_id, plaintext, context)

    def open(self, key: bytes, blob: bytes, context: str) -> bytes:
        """As :func:`open_sealed`."""
        return _open(self._cipher(key), blob, context)

    def _cipher(self, key: bytes) -> AESGCM:
        cipher = self._ciphers.get(key)
        if cipher is None:
            cipher = self._ciphers[key] = AESGCM(key)
            if len(self._ciphers) > CACHED_KEYS:
                self._ciphers.popitem(last=False)
        else:
            self._ciphers.move_to_end(key)
        return cipher
