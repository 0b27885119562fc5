"""Input schemas are applied without I/O, and a schema that cannot be applied is a problem, not
an exception (which was a 500 at a start and a redelivery loop on a trigger)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.runtime import InputInvalid, Runtime
from orchestrator.settings import Settings
from schemas.definition import WorkflowDefinition
from schemas.input_check import input_problems, input_validator


@pytest.fixture
def requests_seen() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server serving a schema; the paths it was asked for."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = b'{"type": "integer"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None: ...

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/schema.json", seen
    finally:
        server.shutdown()
        thread.join()


def test_a_remote_reference_is_never_fetched(requests_seen: tuple[str, list[str]]) -> None:
    url, seen = requests_seen
    problems = input_problems(input_validator({"$ref": url}), "x")
    assert [p.location for p in problems] == ["input_schema"]
    assert "cannot be applied" in problems[0].message and url in problems[0].message
    assert seen == []


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "string", "pattern": "["}, "unterminated character set"),
        ({"$ref": "#/$defs/missing"}, "does not exist"),
    ],
)
def test_a_schema_that_cannot_be_applied_is_a_problem(schema: dict[str, Any], reason: str) -> None:
    [problem] = input_problems(input_validator(schema), "x")
    assert problem.location == "input_schema" and reason in problem.message


def test_matching_and_local_references_still_work() -> None:
    schema = {"$defs": {"n": {"type": "integer"}}, "type": "object", "properties": {"a": {"$ref": "#/$defs/n"}}}
    validator = input_validator(schema)
    assert input_problems(validator, {"a": 1}) == []
    [problem] = input_problems(validator, {"a": "x"})
    assert (problem.location, problem.message) == ("input['a']", "'x' is not of type 'integer'")


async def test_a_start_with_an_unusable_schema_is_input_invalid() -> None:
    async with Runtime(Settings(event_log_url="memory://", retention_interval=0)) as runtime:
        definition = {"name": "wf", "input_schema": {"type": "string", "pattern": "("},
                      "steps": [{"name": "a", "type": "succeed"}]}  # fmt: skip
        await runtime.register(WorkflowDefinition.model_validate(definition))
        with pytest.raises(InputInvalid) as caught:
            await runtime.start_execution("wf", "x")
        assert caught.value.problems[0].location == "input_schema"
