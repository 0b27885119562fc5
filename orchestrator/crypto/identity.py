"""The identity codec: envelopes stored as their canonical JSON, snapshot bodies as they are.

What every event log uses while encryption is off. Sealed data it meets (written while a keyring
was configured) is refused with an error saying so, never returned as if it were plaintext.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from orchestrator.crypto.sealing import is_sealed
from orchestrator.ports import Snapshot
from schemas.envelope import Envelope

log = logging.getLogger(__name__)


class IdentityCodec:
    encrypts = False

    async def encode(self, events: Sequence[Envelope]) -> list[bytes]:
        return [e.to_bytes() for e in events]

    async def decode(self, stored: Sequence[bytes]) -> list[Envelope]:
        return [Envelope.from_bytes(raw) for raw in stored]

    async def seal_snapshot(self, snapshot: Snapshot) -> bytes:
        return snapshot.body

    async def open_snapshot(self, snapshot: Snapshot) -> Snapshot | None:
        if is_sealed(snapshot.body):
            log.warning("execution %s: snapshot %d is encrypted and no keyring is configured; ignored",
                        snapshot.execution_id, snapshot.sequence)
            return None
        return snapshot


class PlainRecords:
    """Kafka records as they are: the transport's cipher while encryption is off."""

    encrypts = False

    def seal(self, value: bytes, kind: str) -> bytes:
        return value

    def open(self, value: bytes, kind: str) -> bytes:
        if is_sealed(value):
            raise ValueError(f"a {kind} record is encrypted and no keyring is configured")
        return value


IDENTITY = IdentityCodec()
PLAIN_RECORDS = PlainRecords()
