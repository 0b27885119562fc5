"""The cluster as an operator sees it, from the node records: who is alive, late, dead or gone,
which node owns which commands partition, and where consumers lag. Pure: records and a time in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.ports import NodeRecord

NodeStatus = Literal["alive", "late", "dead", "left"]
LATE_AFTER = 2.0  # missed heartbeats before a node is late
DEAD_AFTER = 3.0  # ... and dead


def node_status(record: NodeRecord, now: float) -> NodeStatus:
    """``left`` when it said goodbye; ``dead`` past three missed heartbeats, ``late`` past two."""
    if record.stopped:
        return "left"
    silent = now - record.heartbeat_at
    if silent > DEAD_AFTER * record.interval:
        return "dead"
    if silent > LATE_AFTER * record.interval:
        return "late"
    return "alive"


@dataclass(frozen=True, slots=True)
class ClusterView:
    nodes: list[tuple[NodeRecord, NodeStatus]]
    owners: dict[int, list[str]]  # commands partition -> live nodes claiming it
    now: float

    @property
    def contested(self) -> dict[int, list[str]]:
        """Partitions two live nodes claim at once (a rebalance in progress, or a stuck node)."""
        return {shard: ids for shard, ids in self.owners.items() if len(ids) > 1}

    def to_dict(self, *, with_config: bool = True) -> dict[str, Any]:
        counts: dict[str, int] = {"alive": 0, "late": 0, "dead": 0, "left": 0}
        nodes = []
        for record, status in self.nodes:
            counts[status] += 1
            shown = record.to_dict()
            if not with_config:
                shown.pop("config")
            shown["status"] = status
            shown["seconds_since_heartbeat"] = round(max(self.now - record.heartbeat_at, 0.0), 3)
            nodes.append(shown)
        return {
            "nodes": nodes,
            "counts": counts,
            "partitions": {str(shard): ids for shard, ids in sorted(self.owners.items())},
            "contested": {str(shard): ids for shard, ids in sorted(self.contested.items())},
            "lag": total_lag(r for r, s in self.nodes if s in ("alive", "late")),
        }


def cluster_view(records: Sequence[NodeRecord], now: float) -> ClusterView:
    """The view at ``now``; partitions are attributed only to nodes that are alive or late."""
    nodes = [(record, node_status(record, now)) for record in records]
    owners: dict[int, list[str]] = {}
    for record, status in nodes:
        if status in ("alive", "late") and record.shards:
            for shard in record.shards:
                owners.setdefault(shard, []).append(record.node_id)
    return ClusterView(nodes, owners, now)


def total_lag(records: Any) -> dict[str, int]:
    """Consumer lag by ``topic/partition``, as reported by the nodes consuming them now."""
    lag: dict[str, int] = {}
    for record in records:
        for partition, value in record.lag.items():
            lag[partition] = max(lag.get(partition, 0), value)
    return dict(sorted(lag.items()))
