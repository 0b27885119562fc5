"""The encrypted secret store contract: each backend's test says how to build its ``SecretRecords``;
the suite runs them under ``SealedSecrets`` and also reads what the backend holds, raw."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.ports import SecretRecords, SecretsUnavailable
from orchestrator.secrets.sealed import SealedSecrets
from orchestrator.secrets.sealing import AesGcmSealer, NoKey, new_key
from orchestrator.secrets.stores import InvalidSecretName

VALUE = "hunter2-very-secret-value"


class SecretStoreContract(ABC):
    @abstractmethod
    async def make_records(self, tmp_path: Path) -> SecretRecords:
        """Started records; durable backends open the same data when called again."""

    @pytest.fixture
    def key(self) -> str:
        return new_key()

    @pytest.fixture
    async def store(self, tmp_path: Path, key: str) -> AsyncIterator[SealedSecrets]:
        store = SealedSecrets(await self.make_records(tmp_path), AesGcmSealer.from_text(key))
        try:
            yield store
        finally:
            await store.stop()

    async def test_a_value_round_trips_per_tenant(self, store: SealedSecrets) -> None:
        info = await store.put("acme", "API_TOKEN", VALUE)
        assert (info.tenant, info.name, info.key_id) == ("acme", "API_TOKEN", store.sealer.key_id)
        assert await store.get("acme", "API_TOKEN") == VALUE
        assert await store.get("default", "API_TOKEN") is None  # another tenant sees nothing
        assert await store.get("acme", "OTHER") is None

    async def test_the_backend_holds_ciphertext_only(self, store: SealedSecrets) -> None:
        await store.put("acme", "API_TOKEN", VALUE)
        sealed = await store.records.get_sealed("acme", "API_TOKEN")
        assert sealed is not None and VALUE.encode() not in sealed

    async def test_replacing_keeps_created_at_and_listing_shows_no_values(self, store: SealedSecrets) -> None:
        first = await store.put("acme", "B", "one")
        await store.put("acme", "A", "x")
        await store.put("other", "C", "y")
        second = await store.put("acme", "B", "two")
        assert second.created_at == first.created_at and second.updated_at >= first.updated_at
        assert await store.get("acme", "B") == "two"
        listed = await store.list("acme")
        assert [info.name for info in listed] == ["A", "B"]
        assert all("two" not in str(info.to_dict().values()) for info in listed)

    async def test_delete(self, store: SealedSecrets) -> None:
        await store.put("acme", "A", VALUE)
        assert await store.delete("acme", "A") is True
        assert await store.delete("acme", "A") is False
        assert await store.get("acme", "A") is None and await store.list("acme") == []

    async def test_a_value_moved_to_another_row_does_not_open(self, store: SealedSecrets) -> None:
        await store.put("acme", "A", VALUE)
        sealed = await store.records.get_sealed("acme", "A")
        assert sealed is not None
        await store.records.put_sealed("evil", "A", sealed, store.sealer.key_id, "2026-01-01T00:00:00Z")
        with pytest.raises(SecretsUnavailable, match="authenticate"):
            await store.get("evil", "A")

    async def test_another_key_cannot_read_and_says_so(self, tmp_path: Path, store: SealedSecrets) -> None:
        await store.put("acme", "A", VALUE)
        other = SealedSecrets(store.records, AesGcmSealer.from_text(new_key()))
        with pytest.raises(SecretsUnavailable, match="sealed with key"):
            await other.get("acme", "A")

    async def test_without_a_key_nothing_is_stored(self, store: SealedSecrets) -> None:
        keyless = SealedSecrets(store.records, NoKey())
        with pytest.raises(SecretsUnavailable, match="ORCHESTRATOR_SECRETS_KEY"):
            await keyless.put("acme", "A", VALUE)
        assert await store.records.list("acme") == []

    async def test_invalid_names_are_refused(self, store: SealedSecrets) -> None:
        for name in ("", "1A", "a-b", "../x", "a" * 129):
            with pytest.raises(InvalidSecretName):
                await store.put("acme", name, VALUE)

    async def test_data_survives_stop_and_reopen(self, tmp_path: Path, key: str, store: SealedSecrets) -> None:
        await store.put("acme", "A", VALUE)
        if not self.durable:
            return
        await store.stop()
        reopened = SealedSecrets(await self.make_records(tmp_path), AesGcmSealer.from_text(key))
        try:
            assert await reopened.get("acme", "A") == VALUE
        finally:
            await reopened.stop()
        await store.start()  # the fixture stops it again

    durable = True
