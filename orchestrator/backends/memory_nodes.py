"""In-memory node directory (``memory://``): the heartbeats of the processes sharing this one."""

from __future__ import annotations

import builtins

from orchestrator.ports import NodeRecord


class MemoryNodeDirectory:
    """Node records by id, in this process (a single process sees only itself)."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeRecord] = {}

    @classmethod
    def from_url(cls, url: str) -> MemoryNodeDirectory:
        return cls()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def publish(self, record: NodeRecord) -> None:
        self._nodes[record.node_id] = record

    async def nodes(self) -> builtins.list[NodeRecord]:
        return [self._nodes[node_id] for node_id in sorted(self._nodes)]
