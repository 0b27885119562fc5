"""Schemathesis against the served OpenAPI document of a real ``orchestrator serve --port 0`` on
memory backends: for every operation, generated requests (valid and invalid) never get a 5xx
and never hang (each request has a timeout). Bounded examples keep the run well under a minute;
``ORCHESTRATOR_FUZZ_EXAMPLES`` raises them and ``ORCHESTRATOR_FUZZ_RANDOM=1`` draws new cases
each run, for a longer hunt. The execution routes are fuzzed a second time with their path naming
real executions, so the handlers behind the 404 run too.

The server's log is checked too: an "unhandled error" there is a 500 that the error middleware
turned into JSON, and it fails the run as well.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import FailureGroup, ServerError, not_a_server_error

from orchestrator.api.openapi import document
from orchestrator.api.routes import ROUTE_TABLE
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.e2e.serverproc import Port0Server, cli_env, http_json

EXAMPLES = int(os.environ.get("ORCHESTRATOR_FUZZ_EXAMPLES", "12"))
RANDOM = os.environ.get("ORCHESTRATOR_FUZZ_RANDOM") == "1"  # new cases each run, for a longer hunt
REQUEST_TIMEOUT = 10.0  # seconds: a request that takes longer is a hang
ECHO = {
    "name": "echo",
    "input_schema": {"type": "object", "required": ["x"]},
    "triggers": [{"type": "webhook", "name": "echo-hook", "idempotency_header": "X-Delivery"}],
    "steps": [
        {"name": "first", "type": "task", "connector": "noop", "input": {"x": "input.x"}, "next": "wait"},
        {"name": "wait", "type": "wait_for_event", "event": "go", "correlation_key": "input.x", "next": "done"},
        {"name": "done", "type": "succeed"},
    ],
}
UNSET_SECRET = {  # for the harness's own check: its secret is configured nowhere
    "name": "unset_secret",
    "triggers": [
        {"type": "webhook", "name": "unset-secret", "signature": {"preset": "github", "secret": "NOWHERE"}}
    ],
    "steps": [{"name": "done", "type": "succeed"}],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real server on an OS-chosen port, over memory backends."""
    tmp = tmp_path_factory.mktemp("fuzz")
    definitions = tmp / "definitions"
    definitions.mkdir()
    for definition in (ECHO, UNSET_SECRET):
        (definitions / f"{definition['name']}.json").write_text(json.dumps(definition))
    env = cli_env("memory://", {"ORCHESTRATOR_RETENTION_INTERVAL": "0", "ORCHESTRATOR_STATE_DIR": str(tmp)})
    process = Port0Server(env, ["--definitions", str(definitions)], tmp / "server.log")
    url = process.start()
    try:
        yield url, process.log_path
    finally:
        process.stop()


def built_document() -> dict[str, Any]:
    """The OpenAPI document of ``build_app``, built in-process (nothing is started): what the
    server serves, as ``test_the_served_document_is_the_one_fuzzed`` checks."""
    runtime = Runtime(Settings(auth=False, event_log_url="memory://"))
    return document(build_app(runtime, runtime.settings)[ROUTE_TABLE].routes)


schema = schemathesis.openapi.from_dict(built_document())


def test_the_served_document_is_the_one_fuzzed(server: tuple[str, Path]) -> None:
    url, _ = server
    with urllib.request.urlopen(f"{url}/api/v1/openapi.json", timeout=REQUEST_TIMEOUT) as response:
        assert json.loads(response.read()) == json.loads(json.dumps(built_document()))


OPERATIONS = {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in schema.get_all_operations())}
POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE


def negatable(operation: dict[str, Any]) -> bool:
    """Whether an operation declares something an invalid request can break: a query or header
    parameter, or a body with a schema (a free string path parameter or an any-JSON body has no
    invalid value, and hypothesis would find nothing to generate)."""
    params = [p for p in operation.get("parameters", []) if p["in"] != "path"]
    content = (operation.get("requestBody") or {}).get("content", {})
    return bool(params) or any(media.get("schema") for media in content.values())


CASES = [
    pytest.param(label, mode, False, id=f"{label} {mode.value}")
    for label in sorted(OPERATIONS)
    for mode in (POSITIVE, NEGATIVE)
    if mode is POSITIVE or negatable(OPERATIONS[label].definition.raw)
] + [  # the execution routes again, on executions that exist (a running one and a finished one)
    pytest.param(label, POSITIVE, True, id=f"{label} existing")
    for label in sorted(OPERATIONS)
    if label.split()[1].startswith("/api/v1/executions/{id}")
]


@pytest.fixture(scope="module")
def existing(server: tuple[str, Path]) -> dict[str, str]:
    """Path parameters naming real executions: ``id`` waits for an event, ``other`` finished."""
    url, _ = server
    ids = []
    for x in ("fuzz-running", "fuzz-finished"):
        status, body = http_json("POST", f"{url}/api/v1/executions", {"workflow": "echo", "input": {"x": x}})
        assert status == 202, body
        ids.append(body["execution_id"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the finished one: once it waits, the event ends it
        status, body = http_json("POST", f"{url}/api/v1/events", {"name": "go", "correlation_key": "fuzz-finished"})
        if body["delivered_to"]:
            break
        time.sleep(0.05)
    assert http_json("GET", f"{url}/api/v1/executions/{ids[1]}")[1]["status"] == "succeeded"
    return {"id": ids[0], "other": ids[1]}


@pytest.mark.parametrize(("label", "mode", "on_existing"), CASES)
def test_no_operation_answers_5xx_or_hangs(
    label: str,
    mode: schemathesis.GenerationMode,
    on_existing: bool,
    server: tuple[str, Path],
    existing: dict[str, str],
) -> None:
    """Valid (positive) and invalid (negative) requests to one operation: never a 5xx, never
    slower than REQUEST_TIMEOUT (the call raises then)."""
    url, _ = server
    operation = OPERATIONS[label]
    path = {name: existing[name] for name in ("id", "other") if on_existing and f"{{{name}}}" in operation.path}

    # An opened live stream takes seconds to wind down after its client closes it: a few cases
    # of the stream operation say as much as many (tests/e2e/test_feed_stream_http.py has the rest).
    examples = 4 if operation.path.endswith("/feed/stream") else EXAMPLES
    fuzz(url, operation.as_strategy(mode, path_parameters=path or None), examples)


def fuzz(url: str, cases: Any, examples: int) -> None:
    """Send ``examples`` cases drawn from ``cases``; fail on a 5xx, a traceback or a hang."""

    @given(case=cases)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=not RANDOM,  # the same cases every run (a failure is reproducible), unless asked
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=url, timeout=REQUEST_TIMEOUT, stream=True)
        if response.headers.get("Content-Type", "").startswith("text/event-stream"):
            response.close()  # a live stream (GET /api/v1/feed/stream) that opened: no hang, no 5xx
            assert response.status_code == 200, (case.path, case.query)
            return
        case.validate_response(response, checks=[not_a_server_error])
        assert "Traceback" not in response.text

    check()


def test_the_harness_fails_on_a_5xx(server: tuple[str, Path]) -> None:
    """A hook whose signing secret is not configured answers 500 ``secret_missing`` (the server's
    setup is wrong, not the request): the same harness reports it."""
    url, _ = server
    cases = OPERATIONS["POST /hooks/{name}"].as_strategy(POSITIVE, path_parameters={"name": "unset-secret"})
    with pytest.raises(FailureGroup) as caught:
        fuzz(url, cases, 3)
    assert [type(found) for found in caught.value.exceptions] == [ServerError]


def test_the_server_logged_no_unhandled_error(server: tuple[str, Path]) -> None:
    """Runs after the fuzzing (same module, in file order)."""
    _, log = server
    text = log.read_text(errors="replace")
    assert "unhandled error" not in text and "Traceback" not in text, text[-5000:]
