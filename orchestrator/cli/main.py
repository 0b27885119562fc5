"""The ``orchestrator`` command: the parser of every command group, ``main`` and error printing.

``main(argv)`` returns the exit code: 0 success, 1 a failed/cancelled execution or a runtime
error, 2 a usage, input or definition error. Errors print as one line to stderr, never a
traceback. The current directory goes first on ``sys.path`` so ``python`` steps import the
user's own modules (like uvicorn's app-dir). Each group module adds its own commands
(``add_commands(sub, parents)``) and imports nothing from here.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from orchestrator.auth.roles import RoleInvalid
from orchestrator.backends.urls import UnknownBackend
from orchestrator.cli import (
    analytics,
    audit,
    catalog,
    cluster,
    data,
    dead_letters,
    definitions,
    doctor,
    executions,
    keys,
    limits,
    local,
    quotas,
    redrive,
    replay,
    report,
    retention,
    scan,
    schedules,
    secrets,
    serve,
    templates,
    triggers,
)
from orchestrator.cli.args import parents
from orchestrator.cli.errors import CliError, problem_lines
from orchestrator.cli.output import Output
from orchestrator.observability.logs import configure as configure_logging
from orchestrator.ports import BackendUnavailable, HookTaken, UnknownWorkflow
from orchestrator.runtime import InputInvalid
from orchestrator.settings import Settings, SettingsError
from schemas.validation import DefinitionError

GROUPS = (
    local, serve, keys, retention, replay, data, audit, definitions, executions, redrive, triggers, schedules,
    dead_letters, scan, cluster, quotas, limits, doctor, analytics, report, secrets, templates, catalog,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Event-sourced workflow orchestrator: run, serve, validate, demo and control.",
        epilog="New here? Try 'orchestrator demo'. Tables and progress bars are drawn on a "
        "terminal; piped output stays plain text, and --json prints JSON only.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = parents()
    for group in GROUPS:
        group.add_commands(sub, shared)
    return parser


def _error_of(exc: BaseException) -> CliError | None:
    """The one-line report of a known exception."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, DefinitionError):
        return CliError("invalid workflow definition", 2, problem_lines(exc.problems))
    if isinstance(exc, InputInvalid):
        return CliError("the input does not match the input schema", 2, problem_lines(exc.problems))
    if isinstance(exc, UnknownWorkflow | SettingsError | UnknownBackend | HookTaken | RoleInvalid):
        return CliError(str(exc), 2)
    if isinstance(exc, BackendUnavailable | OSError):
        return CliError(str(exc))
    return None


def _log_format() -> str:
    """ORCHESTRATOR_LOG_FORMAT (text when it is invalid: the command then reports the settings error)."""
    try:
        return Settings.from_env().log_format
    except SettingsError:
        return "text"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run one command; returns the exit code."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    level = logging.INFO if args.verbose or args.command in ("serve", "worker") else logging.WARNING
    configure_logging(level, _log_format())
    if not args.verbose:  # our adapters report connection trouble once, clearly; not every retry
        for noisy in ("aiokafka", "cassandra"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
    out = Output(json=bool(getattr(args, "json", False)))
    try:
        return int(args.handler(args, out))
    except KeyboardInterrupt:
        out.note("interrupted")
        return 130
    except Exception as exc:
        error = _error_of(exc) or CliError(f"{type(exc).__name__}: {exc}")
        out.note(f"error: {error}")
        for detail in error.details:
            out.note(f"  {detail}")
        return error.code
