"""The worker's secret resolutions are audited (embedded): exactly one ``secrets:resolve``
record per name per attempt, by ``execution:<id>``, in the execution's tenant, never the value;
a missing secret is recorded as ``failed``."""

from __future__ import annotations

from pathlib import Path

from orchestrator.runtime import Runtime
from orchestrator.secrets.sealing import new_key
from orchestrator.settings import Settings
from tests.secret_audit_kit import VALUE, resolve_records, run_with_secret


def settings(tmp_path: Path) -> Settings:
    return Settings(
        auth=False, event_log_url=f"sqlite:///{tmp_path}/log.db", retention_interval=0, secrets_key=new_key()
    )


async def test_one_record_per_resolution_with_the_execution_as_actor(tmp_path: Path) -> None:
    async with Runtime(settings(tmp_path)) as runtime:
        await runtime.secrets.put("acme", "TOKEN", VALUE)
        execution_id, status = await run_with_secret(runtime)
        assert status == "succeeded"
        records = await resolve_records(runtime)
    assert len(records) == 1, records
    (record,) = records
    assert record["actor"] == {"subject": execution_id, "kind": "execution", "credential_id": None}
    assert record["resource"] == {"type": "secrets", "id": "TOKEN"}
    assert record["tenant"] == "acme" and record["outcome"] == "ok"
    assert record["details"]["step"] == "call" and record["details"]["attempt"] == 1


async def test_a_missing_secret_is_recorded_as_failed(tmp_path: Path) -> None:
    async with Runtime(settings(tmp_path)) as runtime:
        execution_id, status = await run_with_secret(runtime, name="ABSENT")
        assert status == "failed"
        records = await resolve_records(runtime)
    assert [(r["actor"]["subject"], r["outcome"], r["reason"]) for r in records] == [
        (execution_id, "failed", "secret.missing")
    ]
