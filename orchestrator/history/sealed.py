"""Exports and archives of an encrypted event log stay encrypted.

When the log's codec encrypts (``orchestrator.crypto``), each exported event is written in its
sealed form (``codec: "aes256gcm"``, ``data_base64``) and the file carries the wrapped data keys
it needs (``{"kind":"data_key",...}`` lines after the header), useless without the master
keyring. Importing stores those keys in the target (the first record of a tenant and key id
stands) and opens each sealed event with the target's codec, which seals it again on append.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any, TextIO

from orchestrator.ports import DataKeyRecord, DataKeyStore, EventCodec
from schemas.envelope import Envelope, EnvelopeError

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encrypting(log: object) -> EventCodec | None:
    """The log's codec when it encrypts, else None."""
    codec: EventCodec | None = getattr(log, "codec", None)
    return codec if codec is not None and codec.encrypts else None


async def event_lines(log: object, events: Sequence[Envelope]) -> list[str]:
    """The ``event`` lines of ``events``: sealed when the log encrypts, else their canonical JSON."""
    codec = encrypting(log)
    bodies = await codec.encode(events) if codec is not None else [e.to_bytes() for e in events]
    return [f'{{"kind":"event","event":{body.decode()}}}\n' for body in bodies]


async def write_data_keys(out: TextIO, log: object, tenant: str | None = None) -> int:
    """The wrapped data keys (of ``tenant``, or all) when the log encrypts; how many."""
    if encrypting(log) is None or not isinstance(log, DataKeyStore):
        return 0
    records = await log.data_keys(tenant)
    for r in records:
        record = {"kind": "data_key", "tenant": r.tenant, "key_id": r.key_id, "created_at": r.created_at}
        record["wrapped"] = base64.b64encode(r.wrapped).decode()
        out.write(_dumps(record) + "\n")
    return len(records)


async def import_data_key(log: object, record: dict[str, Any]) -> str | None:
    """Store a ``data_key`` line's key in the target; the problem as text, or None."""
    if not isinstance(log, DataKeyStore):
        return "the target event log keeps no data keys"
    try:
        fields = {name: record[name] for name in ("tenant", "key_id", "created_at")}
        if not all(isinstance(value, str) for value in fields.values()):
            return "tenant, key_id and created_at must be text"
        wrapped = base64.b64decode(record["wrapped"], validate=True)
    except (KeyError, TypeError, binascii.Error, ValueError) as exc:
        return f"not a data key record: {exc!r}"
    await log.insert_data_key(DataKeyRecord(wrapped=wrapped, **fields))
    return None


async def open_event(log: object, raw: dict[str, Any]) -> Envelope:
    """The envelope of an ``event`` line, opened with the log's codec when sealed."""
    if raw.get("codec", "identity") == "identity":
        return Envelope.from_cloudevent(raw)
    codec: EventCodec | None = getattr(log, "codec", None)
    if codec is None or not codec.encrypts:
        raise EnvelopeError(f"event {raw.get('id')!r} is encrypted ({raw.get('codec')}): configure the keyring")
    return (await codec.decode([_dumps(raw).encode()]))[0]
