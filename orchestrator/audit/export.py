"""Audit records as JSON Lines (one stored body per line, verifiable as is) or CSV (one row each)."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from typing import Any, Literal, TextIO

from orchestrator.audit.record import SealedRecord

Format = Literal["jsonl", "csv"]
CSV_COLUMNS = (
    "sequence", "time", "actor_kind", "actor_subject", "credential_id", "action", "resource_type",
    "resource_id", "tenant", "outcome", "reason", "request_id", "source", "details", "previous", "hash",
)  # fmt: skip


def csv_row(sealed: SealedRecord) -> dict[str, Any]:
    r = sealed.record
    return {
        "sequence": sealed.sequence,
        "time": r.time,
        "actor_kind": r.actor.kind,
        "actor_subject": r.actor.subject,
        "credential_id": r.actor.credential_id or "",
        "action": r.action,
        "resource_type": r.resource.type,
        "resource_id": r.resource.id or "",
        "tenant": r.tenant,
        "outcome": r.outcome,
        "reason": r.reason or "",
        "request_id": r.request_id or "",
        "source": r.source or "",
        "details": json.dumps(dict(r.details), sort_keys=True, separators=(",", ":")) if r.details else "",
        "previous": sealed.previous,
        "hash": sealed.hash,
    }


async def write(records: AsyncIterator[SealedRecord], out: TextIO, format: Format) -> int:
    """Write every record; how many."""
    count = 0
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n") if format == "csv" else None
    if writer is not None:
        writer.writeheader()
    async for sealed in records:
        if writer is None:
            out.write(sealed.body().decode() + "\n")
        else:
            writer.writerow(csv_row(sealed))
        count += 1
    return count
