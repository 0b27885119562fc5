"""Cost from aggregate cells: a price per wall-second and CPU-second of task attempts and per
connector call.

``wall_s`` sums every answered task attempt's wall time (the worker's measure, else scheduled ->
answered), ``cpu_s`` its CPU time where the connector measured it (isolated python steps), and
``calls:<connector>`` counts the attempts by connector. Cost = wall seconds x ``wall_second`` +
CPU seconds x ``cpu_second`` + calls x the connector's price (``calls``, else ``call``). Per
execution is the workflow's cost over the executions that ended in the window. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.analytics.queries import NONE, Cells, by, executions_only, steps_only


class PricesInvalid(ValueError):
    """``calls`` that is not ``connector=price,...`` with non-negative numbers."""


@dataclass(frozen=True, slots=True)
class Prices:
    wall_second: float = 0.0
    cpu_second: float = 0.0
    call: float = 0.0  # any connector call
    calls: Mapping[str, float] = field(default_factory=dict)  # per connector, over ``call``

    @staticmethod
    def parse_calls(text: str | None) -> dict[str, float]:
        """``http=0.002,python=0`` -> {"http": 0.002, "python": 0.0}; PricesInvalid."""
        prices: dict[str, float] = {}
        for item in (text or "").split(","):
            if not item.strip():
                continue
            name, sep, value = item.partition("=")
            try:
                price = float(value)
            except ValueError:
                price = -1.0
            if not sep or not name.strip() or not price >= 0 or price == float("inf"):
                raise PricesInvalid(f"{item!r}: write connector=price, e.g. http=0.002")
            prices[name.strip()] = price
        return prices

    def of_call(self, connector: str) -> float:
        return self.calls.get(connector, self.call)

    def to_dict(self) -> dict[str, Any]:
        return {"wall_second": self.wall_second, "cpu_second": self.cpu_second, "call": self.call,
                "calls": dict(self.calls)}  # fmt: skip


def _priced(wall: float, cpu: float, calls: dict[str, int], prices: Prices) -> float:
    return wall * prices.wall_second + cpu * prices.cpu_second + sum(n * prices.of_call(c) for c, n in calls.items())


def cost(cells: Cells, prices: Prices) -> dict[str, Any]:
    """Cost per workflow and step, per ended execution, and the total (the tenant's, when every
    workflow is asked for)."""
    pairs = list(cells)
    ended = {
        w: sum(cell.counts.get(s, 0) for s in ("succeeded", "failed", "cancelled"))
        for (w,), cell in by(executions_only(pairs), "workflow", histograms=NONE).items()
    }
    workflows: dict[str, dict[str, Any]] = {}
    for (workflow, step), cell in sorted(by(steps_only(pairs), "workflow", "step", histograms=NONE).items()):
        calls = {n[len("calls:") :]: v for n, v in cell.counts.items() if n.startswith("calls:")}
        if not calls:
            continue  # not a task step
        wall, cpu = cell.sums.get("wall_s", 0.0), cell.sums.get("cpu_s", 0.0)
        row = workflows.setdefault(workflow, {"workflow": workflow, "executions": ended.get(workflow, 0),
                                              "wall_seconds": 0.0, "cpu_seconds": 0.0, "calls": 0,
                                              "cost": 0.0, "steps": []})  # fmt: skip
        priced = _priced(wall, cpu, calls, prices)
        measured = cell.counts.get("cpu_measured", 0)
        row["steps"].append({"step": step, "wall_seconds": round(wall, 6), "calls": calls,
                             "cpu_seconds": round(cpu, 6) if measured else None, "cost": round(priced, 6)})  # fmt: skip
        row["wall_seconds"] += wall
        row["cpu_seconds"] += cpu
        row["calls"] += sum(calls.values())
        row["cost"] += priced
    rows = []
    for row in workflows.values():
        n = row["executions"]
        row["steps"].sort(key=lambda s: (-s["cost"], s["step"]))
        rows.append({**row, "wall_seconds": round(row["wall_seconds"], 6), "cpu_seconds": round(row["cpu_seconds"], 6),
                     "cost": round(row["cost"], 6),
                     "cost_per_execution": round(row["cost"] / n, 6) if n else None})  # fmt: skip
    total = sum(r["cost"] for r in rows)
    executions = sum(r["executions"] for r in rows)
    return {
        "prices": prices.to_dict(),
        "cost": round(total, 6),
        "executions": executions,
        "cost_per_execution": round(total / executions, 6) if executions else None,
        "workflows": sorted(rows, key=lambda r: (-r["cost"], r["workflow"])),
    }
