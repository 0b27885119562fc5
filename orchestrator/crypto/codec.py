"""AES-256-GCM on event ``data`` and snapshot bodies, under each tenant's current data key.

An encrypted event keeps its CloudEvent attributes in the clear and carries ``codec:
"aes256gcm"`` and ``data_base64``: a sealed blob (``sealing.py``) naming tenant and key id, whose
associated data binds ``event/<execution>/<sequence>``. Decoding gives back the plaintext
envelope (``codec: "identity"``), whose chain hash is the one computed when it was written: the
hash covers the plaintext, so re-encrypting under another key never breaks ``orchestrator
verify``. A snapshot body is sealed whole, bound to ``snapshot/<execution>/<sequence>``.
Plaintext rows (written before a keyring was configured) still decode.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from typing import Any

from orchestrator.crypto.data_keys import DataKeys
from orchestrator.crypto.sealing import ALGORITHM, DecryptionError, Sealer, header, is_sealed
from orchestrator.ports import Snapshot
from schemas.envelope import Envelope, EnvelopeError

log = logging.getLogger(__name__)
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_PLAIN_MARK = b'"codec":"identity"'
# In canonical (key-sorted) JSON, "data" follows "codec" and precedes "datacontenttype"; the keys
# before and after hold strings or numbers, whose quotes are escaped, so the first DATA_START and
# the last DATA_END are the top-level ones whatever the data holds.
_DATA_START = b'"codec":"identity","data":'
_DATA_END = b',"datacontenttype":"application/json",'
_SEALED_START = b'"codec":"aes256gcm","data_base64":"'


class UndecryptableEvent(EnvelopeError):
    """A stored event whose data does not decrypt: tampered, moved, or under a missing key."""


def event_context(execution_id: str, sequence: int) -> str:
    return f"event/{execution_id}/{sequence}"


def snapshot_context(execution_id: str, sequence: int) -> str:
    return f"snapshot/{execution_id}/{sequence}"


def stored_key_id(raw: bytes) -> str | None:
    """The key id a stored event or snapshot is sealed under; None for plaintext."""
    if is_sealed(raw):
        return header(raw).key_id
    if _PLAIN_MARK in raw or not raw.startswith(b"{"):
        return None
    event = json.loads(raw)
    if event.get("codec") != ALGORITHM:
        return None
    return header(base64.b64decode(event["data_base64"])).key_id


class EncryptedCodec:
    """The event log codec while a keyring is configured (``orchestrator.crypto.setup``)."""

    encrypts = True

    def __init__(self, keys: DataKeys) -> None:
        self.keys = keys
        self._sealer = Sealer()

    async def encode(self, events: Sequence[Envelope]) -> list[bytes]:
        out: list[bytes] = []
        for envelope in events:
            key_id, key = await self.keys.current(envelope.tenant)
            out.append(self.encode_with(envelope, key_id, key))
        return out

    def encode_with(self, envelope: Envelope, key_id: str, key: bytes) -> bytes:
        """The sealed form, spliced into the envelope's canonical bytes (equal to encoding the
        CloudEvent with ``codec`` and ``data_base64`` from scratch, without a second encoding)."""
        raw = envelope.to_bytes()
        start, end = raw.find(_DATA_START), raw.rfind(_DATA_END)
        context = event_context(envelope.subject, envelope.sequence)
        if 0 <= start < end:
            plaintext = raw[start + len(_DATA_START) : end]
            blob = base64.b64encode(self._sealer.seal(key, envelope.tenant, key_id, plaintext, context))
            return b"".join((raw[:start], _SEALED_START, blob, b'"', raw[end:]))
        event = envelope.to_cloudevent()
        plaintext = _canonical(event.pop("data")).encode()
        blob = self._sealer.seal(key, envelope.tenant, key_id, plaintext, context)
        event["codec"] = ALGORITHM
        event["data_base64"] = base64.b64encode(blob).decode()
        return _canonical(event).encode()

    async def decode(self, stored: Sequence[bytes]) -> list[Envelope]:
        return [await self.decode_one(raw) for raw in stored]

    async def decode_one(self, raw: bytes) -> Envelope:
        if _PLAIN_MARK in raw:
            return Envelope.from_bytes(raw)
        try:
            event: dict[str, Any] = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise EnvelopeError(f"envelope is not JSON: {exc}") from None
        if not isinstance(event, dict) or event.get("codec") != ALGORITHM:
            return Envelope.from_bytes(raw)
        where = f"{event.get('type')} #{event.get('sequence')} of {event.get('subject')}"
        try:
            blob = base64.b64decode(event.pop("data_base64"), validate=True)
            found = header(blob)
            tenant = event.get("tenant", "default")
            if found.tenant != tenant:
                raise DecryptionError(f"sealed for tenant {found.tenant!r}, stored under {tenant!r}")
            key = await self.keys.key(tenant, found.key_id)
            plaintext = self._sealer.open(key, blob, event_context(str(event["subject"]), int(event["sequence"])))
            event["data"] = json.loads(plaintext)
        except (DecryptionError, KeyError, TypeError, ValueError) as exc:
            raise UndecryptableEvent(f"{where}: cannot decrypt its data: {exc}") from None
        event["codec"] = "identity"
        return Envelope.from_cloudevent(event)

    async def seal_snapshot(self, snapshot: Snapshot) -> bytes:
        key_id, key = await self.keys.current(snapshot.tenant)
        context = snapshot_context(snapshot.execution_id, snapshot.sequence)
        return self._sealer.seal(key, snapshot.tenant, key_id, snapshot.body, context)

    async def open_snapshot(self, snapshot: Snapshot) -> Snapshot | None:
        """The plaintext snapshot; None (the engine folds the events instead) when it does not open."""
        if not is_sealed(snapshot.body):
            return snapshot
        try:
            found = header(snapshot.body)
            key = await self.keys.key(found.tenant, found.key_id)
            context = snapshot_context(snapshot.execution_id, snapshot.sequence)
            body = self._sealer.open(key, snapshot.body, context)
        except DecryptionError as exc:
            log.warning("execution %s: ignoring snapshot %d: %s", snapshot.execution_id, snapshot.sequence, exc)
            return None
        return Snapshot(snapshot.execution_id, snapshot.sequence, body, found.tenant)

    async def reseal(self, kind: str, execution_id: str, sequence: int, raw: bytes) -> bytes | None:
        """``raw`` re-encrypted under the tenant's current data key; None when it already is."""
        current = self.keys.current_id
        if kind == "snapshot":
            if is_sealed(raw) and header(raw).key_id == current:
                return None
            opened = await self.open_snapshot(Snapshot(execution_id, sequence, raw, _tenant_of(raw)))
            if opened is None:
                return None  # unreadable: left for the loader to skip
            return await self.seal_snapshot(opened)
        if stored_key_id(raw) == current:
            return None
        envelope = await self.decode_one(raw)
        key_id, key = await self.keys.current(envelope.tenant)
        return self.encode_with(envelope, key_id, key)


def _tenant_of(body: bytes) -> str:
    """The tenant of a snapshot body: from its header when sealed, else from the state it holds."""
    if is_sealed(body):
        return header(body).tenant
    try:
        return str(json.loads(body)["state"]["tenant"])
    except (ValueError, KeyError, TypeError):
        return "default"
