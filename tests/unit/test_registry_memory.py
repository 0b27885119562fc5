"""The in-memory registry passes the Registry contract."""

from __future__ import annotations

from pathlib import Path

from orchestrator.backends.memory import MemoryRegistry
from orchestrator.ports import Registry
from tests.contracts.registry import RegistryContract


class TestMemoryRegistry(RegistryContract):
    async def make_registry(self, tmp_path: Path) -> Registry:
        registry = MemoryRegistry.from_url("memory://")
        await registry.start()
        return registry
