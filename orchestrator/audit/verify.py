"""Check the audit chain end to end: every record in its place, unchanged, linked to the one before.

Each problem names the sequence it was found at and what it means:

- ``changed``: a record's content no longer matches its hash, or (when a record was rewritten
  together with its hash) the next record recorded another hash for it;
- ``missing``: sequences absent between two stored records (a deleted record);
- ``reordered``: a row holds the record sealed for another place (records moved or swapped);
- ``unreadable``: a row that is not an audit record at all.

Deleting the newest records leaves a shorter chain that is still whole: compare ``head`` (the last
sequence and hash) with one kept elsewhere (a log line, a previous report) to notice that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.audit.record import GENESIS, AuditFormatError, digest, parse
from orchestrator.ports import AuditLog

PAGE = 1000
ProblemKind = Literal["changed", "missing", "reordered", "unreadable"]


@dataclass(frozen=True, slots=True)
class ChainProblem:
    sequence: int
    kind: ProblemKind
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "kind": self.kind, "message": self.message}


@dataclass(slots=True)
class ChainReport:
    records: int = 0
    head: tuple[int, str] | None = None  # (sequence, hash) of the last record
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "head": None if self.head is None else {"sequence": self.head[0], "hash": self.head[1]},
            "problems": [problem.to_dict() for problem in self.problems],
        }

    def render(self) -> list[str]:
        head = "empty" if self.head is None else f"head {self.head[0]} {self.head[1]}"
        lines = [f"audit chain: {self.records} records, {head}: {'ok' if self.ok else 'BROKEN'}"]
        lines += [f"  {p.kind} at {p.sequence}: {p.message}" for p in self.problems]
        return lines


async def verify_chain(log: AuditLog, progress: Callable[[int], None] | None = None) -> ChainReport:
    """Read the whole chain in order and report every place it is broken."""
    report = ChainReport()
    expected = 1
    last_hash: str | None = GENESIS  # the hash the next record must name (None: unknown)
    after = 0
    while True:
        entries = await log.read(after, PAGE)
        if not entries:
            return report
        for entry in entries:
            report.records += 1
            if entry.sequence > expected:
                gap = (
                    f"{expected}" if entry.sequence == expected + 1 else f"{expected} to {entry.sequence - 1}"
                )
                report.problems.append(ChainProblem(expected, "missing", f"record(s) {gap} are missing"))
                last_hash = None
            try:
                sealed = parse(entry.body)
            except AuditFormatError as exc:
                report.problems.append(ChainProblem(entry.sequence, "unreadable", str(exc)))
                expected, last_hash = entry.sequence + 1, None
                continue
            if sealed.sequence != entry.sequence:
                message = f"the row at {entry.sequence} holds record {sealed.sequence}"
                report.problems.append(ChainProblem(entry.sequence, "reordered", message))
                expected, last_hash = entry.sequence + 1, None  # the next link cannot be judged
                report.head = (entry.sequence, sealed.hash)
                continue
            if digest(sealed.record, sealed.sequence, sealed.previous) != sealed.hash:
                message = "its content no longer matches its hash"
                report.problems.append(ChainProblem(entry.sequence, "changed", message))
            elif last_hash is not None and sealed.previous != last_hash:
                message = f"record {entry.sequence} names another hash for it ({sealed.previous[:12]}...)"
                report.problems.append(ChainProblem(entry.sequence - 1, "changed", message))
            expected, last_hash = entry.sequence + 1, sealed.hash
            report.head = (entry.sequence, sealed.hash)
        after = entries[-1].sequence
        if progress is not None:
            progress(len(entries))
