"""Encryption wired from settings: the keyring, and the codec an event log stores through.

Off unless a keyring is configured (``ORCHESTRATOR_ENCRYPTION_KEYRING`` or
``ORCHESTRATOR_ENCRYPTION_KEYS``). The wrapped data keys live in the event log backend, so the log
must be a ``DataKeyStore``; the runtime and maintenance commands call :func:`attach` before
starting the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.crypto.codec import EncryptedCodec
from orchestrator.crypto.data_keys import DataKeys
from orchestrator.crypto.keyring import Keyring, KeyringError, load_keyring
from orchestrator.crypto.records import RecordCipher
from orchestrator.ports import DataKeyStore
from orchestrator.settings import Settings


@dataclass(frozen=True, slots=True)
class EncryptionStatus:
    """What readiness and ``orchestrator scan`` report: on or off, and the current key id."""

    enabled: bool
    current_key: str | None = None
    keys: tuple[str, ...] = ()
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "current_key": self.current_key, "keys": list(self.keys), "source": self.source}


def keyring_of(settings: Settings) -> Keyring | None:
    """The settings' keyring, or None when encryption is off; KeyringError when misconfigured."""
    return load_keyring(settings.encryption_keyring, settings.encryption_keys, settings.encryption_current_key)


def status_of(keyring: Keyring | None) -> EncryptionStatus:
    if keyring is None:
        return EncryptionStatus(False)
    return EncryptionStatus(True, keyring.current, tuple(sorted(keyring.keys)), keyring.source)


def attach(log: object, keyring: Keyring | None) -> EncryptedCodec | None:
    """Make ``log`` store through AES-256-GCM under ``keyring`` (None: leave it plaintext)."""
    if keyring is None:
        return None
    if not isinstance(log, DataKeyStore) or not hasattr(log, "codec"):
        raise KeyringError(f"{type(log).__name__} cannot store encrypted data (no data key store)")
    codec = EncryptedCodec(DataKeys(keyring, log))
    log.codec = codec
    return codec


def attach_records(transport: object, codec: EncryptedCodec | None) -> RecordCipher | None:
    """Seal the records of a transport that has any (Kafka) with the codec's data keys; the
    cipher must be prepared once the event log is started."""
    if codec is None or not hasattr(transport, "records"):
        return None
    cipher = RecordCipher(codec.keys)
    transport.records = cipher
    return cipher
