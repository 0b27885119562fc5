"""An event's fields as a plain tuple: what a feed reader that folds many events needs.

``Fields`` is (position, type, subject, sequence, time, tenant, workflow, workflowversion, data):
the values of the envelope read at that feed position, without building the ``Envelope``
(a feed that serves them is a ``FieldFeed``). ``data``
is given only for the types asked for (``wanted``), None for the others. :func:`from_bytes` reads
the stored canonical JSON straight into one; a body it cannot read that way (another schema
version, ``data_base64``, not an envelope) goes through ``Envelope.from_bytes``, which decides.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from schemas.envelope import SCHEMA_VERSION, TYPE_PREFIX, Envelope, EnvelopeError, loads

Fields = tuple[int, str, str, int, str, str, str, int, Any]
_PREFIX = len(TYPE_PREFIX)


@dataclass(slots=True)
class FieldsPage:
    """A feed page (``orchestrator.ports.FeedPage``) of fields rather than envelopes."""

    items: list[Fields]
    last: int


@runtime_checkable
class FieldFeed(Protocol):
    """A feed that can also serve pages of fields: the same events, positions and ``last`` as
    ``read_after``, each event's data only when its type is in ``wanted``."""

    async def read_fields_after(self, position: int, limit: int, wanted: Set[str]) -> FieldsPage: ...


def of_envelope(position: int, envelope: Envelope, wanted: Set[str]) -> Fields:
    kind = envelope.type
    data = envelope.data if kind in wanted else None
    return (position, kind, envelope.subject, envelope.sequence, envelope.time, envelope.tenant,
            envelope.workflow, envelope.workflowversion, data)  # fmt: skip


def from_bytes(position: int, raw: bytes, wanted: Set[str]) -> Fields:
    """The fields of one stored identity-codec envelope (EnvelopeError when it is not one)."""
    event = loads(raw)
    try:
        kind = event["type"]
        if (
            event.get("schemaversion", 1) == SCHEMA_VERSION
            and "data" in event
            and type(kind) is str
            and kind.startswith(TYPE_PREFIX)
        ):
            kind = kind[_PREFIX:]
            fields = (
                position, kind, event["subject"], int(event["sequence"]), event["time"],
                event.get("tenant", "default"), event["workflow"], int(event["workflowversion"]),
                event["data"] if kind in wanted else None,
            )  # fmt: skip
            return fields
    except (KeyError, TypeError, ValueError) as exc:
        raise EnvelopeError(f"not an orchestrator event envelope: {exc!r}") from None
    return of_envelope(position, Envelope.from_cloudevent(event), wanted)
