"""One audit record, its canonical form and its seal (place in the chain and SHA-256 hashes). Pure.

The canonical form is the record's JSON object with sorted keys, no whitespace, ASCII only
(``\\uXXXX`` escapes), without ``hash``: ``hash`` is the SHA-256 (hex) of those bytes, which
include ``sequence`` and ``previous`` (the hash of the record before, 64 zeros for the first), so
changing, removing or moving any record breaks the chain at that record. The stored body is the
same object with ``hash`` added (:meth:`SealedRecord.body`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from orchestrator.ports import AuditEntry

FORMAT = 1  # the record format version, hashed with the record
GENESIS = "0" * 64  # the ``previous`` of the first record
Outcome = Literal["ok", "denied", "failed", "error"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
MAX_TEXT = 1000  # characters kept of a reason or a detail value
Detail = str | int | float | bool | None
_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


class AuditFormatError(ValueError):
    """Stored bytes that are not an audit record of a known format."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a principal's ``subject`` and ``kind`` (key, token, session, anonymous,
    system, cli...) and the credential it used (an API key id), when known."""

    subject: str
    kind: str = "anonymous"
    credential_id: str | None = None

    @classmethod
    def parse(cls, actor: str) -> Actor:
        """An actor string as commands carry it, ``kind:subject`` (``api`` has no kind)."""
        kind, colon, subject = actor.partition(":")
        return cls(subject, kind) if colon and subject else cls(actor)

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "kind": self.kind, "credential_id": self.credential_id}


@dataclass(frozen=True, slots=True)
class Resource:
    """What was acted on: a type (``executions``, ``definitions``, ``keys``...) and an id."""

    type: str
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "id": self.id}


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What happened: ``action`` is ``resource:verb`` (``executions:cancel``, ``keys:create``),
    ``outcome`` ok / denied (401, 403) / failed (other refusals) / error (5xx)."""

    time: str  # RFC 3339, UTC
    actor: Actor
    action: str
    resource: Resource
    tenant: str
    outcome: Outcome
    reason: str | None = None
    request_id: str | None = None
    source: str | None = None  # the client address
    details: Mapping[str, Detail] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {self.outcome!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "actor": self.actor.to_dict(),
            "action": self.action,
            "resource": self.resource.to_dict(),
            "tenant": self.tenant,
            "outcome": self.outcome,
            "reason": self.reason,
            "request_id": self.request_id,
            "source": self.source,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRecord:
        try:
            actor, resource = data["actor"], data["resource"]
            outcome = data["outcome"]
            if outcome not in OUTCOMES:
                raise AuditFormatError(f"unknown outcome {outcome!r}")
            return cls(
                time=_text(data["time"]),
                actor=Actor(
                    _text(actor["subject"]), _text(actor["kind"]), _optional(actor.get("credential_id"))
                ),
                action=_text(data["action"]),
                resource=Resource(_text(resource["type"]), _optional(resource.get("id"))),
                tenant=_text(data["tenant"]),
                outcome=cast(Outcome, outcome),
                reason=_optional(data.get("reason")),
                request_id=_optional(data.get("request_id")),
                source=_optional(data.get("source")),
                details=dict(data.get("details") or {}),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise AuditFormatError(f"not an audit record: {type(exc).__name__}: {exc}") from None


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """A record in its place: ``sequence`` in the chain, ``previous`` record's hash, its own."""

    sequence: int
    previous: str
    hash: str
    record: AuditRecord

    def to_dict(self) -> dict[str, Any]:
        return {**self.record.to_dict(), **_chain_fields(self.sequence, self.previous), "hash": self.hash}

    def body(self) -> bytes:
        """The stored form: canonical JSON with ``hash``."""
        return _dumps(self.to_dict()).encode()

    def entry(self) -> AuditEntry:
        return AuditEntry(self.sequence, self.body())


def _chain_fields(sequence: int, previous: str) -> dict[str, Any]:
    return {"format": FORMAT, "sequence": sequence, "previous": previous}


def canonical(record: AuditRecord, sequence: int, previous: str) -> bytes:
    """The bytes the hash is computed over: every field but ``hash``, keys sorted, compact."""
    return _dumps({**record.to_dict(), **_chain_fields(sequence, previous)}).encode()


def digest(record: AuditRecord, sequence: int, previous: str) -> str:
    return hashlib.sha256(canonical(record, sequence, previous)).hexdigest()


def seal(record: AuditRecord, sequence: int, previous: str) -> SealedRecord:
    """The record as number ``sequence`` of the chain, after the record hashed ``previous``."""
    if sequence < 1:
        raise ValueError(f"audit sequences start at 1, not {sequence}")
    return SealedRecord(sequence, previous, digest(record, sequence, previous), record)


def parse(body: bytes) -> SealedRecord:
    """A stored body back; AuditFormatError when it is not one (its hash is not checked here)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuditFormatError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AuditFormatError("not a JSON object")
    if data.get("format") != FORMAT:
        raise AuditFormatError(f"unknown record format {data.get('format')!r}")
    sequence, previous, hash_ = data.get("sequence"), data.get("previous"), data.get("hash")
    if not isinstance(sequence, int) or not isinstance(previous, str) or not isinstance(hash_, str):
        raise AuditFormatError("sequence, previous or hash is missing")
    return SealedRecord(sequence, previous, hash_, AuditRecord.from_dict(data))


def clip(text: str | None) -> str | None:
    """A reason or detail cut to MAX_TEXT characters."""
    return None if text is None else text[:MAX_TEXT]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not text")
    return value


def _optional(value: Any) -> str | None:
    return None if value is None else _text(value)
