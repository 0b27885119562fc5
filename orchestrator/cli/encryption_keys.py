"""``orchestrator keys rotate-data | retire KEYID | encryption-status | new-master-key``: the
encryption keys at rest, straight on the stores (docs/security.md, "Encryption at rest").
Rotating re-seals the stored secrets too, and retiring refuses while a secret needs the key."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.cli.args import Parents, store_settings
from orchestrator.cli.errors import CliError
from orchestrator.cli.output import Advance, Output
from orchestrator.crypto import rotation, setup
from orchestrator.crypto.codec import EncryptedCodec
from orchestrator.crypto.keyring import KeyringError, new_master_key
from orchestrator.ports import EventLog
from orchestrator.secrets.keyring_sealing import ResealReport, reseal, secrets_under
from orchestrator.settings import Settings
from orchestrator.stores import open_secret_store, open_stores

CHECKPOINT = "rotate-data.json"


def add_commands(sub: Any, parents: Parents) -> None:
    """The ``keys`` group, holding the encryption actions (API key actions join it)."""
    parser: argparse.ArgumentParser = sub.add_parser("keys", help="encryption keys at rest (and API keys)")
    actions = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    add_actions(actions, parents)


def add_actions(actions: Any, parents: Parents) -> None:
    p = actions.add_parser(
        "rotate-data",
        parents=[parents.stores],
        help="re-encrypt stored events and snapshots under the current master key (online, resumable)",
    )
    p.add_argument("--checkpoint", metavar="FILE", help=f"resume file (default: <state dir>/{CHECKPOINT})")
    p.set_defaults(handler=cmd_rotate)
    p = actions.add_parser(
        "retire", parents=[parents.stores], help="forget a master key's data keys; refused while data needs it"
    )
    p.add_argument("key_id", metavar="KEYID")
    p.set_defaults(handler=cmd_retire)
    p = actions.add_parser(
        "encryption-status", parents=[parents.stores], help="the keyring, and stored rows per key id"
    )
    p.set_defaults(handler=cmd_status)
    p = actions.add_parser("new-master-key", parents=[parents.json], help="print a fresh random master key (base64)")
    p.set_defaults(handler=cmd_new)


def _settings(args: argparse.Namespace) -> Settings:
    settings = store_settings(args)
    try:
        if setup.keyring_of(settings) is None:
            raise CliError(
                "encryption at rest is off: set ORCHESTRATOR_ENCRYPTION_KEYRING (a keyring file) or"
                " ORCHESTRATOR_ENCRYPTION_KEYS", 2
            )
    except KeyringError as exc:
        raise CliError(str(exc), 2) from None
    return settings


def _codec(log: EventLog) -> EncryptedCodec:
    codec = getattr(log, "codec", None)
    if not isinstance(codec, EncryptedCodec):
        raise CliError(f"{type(log).__name__} keeps nothing at rest to encrypt", 2)
    return codec


def cmd_rotate(args: argparse.Namespace, out: Output) -> int:
    settings = _settings(args)
    state = Path(settings.state_dir) if settings.state_dir else None
    checkpoint = Path(args.checkpoint) if args.checkpoint else (state or _default_state()) / CHECKPOINT
    report, secrets = asyncio.run(_rotate(settings, checkpoint, out))
    if out.json:
        out.value({**report.to_dict(), "secrets": secrets.to_dict()})
        return 0
    resumed = f" ({report.skipped} done before, skipped)" if report.skipped else ""
    out.line(f"{report.rewritten} rows re-encrypted under {report.current_key} in {report.executions} executions{resumed}")
    out.line(f"{secrets.resealed} secrets re-sealed under {secrets.current_key} ({secrets.current} already were)")
    return 0


async def _rotate(settings: Settings, checkpoint: Path, out: Output) -> tuple[rotation.RotationReport, ResealReport]:
    async with open_stores(settings) as (log, _):
        codec = _codec(log)
        try:
            total = await rotation.count_executions(log)
            with out.progress(f"re-encrypting under {codec.keys.current_id}", total, "executions") as advance:
                report = await rotation.rotate(log, codec, checkpoint, advance)
        except rotation.NotRotatable as exc:
            raise CliError(str(exc), 2) from None
        async with open_secret_store(settings, log=log) as store:
            return report, await reseal(store)


def cmd_retire(args: argparse.Namespace, out: Output) -> int:
    settings = _settings(args)
    keyring = setup.keyring_of(settings)
    try:
        forgotten = asyncio.run(_retire(settings, keyring.current if keyring else None, args.key_id))
    except rotation.KeyStillNeeded as exc:
        raise CliError(str(exc)) from None
    if out.json:
        out.value({"key_id": args.key_id, "data_keys_deleted": forgotten})
        return 0
    out.line(f"retired {args.key_id}: {forgotten} data keys deleted; now remove it from the keyring")
    return 0


async def _retire(settings: Settings, current: str | None, key_id: str) -> int:
    async with open_stores(settings) as (log, _):
        if key_id != current:
            async with open_secret_store(settings, log=log) as store:
                needing = await secrets_under(store, key_id)
            if needing:
                raise rotation.KeyStillNeeded(
                    f"key {key_id!r} still seals {needing} stored secrets: run 'orchestrator keys rotate-data' first"
                )
        return await rotation.retire(log, current, key_id)


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    settings = store_settings(args)
    try:
        status = setup.status_of(setup.keyring_of(settings))
    except KeyringError as exc:
        raise CliError(str(exc), 2) from None
    with out.progress("scanning", unit="executions") as advance:
        usage = asyncio.run(_usage(settings, advance))
    if out.json:
        out.value({**status.to_dict(), **usage.to_dict()})
        return 0
    out.line(f"encryption at rest: {'on, current key ' + str(status.current_key) if status.enabled else 'off'}")
    rows = [(k["key_id"], k["rows"], k["executions"]) for k in usage.to_dict()["keys"]]
    out.table(("KEY", "ROWS", "EXECUTIONS"), rows)
    return 0


async def _usage(settings: Settings, advance: Advance) -> rotation.Usage:
    async with open_stores(settings) as (log, _):
        try:
            return await rotation.usage(log, advance)
        except rotation.NotRotatable as exc:
            raise CliError(str(exc), 2) from None


def cmd_new(args: argparse.Namespace, out: Output) -> int:
    key = new_master_key()
    if out.json:
        out.value({"key": key})
    else:
        out.line(key)
    return 0


def _default_state() -> Path:
    return Path(tempfile.gettempdir()) / "orchestrator-state"
