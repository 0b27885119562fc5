"""``orchestrator scan``: exit codes for CI, JSON output, definition files and the registry."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.main import main
from orchestrator.cli.scan import deployment_facts
from orchestrator.scan.deployment import scan_deployment
from orchestrator.settings import Settings
from orchestrator.stores import open_stores
from schemas.definition import WorkflowDefinition
from tests.encryption_kit import key_text

RISKY: dict[str, Any] = {
    "name": "risky",
    "triggers": [{"type": "webhook", "name": "open"}],
    "steps": [
        {"name": "call", "type": "task", "connector": "http", "config": {"url": "http://127.0.0.1:9/x"}},
    ],
}
MEDIUM_ONLY: dict[str, Any] = {
    "name": "patient",
    "steps": [{"name": "t", "type": "task", "connector": "noop", "retry": {"max_attempts": 500}}],
}


def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp: Path, *args: str) -> tuple[int, str]:
    for name in ("ORCHESTRATOR_SECRETS_FILE", "ORCHESTRATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ORCHESTRATOR_EVENT_LOG_URL", f"sqlite:///{tmp}/scan.db")
    if "ORCHESTRATOR_ENCRYPTION_KEYS" not in os.environ:  # encryption on, unless a test turns it off
        monkeypatch.setenv("ORCHESTRATOR_ENCRYPTION_KEYS", key_text("k1"))
    capsys.readouterr()
    code = main(["scan", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out + err


def test_high_findings_fail_and_are_listed_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "risky.json").write_text(json.dumps(RISKY))
    (tmp_path / "defs" / "input.json").write_text(json.dumps({"not": "a definition"}))  # skipped
    code, out = run(capsys, monkeypatch, tmp_path, str(tmp_path / "defs"), "--json")
    report = json.loads(out)
    assert code == 1 and report["failed"] is True
    assert {f["rule"] for f in report["findings"]} == {"unsigned-webhook", "private-address"}
    assert report["counts"]["high"] == 2


def test_the_threshold_decides_the_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(MEDIUM_ONLY))
    assert run(capsys, monkeypatch, tmp_path, str(path))[0] == 0  # medium < high
    code, out = run(capsys, monkeypatch, tmp_path, str(path), "--fail-on", "medium")
    assert code == 1 and "huge-retries" in out
    assert run(capsys, monkeypatch, tmp_path, str(path), "--fail-on", "critical")[0] == 2


def test_weak_deployment_secrets_are_found_without_showing_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_SECRET_GITHUB", "changeme")
    code, out = run(capsys, monkeypatch, tmp_path, "--json")
    assert code == 1
    [finding] = json.loads(out)["findings"]
    assert finding["rule"] == "weak-secret" and "changeme" not in out


def test_tls_off_on_a_public_address_is_found_and_tls_on_clears_it() -> None:
    def rules(settings: Settings) -> set[str]:
        return {finding.rule for finding in scan_deployment(deployment_facts(settings))}

    assert "tls-off-public" not in rules(Settings())  # loopback
    assert "tls-off-public" in rules(Settings(host="0.0.0.0"))
    assert "tls-off-public" not in rules(Settings(host="0.0.0.0", tls_cert="/c.pem", tls_key="/k.pem"))


def test_registered_definitions_are_scanned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def register() -> None:
        async with open_stores(Settings(event_log_url=f"sqlite:///{tmp_path}/scan.db")) as (_, registry):
            await registry.register(WorkflowDefinition.model_validate(RISKY))

    asyncio.run(register())
    code, out = run(capsys, monkeypatch, tmp_path, "--registry-definitions", "--no-deployment", "--json")
    rules = {f["rule"] for f in json.loads(out)["findings"]}
    assert code == 1 and "unsigned-webhook" in rules


def test_nothing_to_scan_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = run(capsys, monkeypatch, tmp_path, "--no-deployment")
    assert code == 2 and "nothing to scan" in out
    code, out = run(capsys, monkeypatch, tmp_path, str(tmp_path / "missing.yaml"))
    assert code == 2 and "no such file" in out


def test_encryption_at_rest_off_is_a_medium_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_ENCRYPTION_KEYS", "")  # set and empty: off
    code, out = run(capsys, monkeypatch, tmp_path, "--json")
    assert code == 0
    [finding] = json.loads(out)["findings"]
    assert finding["rule"] == "encryption-off" and finding["severity"] == "medium"
