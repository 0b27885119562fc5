"""Who this process is (its identity, fixed at start) and how busy it is now: its node record."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from orchestrator.ports import NodeRecord, Shards


@runtime_checkable
class ReportsLoad(Protocol):
    """A transport that can say how much work it holds and how far its consumers lag."""

    def in_flight(self) -> int: ...

    def consumer_lag(self) -> dict[str, int]: ...


def package_version() -> str:
    try:
        return metadata.version("orchestrator")
    except metadata.PackageNotFoundError:
        return "unknown"


def new_node_id(host: str, pid: int) -> str:
    """``host-pid-xxxx``: readable, and unique even when a pid is reused."""
    return f"{host}-{pid}-{secrets.token_hex(2)}"


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    node_id: str
    role: str
    version: str
    host: str
    pid: int
    started_at: float
    interval: float

    @classmethod
    def of_this_process(cls, role: str, now: float, interval: float, node_id: str | None = None) -> NodeIdentity:
        host, pid = socket.gethostname(), os.getpid()
        return cls(node_id or new_node_id(host, pid), role, package_version(), host, pid, now, interval)

    def record(self, transport: Shards, now: float, config: dict[str, Any]) -> NodeRecord:
        """The record to publish at ``now``."""
        owned = transport.owned_shards()
        load = transport if isinstance(transport, ReportsLoad) else None
        return NodeRecord(
            node_id=self.node_id,
            role=self.role,
            version=self.version,
            host=self.host,
            pid=self.pid,
            started_at=self.started_at,
            heartbeat_at=now,
            interval=self.interval,
            shards=None if owned is None else tuple(sorted(owned)),
            in_flight=load.in_flight() if load else 0,
            lag=load.consumer_lag() if load else {},
            config=config,
        )
