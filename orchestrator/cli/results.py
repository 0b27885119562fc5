"""How a finished execution is shown: what ``run``, ``start --wait``, ``redrive --wait`` and ``demo`` print."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.cli.output import Output
from orchestrator.history import timeline


def exit_code(status: str) -> int:
    """0 for a succeeded execution, 1 for anything else."""
    return 0 if status == "succeeded" else 1


def show_result(out: Output, execution: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> None:
    """Header, history timeline (its tables), then the outcome."""
    out.line(
        f"execution {execution.get('execution_id')}  {execution.get('workflow')} v{execution.get('version')}"
    )
    out.line()
    out.show(timeline.blocks(timeline.build(events)))
    out.line()
    status = str(execution.get("status"))
    out.line(f"status: {status}")
    if status == "succeeded":
        out.line("output: " + json.dumps(execution.get("output"), indent=2, default=str))
    elif execution.get("error") is not None:
        out.line("error: " + json.dumps(execution.get("error"), default=str))


def result_json(execution: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    keys = ("execution_id", "workflow", "version", "status", "output", "error")
    return {
        **{key: execution.get(key) for key in keys},
        "timeline": timeline.build(events).to_dict(),
        "history": list(events),
    }
