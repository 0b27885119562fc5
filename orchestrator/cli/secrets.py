"""``orchestrator secrets set|list|delete|reseal|keygen``: the encrypted secret store, straight on
the event log's backend (``ORCHESTRATOR_EVENT_LOG_URL``), sealed by the encryption keyring when one
is configured, else with ``ORCHESTRATOR_SECRETS_KEY`` (``orchestrator.secrets.keyring_sealing``).

A value is read from stdin (a prompt without echo on a terminal) or ``--from-file``, never from
the command line, where shell history and ``ps`` would keep it. One trailing newline is dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import Any

from orchestrator.audit.record import Outcome, Resource
from orchestrator.cli.args import Parents, store_settings, tenant_arg
from orchestrator.cli.errors import CliError
from orchestrator.cli.local import cli_actor
from orchestrator.cli.output import Output
from orchestrator.ports import SecretInfo, SecretsUnavailable
from orchestrator.secrets.keyring_sealing import ResealReport, reseal
from orchestrator.secrets.sealing import new_key
from orchestrator.secrets.stores import MAX_VALUE_BYTES, InvalidSecretName
from orchestrator.settings import Settings
from orchestrator.stores import open_audit_trail, open_secret_store
from schemas.tenant import DEFAULT_TENANT


def add_commands(sub: Any, parents: Parents) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "secrets", help="stored secrets that steps reference as secret('NAME') (values never shown)"
    )
    actions = parser.add_subparsers(dest="secrets_command", required=True, metavar="ACTION")
    tenant = argparse.ArgumentParser(add_help=False)
    tenant.add_argument("--tenant", type=tenant_arg, default=DEFAULT_TENANT, help="default: %(default)s")
    p = actions.add_parser("set", parents=[parents.stores, tenant], help="create or replace a secret")
    p.add_argument("name")
    p.add_argument("--from-file", metavar="PATH", help="read the value from a file (default: stdin)")
    p.set_defaults(handler=cmd_set)
    p = actions.add_parser("list", parents=[parents.stores, tenant], help="names and times, never values")
    p.set_defaults(handler=cmd_list)
    p = actions.add_parser("delete", parents=[parents.stores, tenant], help="remove a secret")
    p.add_argument("name")
    p.set_defaults(handler=cmd_delete)
    p = actions.add_parser(
        "reseal", parents=[parents.stores], help="seal every stored secret again under the current key"
    )
    p.set_defaults(handler=cmd_reseal)
    p = actions.add_parser("keygen", parents=[parents.json], help="print a new ORCHESTRATOR_SECRETS_KEY")
    p.set_defaults(handler=cmd_keygen)


def cmd_set(args: argparse.Namespace, out: Output) -> int:
    value = _read_value(args.from_file)
    info = asyncio.run(_run(store_settings(args), "put", args.tenant, args.name, value))
    assert isinstance(info, SecretInfo)
    if out.json:
        out.value(info.to_dict())
    else:
        out.line(f"stored secret {info.name} for tenant {info.tenant} (key {info.key_id})")
    return 0


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    found = asyncio.run(_run(store_settings(args), "list", args.tenant))
    assert isinstance(found, list)
    if out.json:
        out.value([info.to_dict() for info in found])
        return 0
    for info in found:
        out.line(f"{info.name}\tupdated {info.updated_at}\tkey {info.key_id}")
    if not found:
        out.note(f"no stored secrets for tenant {args.tenant}")
    return 0


def cmd_delete(args: argparse.Namespace, out: Output) -> int:
    deleted = asyncio.run(_run(store_settings(args), "delete", args.tenant, args.name))
    if out.json:
        out.value({"name": args.name, "tenant": args.tenant, "deleted": bool(deleted)})
    elif deleted:
        out.line(f"deleted secret {args.name} of tenant {args.tenant}")
    if not deleted:
        raise CliError(f"no stored secret {args.name!r} for tenant {args.tenant}")
    return 0


def cmd_reseal(args: argparse.Namespace, out: Output) -> int:
    report = asyncio.run(_reseal(store_settings(args)))
    if out.json:
        out.value(report.to_dict())
    else:
        out.line(f"{report.resealed} secrets re-sealed under {report.current_key} ({report.current} already were)")
    return 0


async def _reseal(settings: Settings) -> ResealReport:
    try:
        async with open_secret_store(settings) as store:
            report = await reseal(store)
    except SecretsUnavailable as exc:
        raise CliError(str(exc), 2) from None
    async with open_audit_trail(settings) as trail:
        await trail.record(
            "secrets:reseal",
            actor=cli_actor(),
            resource=Resource("secrets"),
            details={"resealed": report.resealed, "key_id": report.current_key},
        )
    return report


def cmd_keygen(args: argparse.Namespace, out: Output) -> int:
    key = new_key()
    if out.json:
        out.value({"key": key})
    else:
        out.line(key)
    return 0


async def _run(settings: Settings, action: str, tenant: str, *rest: str) -> object:
    """One action on the store; writes are recorded in the audit trail (never the value)."""
    try:
        async with open_secret_store(settings) as store:
            if action == "list":
                return await store.list(tenant)
            done: object = await (
                store.put(tenant, rest[0], rest[1]) if action == "put" else store.delete(tenant, rest[0])
            )
    except (SecretsUnavailable, InvalidSecretName) as exc:
        raise CliError(str(exc), 2) from None
    async with open_audit_trail(settings) as trail:
        outcome: Outcome = "ok" if done else "failed"
        verb = "write" if action == "put" else "delete"
        await trail.record(
            f"secrets:{verb}",
            actor=cli_actor(),
            resource=Resource("secrets", rest[0]),
            tenant=tenant,
            outcome=outcome,
        )
    return done


def _read_value(path: str | None) -> str:
    if path is not None:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}", 2) from None
    elif sys.stdin.isatty():
        raw = getpass.getpass("value: ").encode()
    else:
        raw = sys.stdin.buffer.read(MAX_VALUE_BYTES + 1)
    if len(raw) > MAX_VALUE_BYTES:
        raise CliError(f"a secret value is at most {MAX_VALUE_BYTES} bytes", 2)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError("a secret value must be UTF-8 text", 2) from None
    text = text[:-1] if text.endswith("\n") else text
    if text.endswith("\r"):
        text = text[:-1]
    if not text:
        raise CliError("the secret value is empty", 2)
    return text
