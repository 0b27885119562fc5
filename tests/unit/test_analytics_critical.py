"""Critical paths, bottleneck ranking and SLA breaches on histories with known answers."""

from __future__ import annotations

import pytest

from orchestrator.analytics import queries
from orchestrator.analytics.critical import WAIT, critical_path, spans_of, summary
from orchestrator.analytics.fold import Aggregates, Slas
from orchestrator.analytics.projection import slas_of
from schemas.envelope import Envelope
from schemas.validation import DefinitionError, parse_definition
from tests.analytics_histories import Recorder, StepPlan, history

T0 = 1_767_225_600.0


def path(spans: list[tuple[str, float, float]], start: float, end: float) -> list[tuple[str | None, float, float]]:
    return [(s.step, s.start, s.end) for s in critical_path(spans, start, end)]


def test_sequential_steps_and_the_waits_between_them() -> None:
    assert path([("a", 0, 2), ("b", 2.5, 6)], 0, 7) == [("a", 0, 2), (WAIT, 2, 2.5), ("b", 2.5, 6), (WAIT, 6, 7)]


def test_of_parallel_branches_the_last_to_finish_is_on_the_path() -> None:
    spans = [("x", 1, 3), ("y", 1, 8), ("z", 8, 9), ("early", 0, 0.5)]
    assert path(spans, 0, 9) == [("early", 0, 0.5), (WAIT, 0.5, 1), ("y", 1, 8), ("z", 8, 9)]
    assert summary(critical_path(spans, 0, 9)) == {"early": 0.5, "y": 7, "z": 1}


def test_a_path_without_spans_is_one_wait() -> None:
    assert path([], 0, 4) == [(WAIT, 0, 4)]


def parallel_order(execution_id: str, start: float, slow_branch: float) -> list[Envelope]:
    """parallel P with branches a (2 s) and b (``slow_branch`` s), then c (1 s)."""
    r = Recorder(execution_id, "fanout")
    r.add("ExecutionStarted", start, {"input": None})
    r.add("ParallelStarted", start, {"step": "P", "visit": 1, "branches": 2})
    for step in ("a", "b"):
        r.add("StepScheduled", start + 0.1, {"step": step, "attempt": 1, "attempt_id": f"{execution_id}:{step}"})
    ends = {"a": start + 0.1 + 2, "b": start + 0.1 + slow_branch}
    for step in sorted(ends, key=ends.__getitem__):
        r.add("StepSucceeded", ends[step], {"step": step, "attempt_id": f"{execution_id}:{step}", "output": 1})
    joined = max(ends.values())
    r.add("StepSucceeded", joined, {"step": "P", "output": [1, 1]})
    r.add("StepScheduled", joined, {"step": "c", "attempt": 1, "attempt_id": f"{execution_id}:c"})
    r.add("StepSucceeded", joined + 1, {"step": "c", "attempt_id": f"{execution_id}:c", "output": 1})
    r.add("ExecutionSucceeded", joined + 1, {"output": 1})
    return r.events


def test_the_path_of_a_recorded_execution() -> None:
    start, end, spans = spans_of(parallel_order("p1", T0, 5.0))
    assert (start, end) == (T0, T0 + 6.1)
    assert [(s, round(a - T0, 3), round(b - T0, 3)) for s, a, b in path(spans, start or 0, end or 0)] == [
        (WAIT, 0, 0.1), ("b", 0.1, 5.1), ("c", 5.1, 6.1),
    ]  # fmt: skip


def test_bottlenecks_rank_the_steps_that_bound_the_workflow() -> None:
    aggregates = Aggregates()
    position = 0
    for i in range(10):  # b is slower than a in 8 executions of 10
        for envelope in parallel_order(f"p{i}", T0 + 100 * i, 5.0 if i < 8 else 1.0):
            position += 1
            aggregates.apply(position, envelope)
    [workflow] = queries.bottlenecks(list(aggregates.cells.items()))["workflows"]
    ranked = {row["step"]: row for row in workflow["steps"]}
    assert [row["step"] for row in workflow["steps"]] == ["b", "c", "a"]  # 40 s, 10 s, 4 s on the path
    assert (ranked["b"]["on_path"], ranked["a"]["on_path"], ranked["c"]["on_path"]) == (8, 2, 10)
    assert ranked["b"]["seconds_on_path"] == pytest.approx(8 * 5.0)
    assert ranked["c"]["on_path_rate"] == 1.0
    total = 8 * 6.1 + 2 * 3.1
    assert workflow["seconds"] == pytest.approx(total)
    assert ranked["b"]["share"] == pytest.approx(40 / total, rel=1e-6)
    assert "P" not in ranked  # a container, not a step on the path


def test_sla_breaches_of_steps_and_executions_are_counted_and_listed() -> None:
    limits = Slas(execution=3.0, steps={"charge": 2.0})
    aggregates = Aggregates(lambda workflow, version: limits if workflow == "order" else Slas(None, {}))
    position = 0
    for i in range(6):  # charge runs i seconds: 3, 4, 5 breach its 2 s; executions i + 1 s
        for envelope in history(f"o{i}", "order", T0 + 60 * i, [StepPlan("charge", run=float(i)), StepPlan("ship", run=1.0)]):
            position += 1
            aggregates.apply(position, envelope)
    for envelope in history("x", "other", T0, [StepPlan("charge", run=10.0)]):
        position += 1
        aggregates.apply(position, envelope)
    rows = {(r["workflow"], r["step"]): r for r in queries.slas(list(aggregates.cells.items()))}
    assert set(rows) == {("order", None), ("order", "charge")}
    assert (rows[("order", "charge")]["checked"], rows[("order", "charge")]["breaches"]) == (6, 3)
    assert (rows[("order", None)]["checked"], rows[("order", None)]["breaches"]) == (6, 3)  # i + 1 > 3
    found = {(b.execution_id, b.step, b.seconds) for b in aggregates.breaches}
    assert found == {
        ("o3", "charge", 3.0), ("o4", "charge", 4.0), ("o5", "charge", 5.0),
        ("o3", "", 4.0), ("o4", "", 5.0), ("o5", "", 6.0),
    }  # fmt: skip


def test_slas_are_declared_on_the_definition_and_its_steps_and_validated() -> None:
    definition = parse_definition({
        "name": "w", "sla": {"seconds": 30},
        "steps": [
            {"name": "a", "type": "task", "connector": "noop", "sla": {"seconds": 1.5}, "next": "p"},
            {"name": "p", "type": "parallel", "branches": [
                {"steps": [{"name": "b", "type": "task", "connector": "noop", "sla": {"seconds": 2}}]},
            ]},
        ],
    })  # fmt: skip
    assert slas_of(definition) == Slas(30.0, {"a": 1.5, "b": 2.0})
    for bad in ({"seconds": 0}, {"seconds": -1}, {"seconds": "soon"}, {"minutes": 1}, {}):
        with pytest.raises(DefinitionError) as caught:
            parse_definition({"name": "w", "sla": bad, "steps": [{"name": "a", "type": "succeed"}]})
        assert any("sla" in problem.location for problem in caught.value.problems)


def test_kpis_are_tracked_over_outputs_per_period() -> None:
    from orchestrator.analytics.projection import kpi_of

    limits = Slas(None, {}, {"total": kpi_of("output.total"), "items": kpi_of("length(output.items)")})
    aggregates = Aggregates(lambda workflow, version: limits)
    position = 0
    outputs = [{"total": 10.0, "items": [1]}, {"total": 30, "items": [1, 2, 3]}, {"total": "n/a"}, {"total": True}]
    for i, output in enumerate(outputs):
        r = Recorder(f"k{i}", "order")
        r.add("ExecutionStarted", T0 + 3600 * i, {"input": None})
        r.add("ExecutionSucceeded", T0 + 3600 * i + 1, {"output": output})
        for envelope in r.events:
            position += 1
            aggregates.apply(position, envelope)
    rows = {row["kpi"]: row for row in queries.kpis(list(aggregates.cells.items()), 3600)}
    total = rows["total"]
    assert (total["count"], total["sum"], total["mean"]) == (2, 40.0, 20.0)  # a string, a boolean: not numbers
    assert [(p["start"] - T0, p["sum"]) for p in total["periods"]] == [(0, 10.0), (3600, 30.0)]
    assert (rows["items"]["count"], rows["items"]["mean"]) == (2, 2.0)  # length(null) fails: not counted
    daily = queries.kpis(list(aggregates.cells.items()), 86400)
    assert [len(row["periods"]) for row in daily] == [1, 1]


def test_kpis_are_validated_with_the_definition() -> None:
    base = {"name": "w", "steps": [{"name": "a", "type": "succeed"}]}
    definition = parse_definition({**base, "kpis": [{"name": "total", "value": "output.total"}]})
    assert set(slas_of(definition).kpis) == {"total"}
    for kpis in ([{"name": "t", "value": "output.["}], [{"name": "t", "value": "a"}, {"name": "t", "value": "b"}],
                 [{"name": "t"}], [{"name": "bad name", "value": "a"}]):  # fmt: skip
        with pytest.raises(DefinitionError) as caught:
            parse_definition({**base, "kpis": kpis})
        assert any(problem.location.startswith("kpis[") for problem in caught.value.problems)


def _reference_path(spans: list[tuple[str, float, float]], start: float, end: float) -> list[tuple[str | None, float, float]]:
    """The walk as first written (quadratic: it rescans every span at each step of the path)."""
    eps = 1e-6
    todo = sorted(spans, key=lambda s: (s[2], -s[1]))
    found: list[tuple[str | None, float, float]] = []
    at = end
    while at > start + eps:
        while todo and todo[-1][2] > at + eps:
            todo.pop()
        candidates = [s for s in todo if s[1] < at - eps]
        if not candidates:
            found.append((WAIT, start, at))
            break
        step, began, ended = max(candidates, key=lambda s: (s[2], -s[1]))
        if ended < at - eps:
            found.append((WAIT, ended, at))
        found.append((step, max(began, start), min(ended, at)))
        at = began
        todo = [s for s in todo if s[2] <= at + eps]
    found.reverse()
    return found


@pytest.mark.parametrize("seed", range(200))
def test_the_linear_walk_finds_what_the_quadratic_one_did(seed: int) -> None:
    import random

    rng = random.Random(seed)
    spans = []
    for n in range(rng.randint(0, 30)):
        began = rng.choice([rng.uniform(0, 20), float(rng.randint(0, 20))])  # ties too
        spans.append((f"s{n}", began, began + rng.choice([0.0, rng.uniform(0, 8), float(rng.randint(0, 5))])))
    start, end = rng.uniform(-2, 3), rng.uniform(15, 30)
    assert path(spans, start, end) == _reference_path(spans, start, end)


def test_a_loop_of_tens_of_thousands_of_visits_walks_each_once() -> None:
    """An execution of 100,000 events (a task visited 33,334 times): the path holds every visit."""
    spans = [("inc", n * 1.0, n + 0.5) for n in range(33_334)]
    found = critical_path(spans, 0, 33_334)
    assert sum(1 for s in found if s.step == "inc") == 33_334
