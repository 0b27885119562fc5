"""What the command groups share to declare and read arguments: the parent parsers, JSON and
definition-file arguments, settings for the commands that work straight on the stores."""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.cli.errors import CliError, problem_lines
from orchestrator.cli.output import Output
from orchestrator.settings import Settings
from schemas import strict_json
from schemas.definition import WorkflowDefinition
from schemas.loader import load_definition
from schemas.tenant import TenantInvalid, check_tenant
from schemas.validation import DefinitionError

DEFAULT_URL = "http://127.0.0.1:8080"

Handler = Callable[[argparse.Namespace, Output], int]  # set as ``handler`` on every command


@dataclass(frozen=True, slots=True)
class Parents:
    """Parent parsers the command groups build on."""

    json: argparse.ArgumentParser  # --json
    server: argparse.ArgumentParser  # --url, --tenant and --json: commands against a running server
    stores: argparse.ArgumentParser  # --event-log, --registry and --json: straight on the stores


def parents() -> Parents:
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="machine-readable JSON output")
    server = argparse.ArgumentParser(add_help=False, parents=[as_json])
    server.add_argument(
        "--url",
        default=os.environ.get("ORCHESTRATOR_URL") or DEFAULT_URL,
        help="server URL (env ORCHESTRATOR_URL; default %(default)s)",
    )
    server.add_argument(
        "--tenant",
        type=tenant_arg,
        default=os.environ.get("ORCHESTRATOR_TENANT") or None,
        help="the tenant to work in, sent as X-Orchestrator-Tenant (env ORCHESTRATOR_TENANT;"
        " default: the server's, default)",
    )
    stores = argparse.ArgumentParser(add_help=False, parents=[as_json])
    stores.add_argument("--event-log", metavar="URL", help="default: env or sqlite:///orchestrator.db")
    stores.add_argument("--registry", metavar="URL", help="default: env, else the event log's URL")
    return Parents(as_json, server, stores)


def tenant_arg(value: str) -> str:
    """``--tenant``: a valid tenant name, else a usage error."""
    try:
        return check_tenant(value)
    except TenantInvalid as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def store_settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings from the environment, with ``--event-log`` and ``--registry`` (and ``overrides``)."""
    return Settings.from_env().with_overrides(
        event_log_url=args.event_log, registry_url=args.registry, **overrides
    )


def finite_number(text: str) -> float:
    """An argparse type for seconds and rates: a finite number >= 0 (not ``nan`` or ``inf``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number >= 0")
    return value


def parse_json_arg(raw: str | None, what: str) -> Any:
    """``--input``/``--payload``: inline JSON, or ``@path`` to read it from a file."""
    if raw is None:
        return None
    text, source = raw, what
    if raw.startswith("@"):
        source = raw[1:]
        try:
            text = Path(source).read_bytes().decode("utf-8")
        except OSError as exc:
            raise CliError(f"cannot read {what} file {source}: {exc.strerror}", code=2) from None
        except UnicodeDecodeError as exc:
            raise CliError(f"{source} is not UTF-8 (invalid byte at position {exc.start})", code=2) from None
    try:
        return strict_json.loads(text)  # what the server accepts: no NaN, Infinity or 1e400
    except strict_json.StrictJSONError as exc:
        raise CliError(f"{source} is not valid JSON: {exc}", code=2) from None


def load_file(path: str) -> WorkflowDefinition:
    """Load one definition; CliError (exit 2) listing every problem, prefixed by the file."""
    try:
        return load_definition(path)
    except DefinitionError as exc:
        raise CliError(f"invalid workflow definition {path}", 2, problem_lines(exc.problems)) from None


def key_values(pairs: list[str], shape: str = "NAME=VALUE") -> dict[str, Any]:
    """``--param`` pairs: each value is JSON when it parses as JSON, else the text."""
    found: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--param {pair!r}: expected {shape}", 2)
        try:
            found[key] = json.loads(value)
        except ValueError:
            found[key] = value
    return found
