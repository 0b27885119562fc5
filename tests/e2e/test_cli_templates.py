"""``orchestrator templates ...`` against a real server process: the README's three commands
(test, install, start --wait: the relay reaches a local receiver), ``from-workflow`` writing a
template that renders back, ``upgrade`` showing the diff and registering with ``--yes``, and the
catalog's ``publish``, ``review`` and ``rate`` under ``templates``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli.main import main
from tests.e2e.serverproc import ServerProcess, cli_env, http_json
from tests.e2e.test_cli_catalog import TEMPLATE


class Receiver(BaseHTTPRequestHandler):
    bodies: list[Any] = []

    def do_POST(self) -> None:  # the http.server name
        length = int(self.headers.get("Content-Length", "0"))
        Receiver.bodies.append(json.loads(self.rfile.read(length) or b"null"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/in"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("templates")
    process = ServerProcess(cli_env(f"sqlite:///{tmp}/t.db", {"ORCHESTRATOR_HTTP_ALLOW": "127.0.0.1"}), [], tmp / "t.log")
    try:
        yield process.start()
    finally:
        process.stop()
        print(process.output())  # shown when a test fails


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_the_readme_commands_install_and_run_a_template(
    server: str, receiver: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "templates", "test", "webhook-relay")
    assert code == 0, out
    code, out, err = run(capsys, "templates", "install", "webhook-relay", "--param", f"target_url={receiver}", "--url", server)
    assert code == 0, out + err
    status, definition = http_json("GET", server + "/api/v1/definitions/webhook_relay")
    assert status == 200 and definition["provenance"]["template"] == "webhook-relay"
    assert definition["provenance"]["parameters"]["target_url"] == receiver
    code, out, err = run(capsys, "start", "webhook_relay", "--input", '{"event": "ping"}', "--wait", "--url", server)
    assert code == 0, out + err
    assert "succeeded" in out and {"event": "ping"} in Receiver.bodies


def test_from_workflow_writes_a_template_that_renders_back(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, body = http_json("POST", server + "/api/v1/definitions", {
        "name": "pinger", "steps": [{"name": "ping", "type": "task", "connector": "http",
                                     "config": {"url": "https://example.com/a", "method": "GET"}}],
    })  # fmt: skip
    assert status in (200, 201), body
    target = tmp_path / "pinger.yaml"
    code, out, err = run(capsys, "templates", "from-workflow", "pinger", "--param", "steps.ping.config.url=endpoint",
                         "-o", str(target), "--url", server)  # fmt: skip
    assert code == 0, out + err
    template = yaml.safe_load(target.read_text())
    assert "endpoint" in template["parameters"]["properties"]
    code, out, err = run(capsys, "templates", "render", str(target), "--param", "endpoint=https://example.org/b")
    assert code == 0, out + err
    assert yaml.safe_load(out)["steps"][0]["config"]["url"] == "https://example.org/b"


def test_upgrade_shows_the_diff_and_registers_with_yes(server: str, receiver: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "templates", "install", "webhook-relay", "--name", "relay_up", "--param",
                         f"target_url={receiver}", "--param", "hook=up", "--url", server)  # fmt: skip
    assert code == 0, out + err
    status, installed = http_json("GET", server + "/api/v1/definitions/relay_up")
    assert status == 200
    drifted = {k: v for k, v in installed.items() if k not in ("version", "registered_at")}
    drifted["description"] = "edited by hand"
    status, body = http_json("POST", server + "/api/v1/definitions", drifted)
    assert status in (200, 201), body
    code, out, err = run(capsys, "templates", "upgrade", "relay_up", "--to", "^1.0.0", "--url", server)
    assert code == 0, out + err
    assert "description" in out and "compatibility:" in out and "not registered" in err
    code, out, err = run(capsys, "templates", "upgrade", "relay_up", "--to", "^1.0.0", "--yes", "--url", server)
    assert code == 0, out + err
    assert "registered relay_up version 3" in out
    assert http_json("GET", server + "/api/v1/definitions/relay_up")[1]["description"] == installed["description"]


def test_publish_review_and_rate_under_templates(server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = {**TEMPLATE, "metadata": {**TEMPLATE["metadata"], "id": "greeter-t"}}
    (tmp_path / "greeter.json").write_text(json.dumps(document))
    code, out, err = run(capsys, "templates", "publish", str(tmp_path / "greeter.json"), "--url", server)
    assert code == 0 and "published greeter-t@1.0.0 (pending)" in out, out + err
    code, out, err = run(capsys, "catalog", "moderate", "greeter-t", "1.0.0", "approve", "--url", server)
    assert code == 0, out + err
    code, out, err = run(capsys, "templates", "review", "greeter-t", "--rating", "4", "--text", "nice", "--url", server)
    assert code == 0 and "4/5" in out, out + err
    code, out, err = run(capsys, "templates", "rate", "greeter-t", "2", "--url", server)
    assert code == 0 and "2/5" in out, out + err  # the same principal's one review, edited
    code, out, _ = run(capsys, "catalog", "show", "greeter-t", "--url", server)
    assert "2.0 (1)" in out
    code, _, err = run(capsys, "templates", "rate", "greeter-t", "9", "--url", server)
    assert code != 0 and "invalid choice" in err
