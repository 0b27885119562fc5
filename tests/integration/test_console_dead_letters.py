"""The console's Triggers page against a real Kafka trigger in a real browser: a record the
input schema refuses is parked; the page lists it with its reason; after the fix (a version
that takes it) *Move back* starts its execution; a viewer sees the button disabled."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.console_browser import Console, accessibility_violations, console_server

pytestmark = pytest.mark.integration


def definition(topic: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "console_orders",
        "input_schema": schema,
        "triggers": [{"type": "kafka", "name": "orders", "topics": [topic], "start_from": "earliest"}],
        "steps": [{"name": "done", "type": "succeed", "output": "input"}],
    }


@pytest.fixture(scope="module")
def topic() -> str:
    return f"console.{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, kafka_url: str) -> Iterator[Console]:
    env = {"ORCHESTRATOR_CONNECTION_KAFKA": f"{kafka_url}?partitions=1", "ORCHESTRATOR_TRIGGER_POLL_INTERVAL": "1"}
    yield from console_server(tmp_path_factory.mktemp("console-dlq"), env)


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.3)


def test_a_parked_record_is_listed_and_moved_back_after_the_fix(console: Console, kafka_url: str, topic: str) -> None:
    strict = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
    status, body = console.api("POST", "/api/v1/definitions", definition(topic, strict))
    assert status == 201, body

    def running() -> bool:
        _, listing = console.api("GET", "/api/v1/triggers")
        return any(t["name"] == "orders" and t["running"] for t in listing["triggers"])

    wait_for(running, 60, "the kafka trigger runs")
    bootstrap = kafka_url.removeprefix("kafka://").split("?", 1)[0]
    produced = subprocess.run(
        ["kcat", "-b", bootstrap, "-P", "-t", topic], input='{"id": 42}\n', capture_output=True, text=True, timeout=30
    )
    assert produced.returncode == 0, produced.stderr

    def parked() -> bool:
        _, listing = console.api("GET", "/api/v1/triggers")
        return any(t["name"] == "orders" and (t["stats"] or {}).get("dead_lettered") for t in listing["triggers"])

    wait_for(parked, 30, "the record parked")
    page = console.sign_in("operator", "/console/triggers")
    page.locator("tr[data-trigger='console_orders/orders']").get_by_role("button", name="Dead letters").click()
    panel = page.get_by_test_id("trigger-dead-letters")
    expect(panel).to_contain_text(f"kafka topic {topic}.dlq")
    row = panel.locator("tr[data-letter='0:0']")
    expect(row).to_contain_text("input schema")
    expect(row).to_contain_text('{"id": 42}')
    console.shot(page, "trigger-dead-letters", doc=True)
    assert accessibility_violations(page) == []
    status, body = console.api("POST", "/api/v1/definitions", definition(topic, {"type": "object"}))  # the fix
    assert status == 201, body
    row.get_by_role("button", name="Move back").click()
    expect(page.get_by_test_id("trigger-message")).to_have_text(f"Dead letter 0:0 moved back to kafka topic {topic}")

    def started() -> list[Any]:
        _, page_ = console.api("GET", "/api/v1/executions?workflow=console_orders")
        return list(page_["items"])

    [execution] = wait_for(started, 30, "the execution the moved record starts")
    status, state = console.api("GET", f"/api/v1/executions/{execution['execution_id']}/state")
    assert state["input"] == {"id": 42}
    status, audit = console.api("GET", "/api/v1/audit?action=deadletters:redrive&limit=100")
    assert status == 200 and any("console_orders/orders/0:0" in str(r["resource"]) for r in audit["items"]), audit
    viewer = console.sign_in("viewer", "/console/triggers")
    expect(viewer.locator("tr[data-trigger='console_orders/orders']").get_by_role("button", name="Dead letters")).to_be_disabled()


def test_no_page_logged_an_error(console: Console) -> None:
    assert console.problems == []
