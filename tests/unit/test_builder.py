"""The Python builder produces the same model as the equivalent YAML."""

from __future__ import annotations

import pytest
import yaml

from schemas.builder import Branch, Workflow, retry
from schemas.validation import DefinitionError, parse_definition

YAML = """
name: order
input_schema: {type: object}
triggers:
  - {type: webhook, name: orders}
steps:
  - name: check
    type: task
    connector: noop
    input: {id: input.id}
    retry: {max_attempts: 3, backoff: {initial_seconds: 0.5, multiplier: 2.0, max_seconds: 300.0},
            jitter: 0.0, non_retryable: []}
    next: both
  - name: both
    type: parallel
    branches:
      - steps: [{name: pay, type: task, connector: noop}]
      - steps:
          - {name: stock, type: task, connector: noop, next: nap}
          - {name: nap, type: wait, seconds: 1}
    next: route
  - name: route
    type: choice
    choices: [{when: "input.id > `5`", next: done}]
    default: failed
  - {name: done, type: succeed, output: steps}
  - {name: failed, type: fail, error: TooSmall}
"""


def test_builder_equals_yaml() -> None:
    built = (
        Workflow("order", input_schema={"type": "object"})
        .webhook("orders")
        .task("check", "noop", input={"id": "input.id"}, retry=retry(3, initial_seconds=0.5))
        .parallel(
            "both",
            Branch().task("pay", "noop"),
            Branch().task("stock", "noop").wait("nap", seconds=1),
        )
        .choice("route", [("input.id > `5`", "done")], default="failed")
        .succeed("done", output="steps")
        .fail("failed", error="TooSmall")
        .build()
    )
    assert built == parse_definition(yaml.safe_load(YAML))


def test_builder_reports_all_problems() -> None:
    workflow = Workflow("bad").task("a", "noop", next="nowhere").succeed("a")
    with pytest.raises(DefinitionError) as caught:
        workflow.build()
    messages = [p.message for p in caught.value.problems]
    assert any("unknown step 'nowhere'" in m for m in messages)
    assert any("duplicate step name 'a'" in m for m in messages)
