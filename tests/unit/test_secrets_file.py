"""ORCHESTRATOR_SECRETS_FILE: every value is the text as written, never a YAML-coerced number,
boolean or null; values that are not text and duplicate names are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.settings import Settings, SettingsError


def secrets(path: Path, text: str) -> dict[str, str]:
    path.write_text(text)
    return dict(Settings.from_env({"ORCHESTRATOR_SECRETS_FILE": str(path)}).secrets)


@pytest.mark.parametrize(
    "written",
    ["012345", "yes", "no", "on", "0x1F", "0o17", "1e3", "1.0e3", "1_000", "null", "~", "true", "2026-01-01", ".inf",
     "12:30:00"],
)  # fmt: skip
def test_yaml_values_are_the_text_as_written(tmp_path: Path, written: str) -> None:
    assert secrets(tmp_path / "s.yaml", f"TOKEN: {written}\n") == {"TOKEN": written}


def test_quotes_delimit_and_empty_values_are_empty_text(tmp_path: Path) -> None:
    found = secrets(tmp_path / "s.yaml", "A: 'it''s # not a comment'\nB: \"  padded \"\nC:\nD: plain # comment\n")
    assert found == {"A": "it's # not a comment", "B": "  padded ", "C": "", "D": "plain"}


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("PIN: 0123\n")
    settings = Settings.from_env({"ORCHESTRATOR_SECRETS_FILE": str(path), "ORCHESTRATOR_SECRET_PIN": "9"})
    assert settings.secret("pin") == "9"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A: [1, 2]\n", "the value of 'A' must be text, not list"),
        ("A: {b: c}\n", "the value of 'A' must be text, not dict"),
        ("A: 1\nA: 2\n", "duplicate key 'A' (first at line 1)"),
        ("- a\n", "must hold a mapping"),
    ],
)
def test_what_is_not_a_mapping_of_text_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError, match="secrets file") as raised:
        secrets(tmp_path / "s.yaml", text)
    assert message in str(raised.value)


def test_json_values_must_be_strings(tmp_path: Path) -> None:
    assert secrets(tmp_path / "s.json", '{"PIN": "012345", "FLAG": "yes"}') == {"PIN": "012345", "FLAG": "yes"}
    for text, kind in (('{"N": 1e3}', "float"), ('{"N": null}', "NoneType"), ('{"N": true}', "bool")):
        with pytest.raises(SettingsError, match=f"the value of 'N' must be text, not {kind}"):
            secrets(tmp_path / "s.json", text)
    with pytest.raises(SettingsError, match="duplicate key 'N'"):
        secrets(tmp_path / "s.json", '{"N": "a", "N": "b"}')
