"""Event log schema 2 -> 3: the executions index by who started each one and by correlation key.

``started_by`` is the actor of the start (``trigger:orders/paid``, ``webhook:github``,
``key:deployer``); it is filled in for executions recorded before this schema from their first
event, whose envelope names its actor in the clear even when the data is encrypted.
``correlation_key`` is the key of an execution's latest ``wait_for_event``; it is kept from
now on (older executions show none until they wait again).
"""

from __future__ import annotations

import sqlite3

_SCHEMA_3 = (
    "ALTER TABLE executions ADD COLUMN started_by TEXT",
    "ALTER TABLE executions ADD COLUMN correlation_key TEXT",
    "UPDATE executions SET started_by = (SELECT CASE WHEN json_valid(CAST(body AS TEXT))"
    " THEN json_extract(CAST(body AS TEXT), '$.actor') END FROM events"
    " WHERE events.execution_id = executions.execution_id AND events.sequence = 1)",
    "CREATE INDEX executions_by_starter ON executions (started_by, started_at, execution_id)",
    "CREATE INDEX executions_by_correlation ON executions (correlation_key, started_at, execution_id)",
)


def add_execution_tags(connection: sqlite3.Connection) -> None:
    """Add and index the two columns (inside the transaction that opens the file)."""
    for statement in _SCHEMA_3:
        connection.execute(statement)
