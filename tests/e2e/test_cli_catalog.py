"""``orchestrator catalog ...`` against real server processes: publish, moderate, search,
review, install; and a second server installing from the first as a remote catalog, its
download verified against the pinned key (and refused with a wrong key)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.catalog.signing import Signer
from orchestrator.cli.main import main
from tests.e2e.serverproc import ServerProcess, cli_env, http_json

TEMPLATE: dict[str, Any] = {
    "metadata": {
        "id": "greeter", "version": "1.0.0", "title": "Greeter", "description": "Says hello",
        "categories": ["demo"], "tags": ["hello"], "author": "Ann", "licence": "MIT",
    },
    "workflow": {"name": "greeter", "steps": [{"name": "done", "type": "succeed"}]},
}  # fmt: skip


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("catalog")
    first = ServerProcess(cli_env(f"sqlite:///{tmp}/one.db"), [], tmp / "one.log")
    second = ServerProcess(cli_env(f"sqlite:///{tmp}/two.db"), [], tmp / "two.log")
    try:
        yield first.start(), second.start()
    finally:
        first.stop()
        second.stop()
        print(first.output(), second.output())  # shown when a test fails


def run(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*args, "--url", url])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_publish_moderate_search_review_install_and_a_remote_catalog(
    servers: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = servers
    monkeypatch.setenv("ORCHESTRATOR_CATALOGS_FILE", str(tmp_path / "catalogs.json"))
    (tmp_path / "greeter.json").write_text(json.dumps(TEMPLATE))
    code, out, _ = run(capsys, one, "catalog", "publish", str(tmp_path / "greeter.json"))
    assert code == 0 and "published greeter@1.0.0 (pending)" in out
    code, _, err = run(capsys, one, "catalog", "moderate", "greeter", "1.0.0", "reject")
    assert code != 0 and "reason_required" in err
    code, out, _ = run(capsys, one, "catalog", "moderate", "greeter", "1.0.0", "approve")
    assert code == 0 and "approved" in out
    code, out, _ = run(capsys, one, "catalog", "search", "hello", "--tag", "hello", "--json")
    assert code == 0 and [i["id"] for i in json.loads(out)["items"]] == ["greeter"]
    code, out, _ = run(capsys, one, "catalog", "review", "greeter", "--rating", "5", "--text", "great")
    assert code == 0 and "5/5" in out
    code, out, _ = run(capsys, one, "catalog", "show", "greeter")
    assert code == 0 and "great" in out and "5.0 (1)" in out
    code, out, _ = run(capsys, one, "catalog", "install", "greeter")
    assert code == 0 and "workflow greeter v1" in out

    # the second server installs from the first, verified against the pinned key
    code, out, _ = run(capsys, two, "catalog", "add", "one", one)
    assert code == 0 and "added catalog one" in out
    capsys.readouterr()
    assert main(["catalog", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["one"]["url"] == one
    code, out, _ = run(capsys, two, "catalog", "search", "--catalog", "one", "--json")
    assert code == 0 and [i["id"] for i in json.loads(out)["items"]] == ["greeter"]
    code, out, _ = run(capsys, two, "catalog", "install", "--catalog", "one", "greeter", "1.0.0")
    assert code == 0 and "workflow greeter v1" in out
    assert http_json("GET", two + "/api/v1/definitions/greeter")[0] == 200

    # a wrong pinned key: the download is refused
    wrong = Signer.generate().public_key
    code, _, _ = run(capsys, two, "catalog", "add", "bad", one, "--public-key", wrong)
    assert code == 0
    code, _, err = run(capsys, two, "catalog", "install", "--catalog", "bad", "greeter", "1.0.0")
    assert code != 0 and "signature does not verify" in err
    code, _, err = run(capsys, two, "catalog", "search", "--catalog", "missing")
    assert code != 0 and "no catalog named" in err
