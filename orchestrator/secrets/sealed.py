"""The encrypted secret store: values sealed (``sealing``) into a backend's ``SecretRecords``."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable

from orchestrator.core.timefmt import rfc3339
from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import SecretInfo, SecretRecords
from orchestrator.secrets.sealing import Sealer
from orchestrator.secrets.stores import check_name


class SealedSecrets(Lifecycle):
    """A ``SecretStore`` whose records hold only ciphertext bound to (tenant, name)."""

    def __init__(self, records: SecretRecords, sealer: Sealer, clock: Callable[[], float] = time.time) -> None:
        self.records = records
        self.sealer = sealer
        self._clock = clock

    async def start(self) -> None:
        await self.records.start()
        await self.sealer.start()

    async def stop(self) -> None:
        try:
            await self.sealer.stop()
        finally:
            await self.records.stop()

    async def get(self, tenant: str, name: str) -> str | None:
        sealed = await self.records.get_sealed(tenant, name)
        if sealed is None:
            return None
        return (await self.sealer.open(tenant, name, sealed)).decode()

    async def put(self, tenant: str, name: str, value: str) -> SecretInfo:
        """SecretsUnavailable without a key: nothing is ever stored in plaintext."""
        check_name(name)
        sealed = await self.sealer.seal(tenant, name, value.encode())
        return await self.records.put_sealed(tenant, name, sealed, self.sealer.key_id, rfc3339(self._clock()))

    async def delete(self, tenant: str, name: str) -> bool:
        return await self.records.delete(tenant, name)

    async def list(self, tenant: str) -> builtins.list[SecretInfo]:
        return await self.records.list(tenant)
