"""Trigger sources: the consumers behind queue and topic triggers, built from a definition's trigger.

A source consumes from its broker, turns each message into an ``InboundMessage``, calls
``Router.accept`` and acknowledges only after it returned (see ``triggers.inbound``). The trigger
manager builds one source per enabled trigger of each workflow's latest version, through the
factory registered for the trigger's ``type``, and starts and stops it with the service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.runtime import Runtime
from orchestrator.settings import Settings


@dataclass(slots=True)
class SourceStats:
    """Counters a source keeps for ``GET /api/v1/triggers`` and the benchmark."""

    received: int = 0
    started: int = 0
    duplicates: int = 0
    delivered: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    last_error: str | None = None

    def count(self, outcome: str) -> None:
        """Count one ``Outcome.kind`` (``dead`` counts as dead-lettered)."""
        if outcome == "started":
            self.started += 1
        elif outcome == "duplicate":
            self.duplicates += 1
        elif outcome == "delivered":
            self.delivered += 1
        elif outcome == "filtered":
            self.filtered += 1
        else:
            self.dead_lettered += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "started": self.started,
            "duplicates": self.duplicates,
            "delivered": self.delivered,
            "filtered": self.filtered,
            "dead_lettered": self.dead_lettered,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """Everything a factory needs: which workflow's trigger, and the process's runtime/settings."""

    workflow: str
    version: int
    trigger: Any  # KafkaTrigger | AmqpTrigger | WindowTrigger
    runtime: Runtime
    settings: Settings
    extra: dict[str, Any] = field(default_factory=dict)


class TriggerSource(Protocol):
    stats: SourceStats

    async def start(self) -> None:
        """Connect and begin consuming (in a task it owns); returns once it is subscribed."""

    async def stop(self) -> None:
        """Stop consuming, finish or abandon (never acknowledge) the message in hand, close."""


SourceFactory = Callable[[SourceSpec], TriggerSource]
