"""The server's Ed25519 signing key: each published version's checksum is signed with it, and
anyone holding the public key (``GET /api/v1/catalog/key``) can verify a download.

The key is read from ``ORCHESTRATOR_CATALOG_SIGNING_KEY`` (a PEM PKCS#8 file) when set; else it
is kept in ``catalog-signing-key.pem`` beside the catalog's SQLite file, generated on first use
(mode 0600); with an in-memory catalog the key lives only as long as the process.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_FILE = "catalog-signing-key.pem"
ALGORITHM = "ed25519"


class SigningKeyError(ValueError):
    """The signing key file cannot be read or is not an Ed25519 private key."""


class Signer:
    """Signs checksums with one Ed25519 private key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    def sign(self, checksum: str) -> str:
        """The base64 signature of the checksum text."""
        return base64.b64encode(self._key.sign(checksum.encode())).decode()

    @property
    def public_key(self) -> str:
        """The public key as base64 of its 32 raw bytes."""
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    @property
    def public_pem(self) -> str:
        return (
            self._key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )


def verify(public_key: str, checksum: str, signature: str) -> bool:
    """Whether ``signature`` (base64) is the signature of ``checksum`` by ``public_key`` (base64 raw)."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        key.verify(base64.b64decode(signature, validate=True), checksum.encode())
    except (InvalidSignature, ValueError):
        return False
    return True


def load_signer(path: Path) -> Signer:
    """The signer of a PEM private key file; SigningKeyError when it is not an Ed25519 key."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"cannot read the catalog signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"the catalog signing key {path} is not an Ed25519 private key")
    return Signer(key)


def signer_at(path: Path, *, create: bool) -> Signer:
    """The signer of the key at ``path``; generated and written there (0600) when absent and
    ``create``; SigningKeyError when absent and not ``create``."""
    if path.exists() or not create:
        return load_signer(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return Signer(key)
