"""The Cassandra audit chain: ``audit_records``, partitioned by (chain, bucket of BUCKET sequences).

An append is one lightweight transaction, ``INSERT ... IF NOT EXISTS`` on (chain, bucket,
sequence): of two processes sealing the same sequence one applies, the other gets AuditConflict
and seals again after the new head, the event log's optimistic append for one stream. A timeout
of that LWT is ambiguous: the row is read back at SERIAL consistency (completing any Paxos round
in flight) and judged by its body. The head is the last row of the newest bucket that holds
rows: buckets are walked up from the newest one this process saw, so finding it costs a read or
two. Nothing here updates or deletes a row.
"""

from __future__ import annotations

from orchestrator.backends.cassandra.schema import (
    RETRY_ATTEMPTS,
    CassandraBackend,
    CassandraSettings,
    ambiguous,
    backoff,
    describe,
)
from orchestrator.ports import AuditConflict, AuditEntry, BackendUnavailable

CHAIN = "main"
BUCKET = 1000  # sequences per partition

_CQL = {
    "last": "SELECT sequence, body FROM {ks}.audit_records WHERE chain = ? AND bucket = ?"
    " ORDER BY sequence DESC LIMIT 1",
    "read": "SELECT sequence, body FROM {ks}.audit_records WHERE chain = ? AND bucket = ?"
    " AND sequence > ? LIMIT ?",
    "one": "SELECT body FROM {ks}.audit_records WHERE chain = ? AND bucket = ? AND sequence = ?",
}
_CONDITIONAL = {
    "insert": "INSERT INTO {ks}.audit_records (chain, bucket, sequence, body) VALUES (?, ?, ?, ?)"
    " IF NOT EXISTS",
}


def bucket_of(sequence: int) -> int:
    return sequence // BUCKET


class CassandraAuditLog(CassandraBackend):
    """One chain of audit records in the event log's keyspace."""

    STATEMENTS = _CQL
    CONDITIONAL = _CONDITIONAL

    def __init__(self, settings: CassandraSettings) -> None:
        super().__init__(settings, "audit log")
        self._newest_bucket = 0  # the newest bucket seen holding rows (buckets fill in order)

    @classmethod
    def from_url(cls, url: str) -> CassandraAuditLog:
        return cls(CassandraSettings.from_url(url))

    async def append(self, entry: AuditEntry) -> None:
        if entry.sequence < 1:
            raise ValueError(f"audit sequences start at 1, not {entry.sequence}")
        body = entry.body.decode()
        values = (CHAIN, bucket_of(entry.sequence), entry.sequence, body)
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                result = await self._db.run(self._cql["insert"].bind(values), idempotent=False)
            except Exception as exc:
                if not ambiguous(exc):
                    raise
                stored = await self._stored(entry.sequence)
                if stored is not None:  # some attempt landed: ours, or another appender's
                    if stored == body:
                        break
                    raise AuditConflict(entry.sequence) from None
                if attempt == RETRY_ATTEMPTS:
                    raise BackendUnavailable(
                        f"{self.settings.url}: audit record {entry.sequence} not appended: {describe(exc)}"
                    ) from exc
                await backoff(attempt)
                continue
            if not result.current_rows[0][0]:
                raise AuditConflict(entry.sequence)
            break
        self._newest_bucket = max(self._newest_bucket, bucket_of(entry.sequence))

    async def last(self) -> AuditEntry | None:
        found: AuditEntry | None = None
        bucket = self._newest_bucket
        while True:
            rows = await self._db.rows(self._cql["last"], CHAIN, bucket)
            if not rows:
                break
            found = AuditEntry(rows[0][0], rows[0][1].encode())
            self._newest_bucket = bucket
            bucket += 1
        if found is None and bucket > 0:  # the remembered bucket is gone (a truncated table)
            self._newest_bucket = 0
            return await self.last()
        return found

    async def read(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        """Bucket by bucket from ``after`` up to the newest bucket holding rows."""
        entries: list[AuditEntry] = []
        bucket = bucket_of(after)
        head = await self.last()
        top = bucket_of(head.sequence) if head is not None else -1
        while len(entries) < limit and bucket <= top:
            rows = await self._db.rows(self._cql["read"], CHAIN, bucket, after, limit - len(entries))
            entries += [AuditEntry(sequence, body.encode()) for sequence, body in rows]
            bucket += 1
        return entries

    async def _stored(self, sequence: int) -> str | None:
        statement = self._cql["one"].bind((CHAIN, bucket_of(sequence), sequence))
        statement.consistency_level = self._db.serial
        rows = (await self._db.run(statement)).current_rows
        return rows[0][0] if rows else None
