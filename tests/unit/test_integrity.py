"""Integrity checks: pure per-history checks on lists of envelopes, then ``verify`` on a log."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from orchestrator.backends.memory import MemoryEventLog, MemoryRegistry
from orchestrator.core.events import STEP_SUCCEEDED
from orchestrator.history import integrity
from orchestrator.history.integrity import (
    DUPLICATE,
    ERROR,
    GAP,
    MISSING_PARENT,
    ORPHAN,
    START,
    SUBJECT,
    SUMMARY,
    TAMPERED,
    UNCHAINED,
    UNKNOWN_WORKFLOW,
    WARNING,
    Problem,
    check_history,
    context_problems,
)
from orchestrator.ports import ExecutionSummary
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.envelope import Envelope, chained
from tests.contracts.factories import definition, event, history, started
from tests.data_workloads import run_workloads


def chain(events: Sequence[Envelope], previous: str = "") -> list[Envelope]:
    """The events with their hashes, as the engine stamps them."""
    out = []
    for envelope in events:
        envelope = chained(previous, envelope)
        previous = envelope.chainhash or ""
        out.append(envelope)
    return out


def kinds(problems: Sequence[Problem]) -> list[tuple[str, int | None]]:
    return [(p.kind, p.sequence) for p in problems]


def test_a_whole_chained_history_is_clean() -> None:
    facts = integrity.check_history("a", chain(history("a", 6)))
    assert facts.problems == []
    assert (facts.events, facts.last_sequence, facts.workflow, facts.version) == (6, 6, "wf", 1)


def test_editing_one_event_after_chaining_names_its_sequence() -> None:
    events = chain(history("a", 8))
    events[4] = dataclasses.replace(events[4], data={"step": "s5", "output": "forged"})
    problems = check_history("a", events).problems
    assert kinds(problems) == [(TAMPERED, 5)]
    assert problems[0].severity == ERROR


def test_any_changed_attribute_breaks_the_chain() -> None:
    events = chain(history("a", 4))
    events[1] = dataclasses.replace(events[1], time="2030-01-01T00:00:00.000Z")
    assert kinds(check_history("a", events).problems) == [(TAMPERED, 2)]
    events = chain(history("a", 4))
    events[2] = dataclasses.replace(events[2], chainhash="0" * 64)  # a forged hash: 3 and 4 break
    problems = check_history("a", events).problems
    assert kinds(problems) == [(TAMPERED, 3), (TAMPERED, None)]
    assert "1 more" in problems[1].message


def test_recomputing_the_whole_chain_is_not_detected() -> None:
    """The documented limit: the chain is not a signature."""
    events = list(history("a", 4))
    events[2] = dataclasses.replace(events[2], data={"forged": True})
    assert check_history("a", chain(events)).problems == []


def test_a_removed_event_is_a_gap_and_breaks_the_chain_after_it() -> None:
    events = chain(history("a", 6))
    del events[2]  # sequence 3
    problems = check_history("a", events).problems
    assert kinds(problems) == [(GAP, 3), (TAMPERED, 4)]
    assert "event 3 is missing" in problems[0].message


def test_a_wider_gap_and_a_duplicate() -> None:
    events = chain(history("a", 7))
    problems = check_history("a", [*events[:2], *events[5:], events[-1]]).problems
    assert (GAP, 3) in kinds(problems)
    assert "events 3..5 are missing" in problems[0].message
    assert (DUPLICATE, 7) in kinds(problems)


def test_a_wrong_subject() -> None:
    events = chain([*history("a", 3), dataclasses.replace(event("a", 4), subject="b")])
    problems = check_history("a", events).problems
    assert kinds(problems) == [(SUBJECT, 4)]
    assert "'b'" in problems[0].message


def test_the_first_event_must_be_execution_started() -> None:
    events = chain([event("a", 1), event("a", 2)])
    assert kinds(check_history("a", events).problems) == [(START, 1)]


def test_a_legacy_unchained_history_is_a_warning_not_an_error() -> None:
    facts = check_history("a", history("a", 5))
    assert [(p.kind, p.sequence, p.severity) for p in facts.problems] == [(UNCHAINED, 1, WARNING)]
    assert "5 events have no chainhash" in facts.problems[0].message


def test_a_legacy_prefix_continued_with_chaining_verifies_the_chained_part() -> None:
    """Events written before chaining, then more by an engine that chains (from "")."""
    legacy = history("a", 6)
    events = [*legacy[:3], *chain(legacy[3:])]
    assert kinds(check_history("a", events).problems) == [(UNCHAINED, 1)]
    events[4] = dataclasses.replace(events[4], data={"forged": True})
    assert kinds(check_history("a", events).problems) == [(TAMPERED, 5), (UNCHAINED, 1)]


def test_a_hash_stripped_after_chained_events_is_tampering() -> None:
    events = chain(history("a", 5))
    events[3] = dataclasses.replace(events[3], chainhash=None)
    problems = check_history("a", events).problems
    assert kinds(problems)[0] == (TAMPERED, 4)
    assert all(p.severity == ERROR for p in problems)


def test_many_problems_of_one_kind_are_capped() -> None:
    events = chain([dataclasses.replace(e, subject="zz") for e in history("a", 20)])
    problems = check_history("a", events).problems
    assert len(problems) == integrity.MAX_PER_KIND + 1
    assert "15 more subject" in problems[-1].message


def test_pages_fed_one_by_one_find_the_same() -> None:
    events = chain(history("a", 10))
    events[6] = dataclasses.replace(events[6], data={"x": 1})
    checker = integrity.HistoryChecker("a")
    for start in range(0, 10, 3):
        checker.feed(events[start : start + 3])
    assert checker.finish().problems == check_history("a", events).problems


# -- context: summary, registry, parent -------------------------------------------------------


def _summary(last: int, workflow: str = "wf", version: int = 1) -> ExecutionSummary:
    return ExecutionSummary("a", workflow, version, "default", "running", "t", "t", last)


def test_context_checks() -> None:
    facts = check_history("a", chain(history("a", 3)))
    assert context_problems(facts, _summary(3)) == []
    assert kinds(context_problems(facts, None)) == [(ORPHAN, None)]
    mismatch = context_problems(facts, _summary(5))
    assert kinds(mismatch) == [(SUMMARY, None)] and "last sequence 5" in mismatch[0].message
    assert kinds(context_problems(facts, _summary(3, "other", 2))) == [(SUMMARY, None)]
    assert kinds(context_problems(facts, _summary(3), workflow_known=False)) == [(UNKNOWN_WORKFLOW, None)]
    empty = check_history("a", [])
    assert kinds(context_problems(empty, _summary(4))) == [(ORPHAN, None)]
    assert context_problems(empty, None) == []


def test_a_missing_parent() -> None:
    child = check_history("c", chain([started("c", parent="p"), event("c", 2)]))
    assert child.parent_id == "p"
    problems = context_problems(child, _summary(2), parent_exists=False)
    assert kinds(problems) == [(MISSING_PARENT, None)]
    assert "parent execution p does not exist" in problems[0].message
    assert context_problems(child, _summary(2), parent_exists=True) == []


# -- verify over a log -----------------------------------------------------------------------


async def test_verify_finds_each_kind_across_a_log() -> None:
    log, registry = MemoryEventLog(), MemoryRegistry()
    await registry.register(definition("wf", version=1))
    await log.append("clean", 0, chain(history("clean", 4)))
    await log.append("legacy", 0, history("legacy", 3))
    await log.append("child", 0, chain([started("child", parent="gone"), event("child", 2)]))
    await log.append("stranger", 0, chain(history("stranger", 2, workflow="nobody")))
    forged = chain(history("forged", 5))
    forged[2] = dataclasses.replace(forged[2], data={"forged": True})
    await log.append("forged", 0, forged)

    report = await integrity.verify(log, registry)
    found = {(p.execution_id, p.kind, p.sequence) for p in report.problems}
    assert found == {
        ("legacy", UNCHAINED, 1),
        ("child", MISSING_PARENT, None),
        ("stranger", UNKNOWN_WORKFLOW, None),
        ("forged", TAMPERED, 3),
    }
    assert (report.executions, report.events) == (5, 16)
    assert not report.ok and len(report.errors) == 3 and len(report.warnings) == 1
    assert report.to_dict()["problems"]["forged"][0]["sequence"] == 3
    text = "\n".join(report.render())
    assert "execution forged:" in text and "tampered at sequence 3" in text
    assert text.endswith("3 errors, 1 warning (PROBLEMS FOUND)")

    only = await integrity.verify(log, registry, workflow="nobody")
    assert (only.executions, kinds(only.problems)) == (1, [(UNKNOWN_WORKFLOW, None)])


async def test_verify_reads_in_pages() -> None:
    log, registry = MemoryEventLog(), MemoryRegistry()
    await registry.register(definition("wf", version=1))
    await log.append(
        "long", 0, chain([*history("long", 1), *(event("long", n, STEP_SUCCEEDED) for n in range(2, 26))])
    )
    limits: list[int | None] = []
    read = log.read

    async def spy(execution_id: str, after_sequence: int = 0, limit: int | None = None) -> list[Envelope]:
        limits.append(limit)
        return await read(execution_id, after_sequence, limit)

    log.read = spy  # type: ignore[method-assign]
    report = await integrity.verify(log, registry, page_size=4)
    assert report.ok and report.events == 25
    assert len(limits) == 7 and set(limits) == {4}


async def test_real_workflow_histories_verify_clean() -> None:
    async with Runtime(Settings(event_log_url="memory://")) as runtime:
        ids = await run_workloads(runtime)
        report = await integrity.verify(runtime.log, runtime.registry)
    assert report.problems == []
    assert report.executions == len(ids) == 6


async def test_an_execution_that_grows_while_verified_is_not_a_summary_mismatch() -> None:
    registry = MemoryRegistry()
    await registry.register(definition("wf", version=1))
    events = chain(history("live", 7))

    class Growing(MemoryEventLog):
        grown = False

        async def read(
            self, execution_id: str, after_sequence: int = 0, limit: int | None = None
        ) -> list[Envelope]:
            page = await super().read(execution_id, after_sequence, limit)
            if not self.grown:  # the engine appends right after the first read
                self.grown = True
                await self.append("live", 4, events[4:])
            return page

    log = Growing()
    await log.append("live", 0, events[:4])
    report = await integrity.verify(log, registry)
    assert report.problems == [] and report.events == 7
