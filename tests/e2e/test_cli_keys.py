"""``orchestrator keys create | list | revoke | rotate`` straight on the store: the key is printed
once, listings never show secrets or hashes, bad roles and durations are usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.auth.keys import KEY_PATTERN
from orchestrator.cli.main import main


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/keys.db"
    monkeypatch.setenv("ORCHESTRATOR_EVENT_LOG_URL", url)
    monkeypatch.delenv("ORCHESTRATOR_KEY_PEPPER", raising=False)
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_create_prints_the_key_once_and_list_shows_no_secret(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "keys", "create", "--role", "admin", "--name", "first admin", "--expires-in", "30d")
    assert code == 0 and KEY_PATTERN.fullmatch(out.strip()), err
    key = out.strip()
    assert "only time" in err
    code, out, _ = run(capsys, "keys", "list", "--json")
    [listed] = json.loads(out)
    assert listed["name"] == "first admin" and listed["status"] == "active" and listed["roles"] == {"default": ["admin"]}
    assert "digest" not in listed and key[5:17] == listed["key_id"]
    code, out, _ = run(capsys, "keys", "list")
    assert key not in out and listed["key_id"] in out


def test_revoke_and_rotate(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "keys", "create", "--role", "operator", "--tenant", "acme", "--json")
    first = json.loads(out)
    code, out, err = run(capsys, "keys", "rotate", first["key_id"], "--overlap", "1h", "--json")
    rotated = json.loads(out)
    assert code == 0 and rotated["rotated_from"] == first["key_id"] and KEY_PATTERN.fullmatch(rotated["key"])
    assert rotated["previous"]["replaced_by"] == rotated["key_id"]
    code, out, _ = run(capsys, "keys", "revoke", rotated["key_id"])
    assert code == 0 and "revoked" in out
    _, out, _ = run(capsys, "keys", "list", "--tenant", "acme", "--json")
    assert [k["status"] for k in json.loads(out)] == ["active", "revoked"]
    code, _, err = run(capsys, "keys", "rotate", rotated["key_id"])
    assert code == 1 and "revoked" in err
    code, _, err = run(capsys, "keys", "revoke", "AAAAAAAAAAAA")
    assert code == 1 and "no API key" in err


def test_unknown_roles_and_bad_durations_are_usage_errors(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "keys", "create", "--role", "superuser")
    assert code == 2 and "unknown role 'superuser'" in err
    code, _, err = run(capsys, "keys", "create", "--role", "viewer", "--expires-in", "soon")
    assert code == 2
    code, _, _ = run(capsys, "keys", "create")
    assert code == 2


def test_scan_reports_auth_off_and_keys_near_expiry(
    db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, "keys", "create", "--role", "viewer", "--name", "soon", "--expires-in", "1d")
    _, out, _ = run(capsys, "keys", "create", "--role", "viewer", "--name", "gone", "--expires-in", "1d", "--json")
    run(capsys, "keys", "revoke", json.loads(out)["key_id"])
    _, out, _ = run(capsys, "scan", "--registry-definitions", "--json", "--fail-on", "info")
    rules = [f["rule"] for f in json.loads(out)["findings"]]
    assert rules.count("key-near-expiry") == 1 and "auth-off" not in rules  # the revoked one is not
    monkeypatch.setenv("ORCHESTRATOR_AUTH", "off")
    _, out, _ = run(capsys, "scan", "--json")
    assert "auth-off" in [f["rule"] for f in json.loads(out)["findings"]]
