"""Sealed secrets in memory (``memory://``), for one process and tests."""

from __future__ import annotations

import builtins

from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import SecretInfo


class MemorySecretRecords(Lifecycle):
    """``SecretRecords`` in a dict: (tenant, name) -> (sealed, info)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[bytes, SecretInfo]] = {}

    @classmethod
    def from_url(cls, url: str) -> MemorySecretRecords:
        return cls()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def put_sealed(self, tenant: str, name: str, sealed: bytes, key_id: str, now: str) -> SecretInfo:
        old = self._rows.get((tenant, name))
        created = old[1].created_at if old is not None else now
        info = SecretInfo(tenant, name, created, now, key_id)
        self._rows[(tenant, name)] = (bytes(sealed), info)
        return info

    async def get_sealed(self, tenant: str, name: str) -> bytes | None:
        row = self._rows.get((tenant, name))
        return None if row is None else row[0]

    async def delete(self, tenant: str, name: str) -> bool:
        return self._rows.pop((tenant, name), None) is not None

    async def tenants(self) -> builtins.list[str]:
        return sorted({tenant for tenant, _ in self._rows})

    async def list(self, tenant: str) -> builtins.list[SecretInfo]:
        return [info for (owner, _), (_, info) in sorted(self._rows.items()) if owner == tenant]
