"""Shared harness of the console's browser tests: a real server with authentication on, keys
per role made with the CLI, and headless Chromium (the system's, /usr/bin/chromium) driven by
Playwright. Every page's browser console is recorded: a test fails on any error or warning it
logged, and on a page error. Screenshots go to a temporary folder (or ORCHESTRATOR_CONSOLE_SHOTS);
with ORCHESTRATOR_CONSOLE_DOCS=1 the ones per page also replace those of docs/console/."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.e2e.serverproc import REPO, ServerProcess, cli_env, http_json

CHROMIUM = "/usr/bin/chromium"
AXE = REPO / "console" / "node_modules" / "axe-core" / "axe.min.js"  # installed by npm ci (scripts/test)
SERIOUS = ("serious", "critical")
DOCS_SHOTS = REPO / "docs" / "console"
DEFINITION = """\
name: console_flow
description: A task, then a wait for an approval, then done.
steps:
  - {name: prepare, type: task, connector: noop, next: approval}
  - {name: approval, type: wait_for_event, event: approve, correlation_key: input.id, timeout_seconds: 600, next: done}
  - {name: done, type: succeed}
"""


@dataclass
class Console:
    url: str
    keys: dict[str, str]
    shots: Path
    browser: Browser
    problems: list[str] = field(default_factory=list)

    def page(self) -> Page:
        page = self.browser.new_context(viewport={"width": 1280, "height": 860}).new_page()

        def logged(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                self.problems.append(f"{message.type}: {message.text} ({page.url})")

        page.on("console", logged)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc} ({page.url})"))
        return page

    def sign_in(self, role: str, path: str = "/console/") -> Page:
        page = self.page()
        page.goto(self.url + path)
        page.get_by_label("API key").fill(self.keys[role])
        page.get_by_role("button", name="Sign in").click()
        page.get_by_test_id("who").wait_for()
        return page

    def api(
        self, method: str, path: str, body: Any = None, role: str = "admin", tenant: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.keys[role]}"}
        if tenant is not None:
            headers["X-Orchestrator-Tenant"] = tenant
        return http_json(method, self.url + path, body, headers)

    def shot(self, page: Page, name: str, *, doc: bool = False) -> None:
        page.screenshot(path=str(self.shots / f"{name}.png"))
        if doc and os.environ.get("ORCHESTRATOR_CONSOLE_DOCS") == "1":  # refresh docs/console/
            page.screenshot(path=str(DOCS_SHOTS / f"{name}.png"))


def accessibility_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it stands (WCAG 2.1 A and AA
    rules and best practices), one line each. Run through the DevTools protocol, which the page's
    Content-Security-Policy does not govern."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    violations = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .map(v => ({id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"""
    )
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {', '.join(v['nodes'])}"
        for v in violations
        if v["impact"] in SERIOUS
    ]


def make_key(env: dict[str, str], role: str, *more: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "keys", "create", "--role", role, "--name", role, *more],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def console_server(tmp: Path, extra_env: dict[str, str] | None = None) -> Iterator[Console]:
    """A server with the console, keys for admin, operator and viewer, and a browser;
    ``extra_env``: more settings of the server (named connections, say)."""
    (tmp / "console_flow.yaml").write_text(DEFINITION, encoding="utf-8")
    env = cli_env(f"sqlite:///{tmp}/console.db", {"ORCHESTRATOR_KEY_PEPPER": "pepper-for-tests", **(extra_env or {})})
    del env["ORCHESTRATOR_AUTH"]
    keys = {role: make_key(env, role) for role in ("admin", "operator", "viewer")}
    keys["root"] = make_key(env, "admin", "--all-tenants")  # an admin of every tenant
    shots = Path(os.environ.get("ORCHESTRATOR_CONSOLE_SHOTS") or tmp / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    proc = ServerProcess(env, ["--definitions", str(tmp / "console_flow.yaml")], tmp / "server.log")
    try:
        url = proc.start()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                yield Console(url, keys, shots, browser)
            finally:
                browser.close()
    finally:
        proc.stop()
        print(proc.output()[-4000:])
        print(f"screenshots: {shots}")
