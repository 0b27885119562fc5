"""The same benchmarks against a baseline commit and against this tree, interleaved in one run.

    python -m bench.before_after [--quick] [--baseline REF] [--rounds N] [--webhook|--no-webhook] [--json]

The baseline's ``orchestrator``, ``schemas``, ``connectors`` and ``triggers`` are extracted with
``git archive`` into a temporary directory (the working tree and index are not touched), and this
tree's ``bench/`` is copied beside them, so both sides run the identical measurement code. Each
measurement runs in a child process whose working directory and ``PYTHONPATH`` are the side's
source root; the child checks that ``orchestrator`` and ``bench`` were imported from there.
Rounds alternate before, after, before, after per figure, and each side reports its median.

Figures: the embedded 10-step workload (SQLite WAL synchronous=full + in-process bus), the same
workload on the in-memory log (the engine's CPU cost per transition, no I/O), and the webhook
durable-accept rate (``orchestrator serve``, started by ``bench.http_accept`` from the side's root).
Two controls run the same code on both sides (a raw SQLite commit, a bare aiohttp server): they
show how much the machine itself drifted between the two.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# The last commit before the hot-path fixes described in docs/performance.md.
BASELINE = "0f18505178aad3a1a48c7170c3ee90bf5d1e65a9"
REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("orchestrator", "schemas", "connectors", "triggers")
HEADING = "### Profile-driven fixes: before and after (same run)"


class BaselineError(RuntimeError):
    """The baseline commit cannot be found or extracted."""


class WrongRootError(RuntimeError):
    """A child process imported the code under test from somewhere other than its side's root."""


# -- figures ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str  # "us" or "/s"
    higher_is_better: bool
    control: bool = False  # the same code on both sides: shows the machine's drift

    def format(self, value: float) -> str:
        if self.unit == "us":
            if value >= 10_000:
                return f"{value / 1000:,.1f} ms"
            return f"{value:,.0f} µs" if value >= 10 else f"{value:.1f} µs"
        return f"{value:,.0f}/s"


FIGURES: tuple[Figure, ...] = (
    Figure(
        "embedded_p50_us", "per-step overhead p50, embedded (SQLite synchronous=full), unloaded", "us", False
    ),
    Figure("embedded_p99_us", "per-step overhead p99, embedded, unloaded", "us", False),
    Figure(
        "embedded_transitions_per_s", "transitions/s, embedded, {embedded_concurrent} concurrent", "/s", True
    ),
    Figure("embedded_workflows_per_s", "workflows/s (10 steps), embedded", "/s", True),
    Figure("memory_p50_us", "per-step overhead p50, in-memory log (no I/O), unloaded", "us", False),
    Figure(
        "memory_transitions_per_s", "transitions/s, in-memory log, {memory_concurrent} concurrent", "/s", True
    ),
    Figure("webhook_park_per_s", "webhook durable accept, `POST /hooks/park` → 202", "/s", True),
    Figure("webhook_park_p50_us", "webhook durable accept p50 latency", "us", False),
    Figure("webhook_run_per_s", "webhook accept while running what it accepted", "/s", True),
    Figure(
        "sqlite_commit_us", "control: one-row SQLite WAL commit (same code both sides)", "us", False, True
    ),
    Figure("bare_http_per_s", "control: bare aiohttp POST → 202 (same code both sides)", "/s", True, True),
)


def change(figure: Figure, before: float, after: float) -> str:
    """The signed relative change of ``after`` against ``before``, and whether it is an improvement."""
    if before == 0:
        return "n/a"
    percent = (after - before) / before * 100
    if abs(percent) < 0.5:
        return f"{percent:+.1f}%"
    if figure.control:
        return f"{percent:+.1f}% (same code: the machine's drift)"
    better = (percent > 0) == figure.higher_is_better
    return f"{percent:+.1f}% ({'better' if better else 'worse'})"


# -- the baseline's source -------------------------------------------------------------------------


@dataclass(frozen=True)
class Commit:
    full: str
    short: str
    subject: str


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise BaselineError("git is not installed: it is needed to extract the baseline commit") from None


def resolve_commit(ref: str, repo: Path = REPO) -> Commit:
    """The commit ``ref`` names, or a ``BaselineError`` that says how to get it."""
    found = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if found.returncode != 0:
        shallow = git(repo, "rev-parse", "--is-shallow-repository").stdout.decode().strip() == "true"
        hint = "this is a shallow clone: run `git fetch --unshallow`, or " if shallow else ""
        raise BaselineError(
            f"commit {ref!r} is not in the repository at {repo}; {hint}pass --baseline REF naming a commit "
            "that exists (the one before the changes to compare)"
        )
    full = found.stdout.decode().strip()
    short = git(repo, "rev-parse", "--short", full).stdout.decode().strip() or full[:7]
    subject = git(repo, "log", "-1", "--format=%s", full).stdout.decode().strip()
    return Commit(full, short, subject)


def describe_tree(repo: Path = REPO) -> str:
    """``HEAD <short>``, plus whether the packages have uncommitted changes (read-only git calls)."""
    head = git(repo, "rev-parse", "--short", "HEAD").stdout.decode().strip() or "unknown"
    changed = git(repo, "diff", "--quiet", "HEAD", "--", *PACKAGES).returncode != 0
    untracked = git(repo, "ls-files", "--others", "--exclude-standard", "--", *PACKAGES).stdout.strip()
    return f"HEAD {head}" + (" + uncommitted changes" if changed or untracked else "")


def materialise(commit: Commit, destination: Path, repo: Path = REPO) -> Path:
    """The baseline's packages (``git archive``) and this tree's ``bench/`` under ``destination``."""
    listed = git(repo, "ls-tree", "--name-only", commit.full).stdout.decode().split()
    present = [p for p in PACKAGES if p in listed]
    if "orchestrator" not in present:
        raise BaselineError(f"commit {commit.short} has no orchestrator/ package to measure")
    archived = git(repo, "archive", "--format=tar", commit.full, *present)
    if archived.returncode != 0:
        raise BaselineError(f"git archive {commit.short} failed: {archived.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archived.stdout), mode="r:") as archive:
        archive.extractall(destination, filter="data")
    shutil.copytree(
        Path(__file__).resolve().parent,
        destination / "bench",
        ignore=shutil.ignore_patterns("results", "__pycache__", "*.pyc"),
    )
    return destination


# -- child processes -------------------------------------------------------------------------------


def check_root(module: str, module_file: str | None, root: Path) -> None:
    """Fail unless ``module`` was imported from under ``root``."""
    if module_file is None or not Path(module_file).resolve().is_relative_to(root.resolve()):
        raise WrongRootError(f"{module} was imported from {module_file}, not from under {root}")


def side_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["PYTHONPATH"] = str(root)
    return env


def run_child(root: Path, kind: str, params: dict[str, Any], timeout: float) -> dict[str, float]:
    """Run one measurement in a child process rooted at ``root``; its figures from its JSON line."""
    command = [sys.executable, "-m", "bench.before_after", "--child", kind, "--root", str(root)]
    command += ["--params", json.dumps(params)]
    try:
        done = subprocess.run(
            command, cwd=root, env=side_env(root), capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{kind} under {root}: no answer within {timeout:.0f} s") from None
    lines = [line for line in done.stdout.decode().splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        stderr = done.stderr.decode(errors="replace")[-3000:]
        raise RuntimeError(f"{kind} under {root} failed (exit {done.returncode}):\n{stderr}")
    figures: dict[str, float] = json.loads(lines[-1])
    return figures


async def measure_embedded(sequential: int, concurrent: int) -> dict[str, float]:
    from bench.embedded import run_embedded

    r = await run_embedded(sequential=sequential, concurrent=concurrent)
    return {
        "embedded_p50_us": r.step_overhead_p50_us,
        "embedded_p99_us": r.step_overhead_p99_us,
        "embedded_transitions_per_s": r.transitions_per_s,
        "embedded_workflows_per_s": r.workflows_per_s,
        "sqlite_commit_us": r.sqlite_commit_us,
    }


async def measure_memory(sequential: int, concurrent: int) -> dict[str, float]:
    """The 10-step no-op workload on the in-memory log and bus: the engine's CPU cost, no I/O."""
    from bench.embedded import TimedNoop, run_workload
    from connectors.base import Connectors
    from orchestrator.runtime import Runtime
    from orchestrator.settings import Settings

    noop = TimedNoop()
    settings = Settings(event_log_url="memory://", transport_url="inprocess://?concurrency=64")
    async with Runtime(settings, connectors=Connectors([noop])) as runtime:
        workload = await run_workload(runtime, noop, sequential, concurrent)
    return {
        "memory_p50_us": statistics.median(workload.gaps_us),
        "memory_transitions_per_s": workload.transitions_per_s,
    }


async def measure_webhook(quick: bool, root: Path) -> dict[str, float]:
    """``bench.http_accept`` starts its servers with cwd and PYTHONPATH at its own package's parent:
    imported from the side's root, the ``orchestrator serve`` it starts runs that side's code."""
    from bench import http_accept

    check_root("bench.http_accept", http_accept.__file__, root)
    r = await http_accept.run_http_accept(quick=quick)
    return {
        "webhook_park_per_s": r.webhook_park_per_s,
        "webhook_park_p50_us": r.webhook_park_p50_ms * 1000,
        "webhook_run_per_s": r.webhook_run_per_s,
        "bare_http_per_s": r.bare_per_s,
    }


def child_main(kind: str, root: Path, params: dict[str, Any]) -> None:
    import bench
    import orchestrator

    check_root("orchestrator", orchestrator.__file__, root)
    check_root("bench", bench.__file__, root)
    if kind == "embedded":
        figures = asyncio.run(measure_embedded(params["sequential"], params["concurrent"]))
    elif kind == "memory":
        figures = asyncio.run(measure_memory(params["sequential"], params["concurrent"]))
    elif kind == "webhook":
        figures = asyncio.run(measure_webhook(params["quick"], root))
    else:
        raise ValueError(f"unknown measurement {kind!r}")
    print(json.dumps(figures), flush=True)


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class BeforeAfterResult:
    baseline: Commit
    tree: str  # HEAD and whether the packages have uncommitted changes
    quick: bool
    rounds: int
    sizes: dict[str, int]
    seconds: float
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # side -> figure -> rounds

    def median(self, side: str, key: str) -> float | None:
        values = self.samples.get(side, {}).get(key)
        return statistics.median(values) if values else None

    @property
    def before(self) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in self.samples.get("before", {}).items() if v}

    @property
    def after(self) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in self.samples.get("after", {}).items() if v}


def plan(quick: bool, webhook: bool) -> list[tuple[str, dict[str, Any]]]:
    sequential, concurrent = (20, 300) if quick else (100, 2000)
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("embedded", {"sequential": sequential, "concurrent": concurrent}),
        ("memory", {"sequential": sequential, "concurrent": 1000 if quick else 4000}),
    ]
    if webhook:
        kinds.append(("webhook", {"quick": quick}))
    return kinds


def run_before_after(
    *, quick: bool, baseline: str = BASELINE, rounds: int | None = None, webhook: bool | None = None
) -> BeforeAfterResult:
    """Measure the baseline commit and this tree, alternating, ``rounds`` times each (median reported)."""
    rounds = rounds if rounds is not None else (1 if quick else 2)
    webhook = webhook if webhook is not None else not quick
    timeout = 180.0 if quick else 900.0
    commit = resolve_commit(baseline)
    kinds = plan(quick, webhook)
    result = BeforeAfterResult(
        baseline=commit,
        tree=describe_tree(),
        quick=quick,
        rounds=rounds,
        sizes={
            "embedded_concurrent": kinds[0][1]["concurrent"],
            "embedded_sequential": kinds[0][1]["sequential"],
            "memory_concurrent": kinds[1][1]["concurrent"],
        },
        seconds=0.0,
    )
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        sides = {"before": materialise(commit, Path(tmp)), "after": REPO}
        for _ in range(rounds):
            for kind, params in kinds:
                for side, root in sides.items():
                    figures = run_child(root, kind, params, timeout)
                    for key, value in figures.items():
                        result.samples.setdefault(side, {}).setdefault(key, []).append(value)
    result.seconds = time.perf_counter() - began
    return result


# -- output ----------------------------------------------------------------------------------------


def before_after_rows(r: BeforeAfterResult) -> list[str]:
    """Markdown: heading, what was compared, and one row per figure measured on both sides."""
    mode = "quick" if r.quick else "full"
    lines = [
        HEADING,
        "",
        f"Before: `{r.baseline.short}` ({r.baseline.subject}). After: this tree ({r.tree}). "
        f"The same measurement code (this tree's `bench/`) on both sides, each figure in its own child "
        f"process, before and after alternating; median of {r.rounds} round{'s' if r.rounds != 1 else ''} "
        f"({mode} sizes), {r.seconds:.0f} s in all.",
        "",
        f"| figure | before ({r.baseline.short}) | after (this tree) | change |",
        "|---|---|---|---|",
    ]
    for figure in FIGURES:
        before, after = r.median("before", figure.key), r.median("after", figure.key)
        if before is None or after is None:
            continue
        label = figure.label.format(**r.sizes)
        lines.append(
            f"| {label} | {figure.format(before)} | {figure.format(after)} | {change(figure, before, after)} |"
        )
    return lines


def as_dict(r: BeforeAfterResult) -> dict[str, object]:
    return {**asdict(r), "before": r.before, "after": r.after}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round, no webhook figure")
    parser.add_argument(
        "--baseline", default=BASELINE, help="the commit to compare against (default: %(default)s)"
    )
    parser.add_argument("--rounds", type=int, help="before/after pairs per figure (default: 1 quick, 2 full)")
    parser.add_argument(
        "--webhook", action=argparse.BooleanOptionalAction, default=None, help="default: on, off with --quick"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child, args.root, json.loads(args.params))
        return
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    try:
        result = run_before_after(
            quick=args.quick, baseline=args.baseline, rounds=args.rounds, webhook=args.webhook
        )
    except BaselineError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(json.dumps(as_dict(result), indent=2) if args.json else "\n".join(before_after_rows(result)))


if __name__ == "__main__":
    main()
