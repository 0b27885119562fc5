"""Where an execution's time went, and on which node: its events with the node that committed
each, the delay since the event before, the hand-offs between nodes, and the delays summed by
the event they led to (the time before ``StepSucceeded`` is the step running, before
``StepScheduled`` the engine's turnaround or a timer). Pure: recorded events in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.history.timeline import moment_of
from schemas.envelope import Envelope

SLOWEST = 5  # rows listed as the biggest delays


@dataclass(frozen=True, slots=True)
class TraceRow:
    sequence: int
    time: str
    type: str
    step: str | None
    node: str | None
    offset_seconds: float  # since the first event
    delay_seconds: float  # since the event before

    def to_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "time": self.time,
            "type": self.type,
            "step": self.step,
            "node": self.node,
            "offset_seconds": round(self.offset_seconds, 6),
            "delay_seconds": round(self.delay_seconds, 6),
        }


@dataclass(frozen=True, slots=True)
class Trace:
    execution_id: str
    partition: int
    rows: list[TraceRow]
    handoffs: list[dict[str, Any]]  # {"sequence", "from", "to"}: the next event came from another node
    events_by_node: dict[str, int]
    seconds_by_type: dict[str, float]  # delays summed by the type of the event they ended at

    @property
    def total_seconds(self) -> float:
        return self.rows[-1].offset_seconds if self.rows else 0.0

    def slowest(self, count: int = SLOWEST) -> list[TraceRow]:
        return sorted(self.rows, key=lambda r: (-r.delay_seconds, r.sequence))[:count]

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "partition": self.partition,
            "total_seconds": round(self.total_seconds, 6),
            "events": [row.to_dict() for row in self.rows],
            "handoffs": self.handoffs,
            "events_by_node": self.events_by_node,
            "seconds_by_type": {k: round(v, 6) for k, v in self.seconds_by_type.items()},
            "slowest": [row.to_dict() for row in self.slowest()],
        }


def build_trace(execution_id: str, partition: int, events: Sequence[Envelope]) -> Trace:
    rows: list[TraceRow] = []
    handoffs: list[dict[str, Any]] = []
    by_node: dict[str, int] = {}
    by_type: dict[str, float] = {}
    origin = moment_of(events[0]) if events else 0.0
    previous_moment = origin
    previous_node: str | None = None
    for index, event in enumerate(events):
        moment = moment_of(event)
        delay = max(moment - previous_moment, 0.0) if index else 0.0
        data = event.data if isinstance(event.data, dict) else {}
        step = data.get("step") if isinstance(data.get("step"), str) else None
        rows.append(TraceRow(event.sequence, event.time, event.type, step, event.node, moment - origin, delay))
        node = event.node or "(unknown)"
        by_node[node] = by_node.get(node, 0) + 1
        if index:
            by_type[event.type] = by_type.get(event.type, 0.0) + delay
            if event.node != previous_node:
                handoffs.append({"sequence": event.sequence, "from": previous_node, "to": event.node})
        previous_moment, previous_node = moment, event.node
    ordered = dict(sorted(by_type.items(), key=lambda item: -item[1]))
    return Trace(execution_id, partition, rows, handoffs, by_node, ordered)
