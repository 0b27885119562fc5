"""What encryption at rest needs of the SQLite event log: the wrapped data keys, and rewriting rows.

``data_keys`` holds each tenant's data key per master key, wrapped (``orchestrator.crypto``); the
first insert of (tenant, key id) stands, so concurrent creators in several processes converge on
one key. Rewriting (re-encryption under a new key) replaces a row only while it still holds the
bytes that were read, so it never undoes another writer. Functions run on the log's thread.
"""

from __future__ import annotations

import sqlite3

from orchestrator.ports import DataKeyRecord

DATA_KEYS_DDL = (
    "CREATE TABLE IF NOT EXISTS data_keys (tenant TEXT NOT NULL, key_id TEXT NOT NULL,"
    " wrapped BLOB NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (tenant, key_id)) WITHOUT ROWID"
)
_INSERT = "INSERT OR IGNORE INTO data_keys (tenant, key_id, wrapped, created_at) VALUES (?, ?, ?, ?)"
_ONE = "SELECT tenant, key_id, wrapped, created_at FROM data_keys WHERE tenant = ? AND key_id = ?"
_OF_TENANT = "SELECT tenant, key_id, wrapped, created_at FROM data_keys WHERE tenant = ? ORDER BY created_at"
_ALL = "SELECT tenant, key_id, wrapped, created_at FROM data_keys ORDER BY tenant, created_at"
_DELETE = "DELETE FROM data_keys WHERE key_id = ?"
_EVENTS = "SELECT sequence, body FROM events WHERE execution_id = ? ORDER BY sequence"
_SNAPSHOTS = "SELECT sequence, body FROM snapshots WHERE execution_id = ? ORDER BY sequence"
_REPLACE = {
    "event": "UPDATE events SET body = ? WHERE execution_id = ? AND sequence = ? AND body = ?",
    "snapshot": "UPDATE snapshots SET body = ? WHERE execution_id = ? AND sequence = ? AND body = ?",
}
Row = tuple[str, int, bytes]  # (kind, sequence, stored bytes)


def _record(row: tuple[str, str, bytes, str]) -> DataKeyRecord:
    return DataKeyRecord(row[0], row[1], bytes(row[2]), row[3])


def insert_data_key(connection: sqlite3.Connection, record: DataKeyRecord) -> DataKeyRecord:
    values = (record.tenant, record.key_id, record.wrapped, record.created_at)
    connection.execute(_INSERT, values)  # autocommit: the first insert stands
    return _record(connection.execute(_ONE, (record.tenant, record.key_id)).fetchone())


def data_keys(connection: sqlite3.Connection, tenant: str | None) -> list[DataKeyRecord]:
    rows = connection.execute(_ALL) if tenant is None else connection.execute(_OF_TENANT, (tenant,))
    return [_record(row) for row in rows]


def delete_data_keys(connection: sqlite3.Connection, key_id: str) -> int:
    return connection.execute(_DELETE, (key_id,)).rowcount


def stored_rows(connection: sqlite3.Connection, execution_id: str) -> list[Row]:
    """The execution's stored events and snapshots, as bytes."""
    rows: list[Row] = [("event", n, bytes(body)) for n, body in connection.execute(_EVENTS, (execution_id,))]
    rows += [("snapshot", n, bytes(body)) for n, body in connection.execute(_SNAPSHOTS, (execution_id,))]
    return rows


def replace_rows(connection: sqlite3.Connection, execution_id: str, changes: list[tuple[Row, bytes]]) -> int:
    """Store the new bytes of each row still holding the old ones, in one transaction; how many."""
    done = 0
    connection.execute("BEGIN IMMEDIATE")
    try:
        for (kind, sequence, old), new in changes:
            done += connection.execute(_REPLACE[kind], (new, execution_id, sequence, old)).rowcount
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return done
