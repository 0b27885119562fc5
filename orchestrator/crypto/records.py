"""Kafka command and task records, sealed whole under the ``_transport`` data key.

A record's value (the JSON of ``orchestrator.backends.kafka.codec``) becomes a sealed blob
(``sealing.py``) bound to ``kafka/<kind>`` (``command`` or ``task``); the execution id inside it
routes it, so a blob copied to another execution's key still reaches its own execution. Records
have no tenant of their own, so they use the data key of the reserved scope ``_transport``
(no tenant name starts with ``_``). Sealing and opening are synchronous (the consumer decodes
in its fetch loop): :meth:`RecordCipher.prepare` unwraps the keys first, once the event log
(which stores them) is started. A record under a master key this process's keyring lacks does
not decode (and is parked): add a new master key to every process before making it current.
Plaintext records (written before the keyring) still open.
"""

from __future__ import annotations

from orchestrator.crypto.data_keys import TRANSPORT_SCOPE, DataKeys
from orchestrator.crypto.sealing import DecryptionError, Sealer, header, is_sealed


class RecordCipher:
    """``seal`` and ``open`` of the Kafka transport while a keyring is configured."""

    encrypts = True

    def __init__(self, keys: DataKeys) -> None:
        self.keys = keys
        self._ready = False
        self._sealer = Sealer()

    async def prepare(self) -> None:
        """Unwrap the stored ``_transport`` data keys and create the current one."""
        await self.keys.preload(TRANSPORT_SCOPE)
        self._ready = True

    def seal(self, value: bytes, kind: str) -> bytes:
        key_id = self.keys.current_id
        key = self.keys.cached(TRANSPORT_SCOPE, key_id)
        if key is None:
            raise RuntimeError("the Kafka record cipher is not prepared (RecordCipher.prepare)")
        return self._sealer.seal(key, TRANSPORT_SCOPE, key_id, value, f"kafka/{kind}")

    def open(self, value: bytes, kind: str) -> bytes:
        """The record's plaintext; DecryptionError when it does not verify or its key is missing."""
        if not is_sealed(value):
            return value
        found = header(value)
        key = self.keys.cached(found.tenant, found.key_id)
        if key is None:
            raise DecryptionError(f"a {kind} record is sealed under key {found.key_id!r}, which this process lacks")
        return self._sealer.open(key, value, f"kafka/{kind}")
