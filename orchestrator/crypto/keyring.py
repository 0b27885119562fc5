"""Master keys: from a keyring file or the environment; the current one wraps new data keys.

A keyring file is JSON: ``{"current": "k2", "keys": {"k1": "<base64 of 32 bytes>", "k2": "..."}}``.
The environment form, ``ORCHESTRATOR_ENCRYPTION_KEYS=k1=<base64>,k2=<base64>``, makes the last
listed key current unless ``ORCHESTRATOR_ENCRYPTION_CURRENT_KEY`` names another. A key id is
1 to 64 of letters, digits, ``.``, ``_`` and ``-``. No keyring: encryption is off.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.settings import SettingsError

KEY_BYTES = 32  # AES-256
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class KeyringError(SettingsError):
    """A keyring that cannot be used: unreadable, malformed, or naming no current key."""


@dataclass(frozen=True)
class Keyring:
    """Master keys by id; ``current`` wraps the data keys new writes use."""

    keys: Mapping[str, bytes] = field(repr=False)
    current: str
    source: str = "(given)"  # where it was read from, for messages

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyringError(f"keyring {self.source} holds no keys")
        for key_id, secret in self.keys.items():
            if not _KEY_ID.fullmatch(key_id):
                raise KeyringError(f"keyring {self.source}: invalid key id {key_id!r}")
            if len(secret) != KEY_BYTES:
                raise KeyringError(
                    f"keyring {self.source}: key {key_id!r} has {len(secret)} bytes, not {KEY_BYTES}"
                )
        if self.current not in self.keys:
            raise KeyringError(f"keyring {self.source}: the current key {self.current!r} is not in it")

    def master(self, key_id: str) -> bytes | None:
        return self.keys.get(key_id)

    @classmethod
    def from_file(cls, path: str) -> Keyring:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KeyringError(f"cannot read keyring file {path}: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict):
            raise KeyringError(f'keyring file {path} must hold {{"current": ID, "keys": {{ID: base64}}}}')
        keys = {str(k): _decode(v, k, path) for k, v in doc["keys"].items()}
        current = doc.get("current") or (list(keys)[-1] if keys else "")
        return cls(keys, str(current), path)

    @classmethod
    def from_text(cls, text: str, current: str | None = None, source: str = "ORCHESTRATOR_ENCRYPTION_KEYS") -> Keyring:
        keys: dict[str, bytes] = {}
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            key_id, sep, value = item.partition("=")
            if not sep:
                raise KeyringError(f"{source}: {item[:8]!r}... is not ID=BASE64")
            keys[key_id.strip()] = _decode(value.strip(), key_id, source)
        return cls(keys, current or (list(keys)[-1] if keys else ""), source)


def _decode(value: object, key_id: object, source: str) -> bytes:
    if not isinstance(value, str):
        raise KeyringError(f"keyring {source}: key {key_id!r} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"keyring {source}: key {key_id!r} is not valid base64") from None


def new_master_key() -> str:
    """A fresh random master key, base64 (for a keyring file or the environment)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def load_keyring(path: str | None, text: str | None, current: str | None) -> Keyring | None:
    """The configured keyring (a file wins over the environment); None when encryption is off."""
    if path:
        ring = Keyring.from_file(path)
        if current:
            ring = Keyring(ring.keys, current, ring.source)
        return ring
    if text:
        return Keyring.from_text(text, current)
    return None
