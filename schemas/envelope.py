"""The event envelope: CloudEvents 1.0 attributes plus our extensions, the same bytes everywhere.

Serialised as a structured-mode CloudEvent in canonical JSON: compact, UTF-8, keys sorted at
every level. ``data`` is the event payload after a bytes -> bytes codec chain named by the
``codec`` extension; with the identity codec it is stored inline as JSON, otherwise as
``data_base64``. The engine creates envelopes with :meth:`Envelope.sealed`, which encodes each
event once: the same canonical bytes are hashed into the chain and kept as the stored form.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.canonical_json import canonical_bytes
from schemas.strict_json import has_long_digit_runs

SCHEMA_VERSION = 1
SPEC_VERSION = "1.0"
TYPE_PREFIX = "io.orchestrator."
DEFAULT_SOURCE = "/orchestrator"
# Canonical JSON (schemas/canonical_json.py): compact, UTF-8, keys sorted. Strict: a value JSON
# cannot hold (NaN, infinity, an object that is not JSON) is an error, so every stored and emitted
# byte is strict JSON. Envelopes read back are hashed in the lenient form (``default`` never fires).
# "chainhash" sorts right before "codec", which every envelope has; only "actor" and
# "causationid" (string values, whose quotes JSON escapes) can come before it.
_CODEC_KEY = '"codec":'
_CODEC_BYTES = _CODEC_KEY.encode()


class EnvelopeError(ValueError):
    """Bytes that are not a valid envelope, or event data that cannot be encoded as strict JSON."""


def _canonical(event: dict[str, Any]) -> bytes:
    """The canonical UTF-8 bytes; EnvelopeError naming the event when its data is not strict JSON."""
    try:
        encoded = canonical_bytes(event)
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError: an unpaired surrogate
        where = f"{event.get('type')} #{event.get('sequence')} of {event.get('subject')}"
        raise EnvelopeError(f"{where}: the event data is not strict JSON: {exc}") from None
    return encoded


@dataclass(frozen=True, slots=True)
class Envelope:
    """One immutable event of one execution."""

    id: str
    type: str  # short domain type, e.g. "StepSucceeded"; the CloudEvent type adds TYPE_PREFIX
    subject: str  # execution id
    sequence: int  # gap-free per execution, starting at 1
    time: str  # RFC 3339
    workflow: str
    workflowversion: int
    data: Any
    tenant: str = "default"
    source: str = DEFAULT_SOURCE
    actor: str | None = None
    causationid: str | None = None  # id of the command that caused this event
    node: str | None = None  # the process that committed it (orchestrator.cluster), when known
    schemaversion: int = SCHEMA_VERSION
    codec: str = "identity"
    chainhash: str | None = None  # see ``chained``: links this event to the one before it
    # The canonical bytes, kept once computed. Not an init field, so ``dataclasses.replace``
    # (a changed envelope) starts without them.
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def sealed(cls, previous: str, **fields: Any) -> Envelope:
        """A new envelope chained to the event whose hash is ``previous``, encoded once.

        Equal to ``chained(previous, Envelope(**fields))``: its canonical JSON without the hash
        is hashed, the hash is spliced into those bytes at its sorted place, and they are kept
        as the envelope's ``to_bytes``.
        """
        envelope = cls(**fields)
        body = _canonical(envelope.to_cloudevent())  # encoded once: hashed, then kept
        digest = hashlib.sha256(b"%s\n%s" % (previous.encode(), body)).hexdigest()
        at = body.index(_CODEC_BYTES)
        encoded = b'%s"chainhash":"%s",%s' % (body[:at], digest.encode(), body[at:])
        # Not yet shared with anyone: finishing a frozen instance, as __post_init__ would.
        object.__setattr__(envelope, "chainhash", digest)
        object.__setattr__(envelope, "_encoded", encoded)
        return envelope

    def to_cloudevent(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "type": TYPE_PREFIX + self.type,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": "application/json",
            "sequence": self.sequence,
            "workflow": self.workflow,
            "workflowversion": self.workflowversion,
            "tenant": self.tenant,
            "schemaversion": self.schemaversion,
            "codec": self.codec,
        }
        if self.actor is not None:
            event["actor"] = self.actor
        if self.causationid is not None:
            event["causationid"] = self.causationid
        if self.chainhash is not None:
            event["chainhash"] = self.chainhash
        if self.node is not None:
            event["node"] = self.node
        event["data"] = self.data
        return event

    def to_bytes(self) -> bytes:
        """The canonical JSON bytes: the stored and transported form."""
        encoded = self._encoded
        if encoded is None:
            encoded = _canonical(self.to_cloudevent())
            object.__setattr__(self, "_encoded", encoded)  # a cache of immutable fields
        return encoded

    @classmethod
    def from_cloudevent(cls, event: dict[str, Any]) -> Envelope:
        try:
            version = int(event.get("schemaversion", 1))
            event = upcast(event, version)
            data = event["data"] if "data" in event else _decode_base64(event)
            return cls(
                id=event["id"],
                type=event["type"].removeprefix(TYPE_PREFIX),
                subject=event["subject"],
                sequence=int(event["sequence"]),
                time=event["time"],
                workflow=event["workflow"],
                workflowversion=int(event["workflowversion"]),
                data=data,
                tenant=event.get("tenant", "default"),
                source=event.get("source", DEFAULT_SOURCE),
                actor=event.get("actor"),
                causationid=event.get("causationid"),
                node=event.get("node"),
                schemaversion=SCHEMA_VERSION,
                codec=event.get("codec", "identity"),
                chainhash=event.get("chainhash"),
            )
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            raise EnvelopeError(f"not an orchestrator event envelope: {exc!r}") from None

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.from_cloudevent(loads(raw))


def loads(raw: bytes) -> dict[str, Any]:
    """The JSON object of an envelope's bytes, not yet checked as an envelope (EnvelopeError
    when they are not a JSON object)."""
    try:
        if has_long_digit_runs(raw):  # orjson would turn an integer past 64 bits into a float
            raise orjson.JSONDecodeError("long digits", "", 0)
        event = orjson.loads(raw)  # about 4 times the standard parser's speed
    except orjson.JSONDecodeError:  # long integers, NaN, lone surrogates: the standard parser decides
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # not UTF-8 or JSON, too long an integer
            raise EnvelopeError(f"envelope is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise EnvelopeError("envelope is not a JSON object")
    return event


def chain_hash(previous: str, envelope: Envelope) -> str:
    """SHA-256 over the previous event's hash and this event's canonical form (without its own hash).

    The first event of an execution chains from ``""``. Editing, removing or reordering any stored
    event breaks every hash after it, which ``orchestrator verify`` reports.
    """
    event = envelope.to_cloudevent()
    event.pop("chainhash", None)
    return hashlib.sha256(b"%s\n%s" % (previous.encode(), canonical_bytes(event, lenient=True))).hexdigest()


def chained(previous: str, envelope: Envelope) -> Envelope:
    """The envelope with its ``chainhash`` set, following the event whose hash is ``previous``."""
    return dataclasses.replace(envelope, chainhash=chain_hash(previous, envelope))


def _decode_base64(event: dict[str, Any]) -> Any:
    if event.get("codec", "identity") != "identity":
        raise ValueError(f"codec {event['codec']!r} is not available")
    return json.loads(base64.b64decode(event["data_base64"]))


def upcast(event: dict[str, Any], version: int) -> dict[str, Any]:
    """Bring an older envelope up to SCHEMA_VERSION. Version 1 is the first; nothing to do yet."""
    if version > SCHEMA_VERSION:
        raise ValueError(f"schemaversion {version} is newer than this code ({SCHEMA_VERSION})")
    return event
