"""The web console in a real browser against a real server: sign in with a key, an execution
started through the API appears in the list and moves through its graph live, time travel,
cancel with a reason (seen in the history and the audit trail), a viewer cannot cancel, and no
page logs an error. Screenshots go to a temporary folder (ORCHESTRATOR_CONSOLE_SHOTS to keep
them) and, one per page, to docs/console/ with ORCHESTRATOR_CONSOLE_DOCS=1."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import expect

from tests.e2e.console_browser import DEFINITION, Console, console_server


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    yield from console_server(tmp_path_factory.mktemp("console"))


def start(console: Console, key: str | None = None) -> str:
    input_ = {"id": key or uuid.uuid4().hex}
    status, body = console.api("POST", "/api/v1/executions", {"workflow": "console_flow", "input": input_})
    assert status == 202, body
    return str(body["execution_id"])


def test_the_console_is_served_with_a_strict_policy(console: Console) -> None:
    page = console.page()
    response = page.goto(console.url + "/console/executions?status=running")
    assert response is not None and response.status == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "default-src 'none'" in policy
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    console.shot(page, "signin", doc=True)
    missing = page.request.get(console.url + "/console/assets/nothing.js")
    assert missing.status == 404


def test_a_wrong_key_is_refused_and_a_right_one_signs_in(console: Console) -> None:
    page = console.page()
    page.goto(console.url + "/console/")
    page.get_by_label("API key").fill("orch_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    console.problems.clear()  # the refused login's 401 is logged by the browser, as it should be
    page.get_by_label("API key").fill(console.keys["operator"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("who")).to_contain_text("operator")
    expect(page.get_by_role("heading", name="Executions")).to_be_visible()


def test_an_execution_appears_live_and_moves_through_its_graph(console: Console) -> None:
    page = console.sign_in("operator", "/console/executions")
    expect(page.get_by_role("heading", name="Executions")).to_be_visible()
    page.wait_for_timeout(500)  # the live stream is open
    key = uuid.uuid4().hex
    execution = start(console, key)
    row = page.locator(f"tr[data-id='{execution}']")
    expect(row).to_be_visible(timeout=10_000)  # no reload: the feed stream refreshed the list
    console.shot(page, "executions", doc=True)
    row.get_by_role("link").click()
    expect(page.get_by_test_id("execution-id")).to_have_text(execution)
    expect(page.locator(".vue-flow__node", has_text="approval · waiting")).to_be_visible(timeout=10_000)
    expect(page.locator(".vue-flow__node", has_text="prepare · succeeded")).to_be_visible()
    expect(page.locator(".vue-flow__node", has_text="done · pending")).to_be_visible()
    console.shot(page, "execution", doc=True)
    # The approval arrives while the page is open: the graph follows it without a reload.
    status, body = console.api("POST", "/api/v1/events", {"name": "approve", "correlation_key": key, "payload": {"ok": True}})
    assert status == 202, body
    expect(page.get_by_test_id("execution-status")).to_have_text("succeeded", timeout=10_000)
    expect(page.locator(".vue-flow__node", has_text="approval · succeeded")).to_be_visible()
    expect(page.get_by_test_id("history")).to_contain_text("ExecutionSucceeded")


def test_time_travel_shows_the_state_after_an_event(console: Console) -> None:
    execution = start(console)
    page = console.sign_in("operator", f"/console/executions/{execution}")
    expect(page.locator(".vue-flow__node", has_text="approval · waiting")).to_be_visible(timeout=10_000)
    page.get_by_test_id("history").get_by_role("button", name="#1 ExecutionStarted").click()
    expect(page.get_by_test_id("at")).to_have_text("1")
    expect(page.locator(".vue-flow__node", has_text="prepare · pending")).to_be_visible()
    expect(page.locator(".vue-flow__node", has_text="approval · pending")).to_be_visible()
    console.shot(page, "time-travel")
    page.get_by_role("button", name="Back to live").click()
    expect(page.locator(".vue-flow__node", has_text="approval · waiting")).to_be_visible()


def test_cancel_from_the_page_is_in_the_history_and_the_audit_trail(console: Console) -> None:
    execution = start(console)
    page = console.sign_in("operator", f"/console/executions/{execution}")
    expect(page.locator(".vue-flow__node", has_text="approval · waiting")).to_be_visible(timeout=10_000)
    cancel = page.get_by_test_id("cancel")
    expect(cancel).to_be_disabled()  # a reason first
    page.get_by_label("Reason").fill("customer asked to stop")
    cancel.click()
    expect(page.get_by_test_id("execution-status")).to_have_text("cancelled", timeout=10_000)
    expect(page.get_by_test_id("history")).to_contain_text("ExecutionCancelled")
    console.shot(page, "cancelled")
    status, audit = console.api("GET", "/api/v1/audit?limit=1000")
    assert status == 200, audit
    records = [r for r in audit["items"] if r["resource"].get("id") == execution and r["action"] == "executions:cancel"]
    assert records and "customer asked to stop" in json.dumps(records), audit["items"][-3:]


def test_a_viewer_cannot_press_cancel_and_sees_why(console: Console) -> None:
    execution = start(console)
    page = console.sign_in("viewer", f"/console/executions/{execution}")
    expect(page.locator(".vue-flow__node", has_text="approval · waiting")).to_be_visible(timeout=10_000)
    expect(page.locator(".vue-flow__node", has_text="prepare · succeeded")).to_be_visible()  # not a payload
    page.get_by_label("Reason").fill("trying")
    expect(page.get_by_test_id("cancel")).to_be_disabled()
    holder = page.locator("span[title*='executions:cancel']")
    expect(holder).to_have_count(1)
    expect(page.get_by_test_id("input")).to_contain_text("redacted")


def test_the_definitions_pages(console: Console) -> None:
    page = console.sign_in("viewer", "/console/definitions")
    page.get_by_role("link", name="console_flow").click()
    expect(page.get_by_role("heading", name="Definition console_flow")).to_be_visible()
    expect(page.locator(".vue-flow__node", has_text="approval")).to_be_visible()
    console.shot(page, "definition", doc=True)


def test_executions_are_filtered_by_correlation_key_and_by_who_started_them(console: Console) -> None:
    key = uuid.uuid4().hex
    execution, other = start(console, key), start(console)
    page = console.sign_in("operator", f"/console/executions?key={key}")
    expect(page.get_by_label("Correlation key")).to_have_value(key)  # the filter comes from the URL
    row = page.locator(f"tr[data-id='{execution}']")
    expect(row).to_be_visible(timeout=10_000)  # once its wait is recorded, the feed reloads the list
    expect(page.locator(f"tr[data-id='{other}']")).to_have_count(0)
    starter = row.get_by_test_id("started-by").inner_text()
    assert starter == "key:admin"  # the API key that started them
    page.get_by_label("Correlation key").fill("")
    page.get_by_label("Started by").fill(starter)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(f"tr[data-id='{other}']")).to_be_visible()
    assert "started_by=key" in page.url
    page.get_by_label("Started by").fill("webhook:nobody")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No executions match.")).to_be_visible()
    viewer = console.sign_in("viewer", "/console/executions")  # keys come from inputs: payloads:read
    expect(viewer.get_by_label("Correlation key")).to_be_disabled()


def test_a_principal_of_several_tenants_switches_between_them(console: Console) -> None:
    definition = {**yaml.safe_load(DEFINITION), "name": "acme_flow"}  # names are global
    status, body = console.api("POST", "/api/v1/definitions", definition, role="root", tenant="acme")
    assert status in (200, 201), body
    home = start(console)  # in tenant default
    status, body = console.api("POST", "/api/v1/executions", {"workflow": "acme_flow", "input": {"id": "a"}}, role="root", tenant="acme")
    assert status == 202, body
    theirs = body["execution_id"]
    page = console.sign_in("root", "/console/executions")
    expect(page.locator(f"tr[data-id='{home}']")).to_be_visible()
    page.get_by_label("Tenant").fill("acme")
    page.get_by_role("button", name="Switch", exact=True).click()
    expect(page.get_by_test_id("who")).to_contain_text("· acme")
    expect(page.locator(f"tr[data-id='{theirs}']")).to_be_visible()
    expect(page.locator(f"tr[data-id='{home}']")).to_have_count(0)
    page.wait_for_timeout(500)  # the live stream of tenant acme is open
    status, body = console.api("POST", "/api/v1/executions", {"workflow": "acme_flow", "input": {"id": "b"}}, role="root", tenant="acme")
    expect(page.locator(f"tr[data-id='{body['execution_id']}']")).to_be_visible(timeout=10_000)  # live
    page.reload()  # the choice lasts for the tab
    expect(page.get_by_test_id("who")).to_contain_text("· acme")
    expect(page.locator(f"tr[data-id='{theirs}']")).to_be_visible()
    single = console.sign_in("operator", "/console/executions")  # roles in one tenant: no field
    expect(single.get_by_test_id("who")).to_contain_text("· default")
    expect(single.get_by_label("Tenant")).to_have_count(0)


def test_the_audit_page_shows_the_cancel_and_its_reason(console: Console) -> None:
    page = console.sign_in("admin", "/console/executions")
    page.get_by_role("link", name="Audit").click()
    page.get_by_label("Action").fill("executions:cancel")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("audit")).to_contain_text("customer asked to stop")
    assert "action=executions%3Acancel" in page.url  # the filter is in the URL
    console.shot(page, "audit", doc=True)
    viewer = console.sign_in("viewer", "/console/executions")
    expect(viewer.get_by_role("link", name="Audit")).to_have_count(0)  # no audit:read


def test_the_light_theme_and_keyboard(console: Console) -> None:
    page = console.sign_in("operator", "/console/executions")
    page.get_by_role("button", name="Switch to light theme").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement && document.activeElement.tagName") in ("A", "BUTTON", "INPUT")
    console.shot(page, "executions-light", doc=True)


def test_no_page_logged_an_error(console: Console) -> None:
    assert console.problems == []


def test_the_shots_are_written(console: Console) -> None:
    assert (Path(console.shots) / "execution.png").stat().st_size > 1000
