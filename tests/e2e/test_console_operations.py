"""The console's operating pages in a real browser against a real server: the Gantt of step
spans, signal and send event, redrive from a chosen step with edited input, the diff against
another execution, bulk redrive with its dry-run preview, the definitions diff with its verdict
and replay verify, the Triggers, Analytics and Cluster pages, a 100,000-event history that opens
without reading it all, and axe-core's accessibility checks on every page."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, Request, expect

from tests.e2e.console_browser import Console, accessibility_violations, console_server

FAILS = {
    "name": "console_fails",
    "description": "Fails unless its input says ok.",
    "steps": [
        {"name": "prepare", "type": "task", "connector": "noop", "next": "check"},
        {"name": "check", "type": "choice", "choices": [{"when": "input.ok", "next": "done"}], "default": "broken"},
        {"name": "broken", "type": "fail", "error": "not_ok"},
        {"name": "done", "type": "succeed"},
    ],
}
TRIGGERED = {
    "name": "console_triggered",
    "triggers": [{"type": "schedule", "name": "nightly", "cron": "0 3 * * *"}],
    "steps": [{"name": "done", "type": "succeed"}],
}
PARENT = {
    "name": "console_parent",
    "steps": [{"name": "child", "type": "subworkflow", "workflow": "console_fails", "version": 1, "input": {"ok": "`true`"}}],
}
ITERATIONS = 33_334  # three events each: a history of 100,004 events
LONG = {
    "name": "console_long",
    "steps": [
        {"name": "inc", "type": "task", "connector": "noop", "input": {"n": "sum([steps.inc.n || `0`, `1`])"}, "next": "again"},
        {"name": "again", "type": "choice", "default": "done", "choices": [{"when": f"steps.inc.n < `{ITERATIONS}`", "next": "inc"}]},
        {"name": "done", "type": "succeed"},
    ],
}


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    for console in console_server(tmp_path_factory.mktemp("console-ops")):
        for definition in (FAILS, TRIGGERED, LONG, PARENT):
            status, body = console.api("POST", "/api/v1/definitions", definition)
            assert status in (200, 201), body
        yield console


def start(console: Console, workflow: str, input_: Any) -> str:
    status, body = console.api("POST", "/api/v1/executions", {"workflow": workflow, "input": input_})
    assert status == 202, body
    return str(body["execution_id"])


def finished(console: Console, execution: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = console.api("GET", f"/api/v1/executions/{execution}/state")
        assert status == 200, body
        if body["status"] != "running" or time.monotonic() > deadline:
            return dict(body)
        time.sleep(0.2)


def accessible(page: Page) -> None:
    assert accessibility_violations(page) == [], page.url


def test_the_gantt_shows_each_step_span(console: Console) -> None:
    key = uuid.uuid4().hex
    execution = start(console, "console_flow", {"id": key})
    page = console.sign_in("operator", f"/console/executions/{execution}")
    gantt = page.get_by_test_id("gantt")
    expect(gantt.locator("tr[data-step='prepare'] .bar.succeeded")).to_have_count(1, timeout=10_000)
    expect(gantt.locator("tr[data-step='approval'] .bar.running.event")).to_have_count(1)
    label = gantt.locator("tr[data-step='prepare'] .bar").get_attribute("aria-label") or ""
    assert label.startswith("prepare (task, visit 1): succeeded") and "for " in label
    gantt.scroll_into_view_if_needed()
    console.shot(page, "execution-gantt", doc=True)
    accessible(page)


def test_signal_from_the_page_moves_the_execution_on(console: Console) -> None:
    execution = start(console, "console_flow", {"id": uuid.uuid4().hex})
    page = console.sign_in("operator", f"/console/executions/{execution}")
    expect(page.locator(".vue-flow__node", has_text="approval · waiting")).to_be_visible(timeout=10_000)
    page.get_by_text("Signal", exact=True).click()
    page.get_by_label("Name").first.fill("approve")
    page.get_by_label("Payload (JSON)").first.fill('{"ok": true, "by": "console"}')
    page.get_by_label("Reason").fill("approved on the phone")
    page.get_by_test_id("signal").click()
    expect(page.get_by_test_id("action-message")).to_have_text("Signal approve sent")
    expect(page.get_by_test_id("execution-status")).to_have_text("succeeded", timeout=10_000)
    status, audit = console.api("GET", "/api/v1/audit?action=executions:signal&limit=1000")
    assert status == 200 and "approved on the phone" in json.dumps(audit["items"]), audit


def test_a_payload_that_is_not_json_is_refused_in_the_page(console: Console) -> None:
    execution = start(console, "console_flow", {"id": uuid.uuid4().hex})
    page = console.sign_in("operator", f"/console/executions/{execution}")
    page.get_by_text("Signal", exact=True).click()
    page.get_by_label("Name").first.fill("approve")
    page.get_by_label("Payload (JSON)").first.fill("{not json")
    page.get_by_test_id("signal").click()
    expect(page.get_by_test_id("action-message")).to_contain_text("The payload is not valid JSON")
    expect(page.get_by_test_id("execution-status")).to_have_text("running")


def test_send_event_reaches_the_waiting_execution(console: Console) -> None:
    key = uuid.uuid4().hex
    execution = start(console, "console_flow", {"id": key})
    page = console.sign_in("operator", f"/console/executions/{execution}")
    expect(page.locator(".vue-flow__node", has_text="approval · waiting")).to_be_visible(timeout=10_000)
    page.get_by_text("Send event", exact=True).click()
    page.locator("#event-name").fill("approve")
    page.get_by_label("Correlation key").fill(key)
    page.locator("#event-payload").fill('{"ok": true}')
    page.get_by_test_id("send-event").click()
    expect(page.get_by_test_id("action-message")).to_have_text("Event approve delivered to 1 waiting execution(s)")
    expect(page.get_by_test_id("execution-status")).to_have_text("succeeded", timeout=10_000)


def test_redrive_from_a_chosen_step_with_edited_input(console: Console) -> None:
    execution = start(console, "console_fails", {"ok": False})
    assert finished(console, execution)["status"] == "failed"
    page = console.sign_in("operator", f"/console/executions/{execution}")
    expect(page.get_by_test_id("execution-status")).to_have_text("failed")
    expect(page.get_by_test_id("error")).to_contain_text("not_ok")
    page.locator("summary", has_text="Redrive").click()
    page.locator("#redrive-from").select_option("step")
    page.locator("#redrive-step").select_option("check")
    page.get_by_test_id("redrive-input").fill('{"ok": true}')
    page.get_by_label("Reason").fill("fixed the input")
    page.get_by_test_id("redrive").click()
    expect(page.get_by_test_id("execution-id")).not_to_have_text(execution, timeout=10_000)
    redriven = page.get_by_test_id("execution-id").inner_text()
    expect(page.get_by_test_id("execution-status")).to_have_text("succeeded", timeout=10_000)
    expect(page.get_by_test_id("input")).to_contain_text('"ok": true')
    expect(page.get_by_test_id("links")).to_contain_text(execution)  # redrive of
    # The diff against the original: the input and the path differ.
    page.get_by_label("Execution id", exact=True).fill(execution)
    page.get_by_role("button", name="Compare").click()
    diff = page.get_by_test_id("diff")
    expect(diff).to_contain_text("first difference at event")
    expect(page.get_by_test_id("diff-state")).to_contain_text("input.ok")
    assert f"diff={execution}" in page.url
    diff.scroll_into_view_if_needed()
    console.shot(page, "execution-diff", doc=True)
    status, links = console.api("GET", f"/api/v1/executions/{execution}/links")
    assert status == 200 and links["links"][0]["other_id"] == redriven


def test_the_list_filters_by_version_and_time_from_the_url(console: Console) -> None:
    execution = start(console, "console_flow", {"id": uuid.uuid4().hex})
    page = console.sign_in("operator", "/console/executions?workflow=console_flow&version=1")
    expect(page.locator(f"tr[data-id='{execution}']")).to_be_visible()
    expect(page.get_by_label("Version")).to_have_value("1")
    page.get_by_label("Version").fill("2")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("table", name="Executions")).to_contain_text("No executions match.")
    assert "version=2" in page.url
    page.goto(console.url + "/console/executions?workflow=console_flow&after=2999-01-01T00:00")
    expect(page.get_by_role("table", name="Executions")).to_contain_text("No executions match.")
    page.goto(console.url + "/console/executions?workflow=console_flow&after=2000-01-01T00:00&before=2999-01-01T00:00")
    expect(page.locator(f"tr[data-id='{execution}']")).to_be_visible()


def test_a_parent_links_to_its_child_and_the_child_back(console: Console) -> None:
    parent = start(console, "console_parent", {})
    assert finished(console, parent)["status"] == "succeeded"
    page = console.sign_in("operator", f"/console/executions/{parent}")  # children are read from event data
    links = page.get_by_test_id("links")
    expect(links).to_contain_text("child (child)")
    links.get_by_role("link").click()
    expect(page.get_by_test_id("execution-status")).to_have_text("succeeded")
    expect(page.get_by_test_id("links")).to_contain_text(f"parent: {parent}")


def test_bulk_redrive_previews_then_runs(console: Console) -> None:
    failed = [start(console, "console_fails", {"ok": False, "n": n}) for n in range(3)]
    for execution in failed:
        assert finished(console, execution)["status"] == "failed"
    page = console.sign_in("operator", "/console/executions?workflow=console_fails")
    bulk = page.get_by_test_id("bulk-redrive")
    bulk.locator("summary").click()
    expect(bulk.get_by_label("Workflow")).to_have_value("console_fails")
    bulk.get_by_label("At most").fill("3")
    bulk.get_by_test_id("bulk-preview").click()
    matches = page.get_by_test_id("bulk-matches")
    expect(matches).to_contain_text("3 execution(s) match")
    for execution in failed:
        expect(matches).to_contain_text(execution)
    run = page.get_by_test_id("bulk-run")
    expect(run).to_be_disabled()  # a reason first
    bulk.get_by_label("Reason").fill("the dependency is back")
    bulk.get_by_label("At most").fill("2")
    expect(run).to_be_disabled()  # the filters changed: preview again
    bulk.get_by_label("At most").fill("3")
    bulk.get_by_test_id("bulk-preview").click()
    expect(run).to_be_enabled()
    matches.scroll_into_view_if_needed()
    console.shot(page, "bulk-redrive", doc=True)
    run.click()
    expect(page.get_by_test_id("bulk-job")).to_contain_text("succeeded, 3 of 3 done", timeout=20_000)
    for execution in failed:
        status, links = console.api("GET", f"/api/v1/executions/{execution}/links")
        assert status == 200 and [link["relation"] for link in links["links"]] == ["redriven_as"]


def test_definitions_diff_and_replay_verify(console: Console) -> None:
    steps = [{**step, "error": "still_not_ok"} if step["name"] == "broken" else step for step in FAILS["steps"]]  # type: ignore[attr-defined]
    changed = {**FAILS, "steps": steps}
    status, body = console.api("POST", "/api/v1/definitions", changed)
    assert status in (200, 201), body
    page = console.sign_in("operator", "/console/definitions/console_fails")
    expect(page.get_by_role("heading", name="Definition console_fails")).to_be_visible()
    page.get_by_role("button", name="Compare", exact=True).click()
    diff = page.get_by_test_id("definition-diff")
    expect(diff).to_contain_text("v1 → v2")
    expect(diff).to_contain_text("still_not_ok")
    verdict = page.get_by_test_id("verdict").inner_text()
    assert verdict in ("safe", "conditional", "breaking")
    assert "from=1" in page.url and "to=2" in page.url
    page.get_by_label("Recorded on").select_option("1")
    page.get_by_test_id("verify").click()
    report = page.get_by_test_id("verify-report")
    expect(report).to_contain_text("checked", timeout=20_000)
    status, expected = console.api(
        "POST", "/api/v1/replay/verify", {"workflow": "console_fails", "version": 2, "sample": 20, "recorded_version": 1}
    )
    assert status == 200 and expected["summary"]["checked"] > 0, expected
    summary = expected["summary"]
    expect(report).to_contain_text(f"{summary['checked']} checked, {summary['ok']} ok, {summary['diverged']} diverged")
    expect(report.locator(".badge")).to_have_text("compatible" if expected["ok"] else "diverged")
    page.get_by_test_id("definition-diff").scroll_into_view_if_needed()
    console.shot(page, "definition-diff", doc=True)
    accessible(page)


def test_the_triggers_page_lists_and_toggles_and_a_viewer_cannot(console: Console) -> None:
    page = console.sign_in("admin", "/console/triggers")
    row = page.locator("tr[data-trigger='console_triggered/nightly']")
    expect(row).to_contain_text("enabled")
    row.get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("disabled")
    expect(page.get_by_test_id("trigger-message")).to_have_text("console_triggered/nightly disabled")
    expect(page.get_by_role("table", name="Schedules")).to_contain_text("console_triggered/nightly")
    expect(page.get_by_test_id("dead-letters")).to_contain_text("No parked commands")
    console.shot(page, "triggers", doc=True)
    accessible(page)
    row.get_by_role("button", name="Enable").click()
    expect(row).to_contain_text("enabled")
    viewer = console.sign_in("viewer", "/console/triggers")
    expect(viewer.locator("tr[data-trigger='console_triggered/nightly'] button")).to_be_disabled()


def test_the_analytics_page_shows_rates_percentiles_and_the_step_heatmap(console: Console) -> None:
    finished(console, start(console, "console_fails", {"ok": True}))
    page = console.sign_in("operator", "/console/analytics?workflow=console_fails&since=1d")
    expect(page.get_by_test_id("overview")).to_contain_text("started")
    expect(page.get_by_test_id("heatmap").locator("tr[data-step='prepare']")).to_have_count(1, timeout=20_000)
    expect(page.get_by_test_id("heat-graph").locator(".vue-flow__node", has_text="prepare · p95")).to_be_visible()
    expect(page.locator("select[name=since]")).to_have_value("1d")
    console.shot(page, "analytics", doc=True)
    accessible(page)


def test_the_cluster_page_shows_this_node(console: Console) -> None:
    page = console.sign_in("admin", "/console/cluster")
    expect(page.get_by_test_id("nodes")).to_contain_text("(this one)")
    expect(page.get_by_test_id("nodes")).to_contain_text("alive")
    expect(page.get_by_test_id("cluster-counts")).to_contain_text("alive")
    console.shot(page, "cluster", doc=True)
    accessible(page)


@pytest.mark.parametrize(
    "path",
    ["/console/", "/console/executions", "/console/definitions", "/console/definitions/console_flow",
     "/console/templates", "/console/audit"],
)  # fmt: skip
def test_every_page_passes_the_accessibility_checks(console: Console, path: str) -> None:
    page = console.page() if path == "/console/" else console.sign_in("admin", path)
    if path == "/console/":
        page.goto(console.url + path)
        page.get_by_label("API key").wait_for()
    else:
        page.get_by_role("heading").first.wait_for()
        if path == "/console/executions":  # its live stream never lets the network idle
            page.locator("table.list tbody tr").first.wait_for()
        else:
            page.wait_for_load_state("networkidle")
    accessible(page)
    page.evaluate("document.documentElement.dataset.theme = 'light'")
    accessible(page)  # contrast in the other theme too


def test_the_accessibility_check_finds_a_violation(console: Console) -> None:
    """The guard can fail: a page with an unlabelled input and an image without text is caught."""
    page = console.browser.new_page()
    try:
        page.set_content("<html lang='en'><title>t</title><main><input type='text'><img src='x.png'></main></html>")
        found = accessibility_violations(page)
    finally:
        page.close()
    assert any("label" in line for line in found) and any("image-alt" in line for line in found), found


def test_a_100000_event_history_opens_without_reading_it_all(console: Console) -> None:
    execution = start(console, "console_long", {})
    state = finished(console, execution, timeout=600)
    assert state["status"] == "succeeded" and state["sequence"] >= 100_000, state["sequence"]
    count = state["sequence"]
    page = console.sign_in("operator", "/console/executions")
    reads: list[str] = []

    def seen(request: Request) -> None:
        if "/history" in request.url:
            reads.append(request.url)

    page.on("request", seen)
    began = time.monotonic()
    page.goto(f"{console.url}/console/executions/{execution}")
    history = page.get_by_test_id("history")
    expect(history.get_by_role("button", name="#1 ExecutionStarted")).to_be_visible(timeout=30_000)
    opened = time.monotonic() - began
    print(f"a {count}-event history opened in {opened:.2f} s")
    assert len(reads) == 1, reads  # one page of 200 events, not the whole history
    assert history.locator("li").count() < 100  # only the rows in view exist
    history.evaluate("box => { box.scrollTop = box.scrollHeight }")
    expect(history.get_by_role("button", name=f"#{count} ExecutionSucceeded")).to_be_visible(timeout=10_000)
    assert len(reads) <= 3, reads  # the one or two pages at the end
    # An event picked by the URL opens scrolled to it, with the state after it.
    middle = count // 2
    page.goto(f"{console.url}/console/executions/{execution}?at={middle}")
    row = history.locator(f"li[data-sequence='{middle}']")
    expect(row).to_have_class("current", timeout=10_000)
    expect(page.get_by_test_id("at")).to_have_text(str(middle))
    row.get_by_role("button").press("ArrowDown")
    expect(page.get_by_test_id("at")).to_have_text(str(middle + 1))
    assert f"at={middle + 1}" in page.url


def test_no_page_logged_an_error(console: Console) -> None:
    assert console.problems == []
