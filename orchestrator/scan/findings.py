"""A finding of the security scan: which rule, how severe, where, and what to do about it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    """Ordered: a threshold ``--fail-on medium`` fails on medium and high findings."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (one of {names})") from None


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem. ``target`` says where (``workflow orders v3, step charge``, ``deployment``)."""

    rule: str
    severity: Severity
    target: str
    message: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.label,
            "target": self.target,
            "message": self.message,
            "fix": self.fix,
        }


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first, then by target and rule (a stable report)."""
    return sorted(findings, key=lambda f: (-f.severity, f.target, f.rule, f.message))


def failing(findings: Iterable[Finding], threshold: Severity) -> list[Finding]:
    """The findings at or above ``threshold``: the scan exits non-zero when there are any."""
    return [f for f in findings if f.severity >= threshold]


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    """How many findings of each severity (every severity present, most severe first)."""
    tally = {s.label: 0 for s in sorted(Severity, reverse=True)}
    for finding in findings:
        tally[finding.severity.label] += 1
    return tally
