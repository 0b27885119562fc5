"""Stored secrets under the encryption keyring, through the CLI and the runtime on SQLite:
``secrets set`` seals under the current master key, a step reads the value, ``keys rotate-data``
re-seals the secrets under the new key (old ones readable until then), and ``keys retire``
refuses a key while a secret still needs it."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.encryption_kit import key_text
from tests.secret_audit_kit import VALUE, run_with_secret


def use(monkeypatch: pytest.MonkeyPatch, db: Path, *keys: str) -> None:
    monkeypatch.setenv("ORCHESTRATOR_EVENT_LOG_URL", f"sqlite:///{db}")
    monkeypatch.setenv("ORCHESTRATOR_ENCRYPTION_KEYS", key_text(*keys))
    monkeypatch.setenv("ORCHESTRATOR_STATE_DIR", str(db.parent / "state"))
    monkeypatch.delenv("ORCHESTRATOR_SECRETS_KEY", raising=False)


def listed(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert main(["secrets", "list", "--tenant", "acme", "--json"]) == 0
    return {i["name"]: i["key_id"] for i in json.loads(capsys.readouterr().out)}


async def step_reads(db: Path, *keys: str) -> str:
    settings = Settings(auth=False, event_log_url=f"sqlite:///{db}", retention_interval=0, encryption_keys=key_text(*keys))
    async with Runtime(settings) as runtime:
        _, status = await run_with_secret(runtime)
    return status


def test_secrets_rotate_with_the_keyring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "log.db"
    use(monkeypatch, db, "k1")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(VALUE.encode())))
    assert main(["secrets", "set", "TOKEN", "--tenant", "acme"]) == 0  # no ORCHESTRATOR_SECRETS_KEY needed
    capsys.readouterr()
    assert listed(capsys) == {"TOKEN": "k1"}
    assert VALUE.encode() not in db.read_bytes()
    assert asyncio.run(step_reads(db, "k1")) == "succeeded"

    use(monkeypatch, db, "k1", "k2")  # k2 current; k1 still in the keyring
    assert asyncio.run(step_reads(db, "k1", "k2")) == "succeeded"
    assert main(["keys", "retire", "k1"]) == 1  # a secret (and events) still need it
    assert "secret" in capsys.readouterr().err
    assert main(["keys", "rotate-data", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["secrets"] == {"current_key": "k2", "resealed": 1, "current": 0}
    assert listed(capsys) == {"TOKEN": "k2"}
    assert main(["keys", "retire", "k1"]) == 0
    capsys.readouterr()
    use(monkeypatch, db, "k2")
    assert asyncio.run(step_reads(db, "k2")) == "succeeded"
