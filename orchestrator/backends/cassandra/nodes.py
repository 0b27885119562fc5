"""Cassandra node directory: one row per process in one partition, expiring a day after its
last heartbeat (a node that vanished without a word ages out on its own)."""

from __future__ import annotations

import builtins
import json
from typing import ClassVar

from orchestrator.backends.cassandra.schema import CassandraBackend, CassandraSettings
from orchestrator.ports import NodeRecord

TTL_SECONDS = 86_400
_NODE_CQL = {
    "publish": f"INSERT INTO {{ks}}.nodes (scope, node_id, body) VALUES ('nodes', ?, ?) USING TTL {TTL_SECONDS}",
    "nodes": "SELECT body FROM {ks}.nodes WHERE scope = 'nodes'",
}


class CassandraNodeDirectory(CassandraBackend):
    """``NodeDirectory`` over the event log's keyspace."""

    STATEMENTS = _NODE_CQL
    CONDITIONAL: ClassVar[dict[str, str]] = {}

    def __init__(self, settings: CassandraSettings) -> None:
        super().__init__(settings, "node directory")

    @classmethod
    def from_url(cls, url: str) -> CassandraNodeDirectory:
        return cls(CassandraSettings.from_url(url))

    async def publish(self, record: NodeRecord) -> None:
        body = json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"))
        await self._db.run(self._cql["publish"].bind((record.node_id, body)))

    async def nodes(self) -> builtins.list[NodeRecord]:
        found: list[NodeRecord] = []
        async for rows in self._db.pages(self._cql["nodes"].bind(())):
            found += [NodeRecord.from_dict(json.loads(body)) for (body,) in rows]
        return sorted(found, key=lambda r: r.node_id)
