"""``orchestrator scan``: security findings for definitions and the deployment, for people and CI.

Exit code 1 when a finding is at or above ``--fail-on`` (default: high), else 0; ``--json``
prints ``{"findings": [...], "counts": {...}, "failed": bool}``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from orchestrator.auth.apikeys import key_status
from orchestrator.cli.args import Parents, load_file, store_settings
from orchestrator.cli.errors import CliError
from orchestrator.cli.output import Output
from orchestrator.crypto.setup import keyring_of
from orchestrator.scan.definitions import DefinitionPolicy, scan_definition
from orchestrator.scan.deployment import DeploymentFacts, KeyFact, scan_deployment
from orchestrator.scan.findings import Finding, Severity, counts, failing, ordered
from orchestrator.settings import Settings
from orchestrator.stores import open_access_store, open_stores
from schemas.definition import WorkflowDefinition
from schemas.loader import load_data

DEFINITION_SUFFIXES = (".yaml", ".yml", ".json")


def add_commands(sub: Any, parents: Parents) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "scan",
        parents=[parents.stores],
        help="security findings for definitions (files, or the registry) and the deployment",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="definition files or directories of them")
    p.add_argument("--registry-definitions", action="store_true", help="also scan the latest registered definitions")
    p.add_argument("--no-deployment", action="store_true", help="skip the deployment checks")
    p.add_argument(
        "--fail-on", default="high", metavar="SEVERITY", help="exit 1 at or above: high (default), medium, low, info"
    )
    p.set_defaults(handler=cmd_scan)


def cmd_scan(args: argparse.Namespace, out: Output) -> int:
    try:
        threshold = Severity.parse(args.fail_on)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    settings = store_settings(args)
    definitions = [load_file(str(path)) for path in definition_files(args.paths)]
    if args.registry_definitions:
        definitions.extend(asyncio.run(_registered(settings)))
    if not definitions and args.no_deployment:
        raise CliError("nothing to scan: name definition files, or drop --no-deployment", 2)
    facts = None if args.no_deployment else deployment_facts(settings)
    if facts is not None and args.registry_definitions:  # the store is read: its keys too
        facts = dataclasses.replace(facts, keys=asyncio.run(_active_keys(settings)))
    findings = scan_all(definitions, facts, policy(settings))
    failed = bool(failing(findings, threshold))
    if out.json:
        out.value({"findings": [f.to_dict() for f in findings], "counts": counts(findings), "failed": failed})
    elif findings:
        out.table(
            ["SEVERITY", "RULE", "WHERE", "FINDING", "FIX"],
            [(f.severity.label, f.rule, f.target, f.message, f.fix) for f in findings],
        )
    else:
        out.line("no findings")
    if not out.json:
        tally = ", ".join(f"{n} {label}" for label, n in counts(findings).items())
        out.note(f"{len(definitions)} definitions scanned: {tally}")
    return 1 if failed else 0


def scan_all(
    definitions: list[WorkflowDefinition], facts: DeploymentFacts | None, policy: DefinitionPolicy
) -> list[Finding]:
    findings = [f for d in definitions for f in scan_definition(d, policy)]
    if facts is not None:
        findings.extend(scan_deployment(facts))
    return ordered(findings)


def definition_files(paths: list[str]) -> list[Path]:
    """The files named, and the definition files inside the directories named (sorted): YAML
    and JSON files holding a mapping with ``steps`` (inputs and payloads beside them are not)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.suffix in DEFINITION_SUFFIXES and p.is_file())
            files.extend(p for p in candidates if looks_like_definition(p))
        elif path.exists():
            files.append(path)
        else:
            raise CliError(f"no such file or directory: {raw}", 2)
    return files


def looks_like_definition(path: Path) -> bool:
    try:
        data = load_data(path)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "steps" in data


async def _registered(settings: Settings) -> list[WorkflowDefinition]:
    async with open_stores(settings) as (_, registry):
        return await registry.list()


def policy(settings: Settings) -> DefinitionPolicy:
    """What the deployment allows, as far as the settings say (``ORCHESTRATOR_PYTHON_ALLOW``)."""
    return DefinitionPolicy(python_modules=settings.python_allow)


def deployment_facts(settings: Settings) -> DeploymentFacts:
    """The facts the deployment rules judge, from the settings."""
    return DeploymentFacts(
        host=settings.host,
        now=time.time(),
        tls=settings.tls_cert is not None and settings.tls_key is not None,  # what serve would use
        encryption=keyring_of(settings) is not None,  # a malformed keyring is a settings error
        secrets=dict(settings.secrets),
        auth_required=settings.auth,
    )


async def _active_keys(settings: Settings) -> tuple[KeyFact, ...]:
    """The API keys of the store that still work (expired and revoked ones expose nothing)."""
    async with open_access_store(settings) as store:
        now = time.time()
        return tuple(
            KeyFact(key.key_id, key.name, key.expires_at)
            for key in await store.list_keys()
            if key_status(key, now) == "active"
        )
