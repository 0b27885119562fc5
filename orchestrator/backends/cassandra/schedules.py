"""Schedule states in Cassandra (table ``schedule_states``, migration 12), written with lightweight
transactions: ``INSERT ... IF NOT EXISTS`` for the first version, ``UPDATE ... IF version = ?``
after it. Paxos decides between two workers saving the same version: exactly one applies.

A save whose outcome is unknown (a timeout of the transaction) is settled by reading the row at
serial consistency: saved when it holds our body at the version we wrote, not saved when another
version or body is there, tried again while it still holds the version we expected.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from orchestrator.backends.cassandra.schema import (
    RETRY_ATTEMPTS,
    CassandraBackend,
    CassandraSettings,
    ambiguous,
    backoff,
    describe,
)
from orchestrator.ports import BackendUnavailable, ScheduleRecord

_CQL = {"load": "SELECT version, body FROM {ks}.schedule_states WHERE key = ?"}
_CONDITIONAL = {
    "insert": "INSERT INTO {ks}.schedule_states (key, version, body) VALUES (?, 1, ?) IF NOT EXISTS",
    "update": "UPDATE {ks}.schedule_states SET version = ?, body = ? WHERE key = ? IF version = ?",
}


class CassandraSchedules(CassandraBackend):
    """The ``ScheduleStates`` port over one keyspace."""

    STATEMENTS = _CQL
    CONDITIONAL: ClassVar[dict[str, str]] = _CONDITIONAL

    def __init__(self, settings: CassandraSettings) -> None:
        super().__init__(settings, "schedules")

    @classmethod
    def from_url(cls, url: str) -> CassandraSchedules:
        return cls(CassandraSettings.from_url(url))

    async def load(self, key: str) -> ScheduleRecord:
        return await self._load(key, serial=False)

    async def save(self, key: str, expected_version: int, body: dict[str, Any]) -> bool:
        text = json.dumps(body, sort_keys=True)
        if expected_version == 0:
            statement = self._cql["insert"].bind((key, text))
        else:
            statement = self._cql["update"].bind((expected_version + 1, text, key, expected_version))
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                result = await self._db.run(statement, idempotent=False)
                return bool(result.current_rows[0][0])
            except Exception as exc:
                if not ambiguous(exc):
                    raise
                if attempt == RETRY_ATTEMPTS:
                    raise BackendUnavailable(f"{self.settings.url}: saving schedule {key}: {describe(exc)}") from exc
                await backoff(attempt)
            stored = await self._load(key, serial=True)
            if stored.version == expected_version + 1:
                return json.dumps(stored.body, sort_keys=True) == text
            if stored.version != expected_version:
                return False
        raise AssertionError("unreachable")

    async def _load(self, key: str, *, serial: bool) -> ScheduleRecord:
        statement = self._cql["load"].bind((key,))
        if serial:
            statement.consistency_level = self._db.serial
        rows = (await self._db.run(statement)).current_rows
        if not rows:
            return ScheduleRecord(key, 0, {})
        version, body = rows[0]
        return ScheduleRecord(key, int(version), json.loads(body))
