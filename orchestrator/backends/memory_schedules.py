"""Schedule states in memory (``memory://``): one process, gone when it stops."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.ports import ScheduleRecord


class MemorySchedules:
    """The ``ScheduleStates`` port over a dict; bodies are kept as JSON text, so what a caller
    changes after a save or load is never what is stored, as with a database."""

    def __init__(self) -> None:
        self._states: dict[str, tuple[int, str]] = {}

    @classmethod
    def from_url(cls, url: str) -> MemorySchedules:
        return cls()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def load(self, key: str) -> ScheduleRecord:
        version, body = self._states.get(key, (0, "{}"))
        return ScheduleRecord(key, version, json.loads(body))

    async def save(self, key: str, expected_version: int, body: dict[str, Any]) -> bool:
        version, _ = self._states.get(key, (0, "{}"))
        if version != expected_version:
            return False
        self._states[key] = (version + 1, json.dumps(body))
        return True
