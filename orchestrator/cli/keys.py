"""``orchestrator keys create | list | revoke | rotate``: API keys, straight on the server's
store (the event log's backend), so the first admin key is made here. The key is printed once.
The same group holds the encryption key actions (``orchestrator.cli.encryption_keys``)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from orchestrator.auth.apikeys import (
    DEFAULT_OVERLAP,
    KeyService,
    KeyStateError,
    UnknownKey,
    key_view,
    parse_duration,
)
from orchestrator.auth.control import AccessControl, access_control
from orchestrator.auth.roles import RoleInvalid
from orchestrator.cli import encryption_keys
from orchestrator.cli.args import Parents, store_settings, tenant_arg
from orchestrator.cli.errors import CliError
from orchestrator.cli.local import cli_actor
from orchestrator.cli.output import Output
from orchestrator.settings import Settings
from orchestrator.stores import open_access_store

ALL_TENANTS = "*"


def duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_commands(sub: Any, parents: Parents) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "keys", help="API keys (create, list, revoke, rotate) and encryption keys at rest"
    )
    actions = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    encryption_keys.add_actions(actions, parents)
    p = actions.add_parser("create", parents=[parents.stores], help="make a key and print it (once)")
    p.add_argument("--role", action="append", required=True, metavar="ROLE",
                   help="viewer, operator, developer, admin, auditor or a custom role (repeatable)")  # fmt: skip
    p.add_argument("--tenant", type=tenant_arg, default="default", help="its tenant (default: default)")
    p.add_argument("--all-tenants", action="store_true", help="bind the roles in every tenant")
    p.add_argument("--name", default="key", help="what it is for (default: key)")
    p.add_argument("--owner", help="the person it belongs to (none: a service account)")
    p.add_argument("--expires-in", type=duration_arg, metavar="D", help="e.g. 90d, 12h (default: never)")
    p.set_defaults(handler=cmd_create)
    p = actions.add_parser("list", parents=[parents.stores], help="every key (never the secrets)")
    p.add_argument("--tenant", type=tenant_arg, help="only keys of this tenant")
    p.set_defaults(handler=cmd_list)
    p = actions.add_parser("revoke", parents=[parents.stores], help="revoke a key now (it stays listed)")
    p.add_argument("key_id")
    p.set_defaults(handler=cmd_revoke)
    p = actions.add_parser("rotate", parents=[parents.stores], help="a new key; the old one expires after --overlap")
    p.add_argument("key_id")
    p.add_argument("--overlap", type=duration_arg, default=DEFAULT_OVERLAP, metavar="D",
                   help="how long the old key keeps working (default: 1d)")  # fmt: skip
    p.set_defaults(handler=cmd_rotate)


def _with_control(settings: Settings, work: Callable[[AccessControl], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        async with open_access_store(settings) as store:
            try:
                control = access_control(store, settings)
            except RoleInvalid as exc:
                raise CliError(str(exc), 2) from None
            return await work(control)

    return asyncio.run(go())


def _when(seconds: object) -> str | None:
    if not isinstance(seconds, int | float):
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _show_created(out: Output, view: dict[str, Any], key: str) -> None:
    if out.json:
        out.value({"key": key, **view})
        return
    out.line(key)
    out.note(f"API key {view['key_id']} ({view['name']}) in tenant {view['tenant']}: "
             f"roles {_roles_text(view['roles'])}, expires {_when(view['expires_at']) or 'never'}")  # fmt: skip
    out.note("this is the only time the key is shown; send it as 'Authorization: Bearer <key>'"
             " (the CLI reads ORCHESTRATOR_API_KEY)")  # fmt: skip


def _roles_text(roles: dict[str, list[str]]) -> str:
    return "; ".join(f"{','.join(names)} in {'every tenant' if scope == ALL_TENANTS else scope}"
                     for scope, names in roles.items())  # fmt: skip


def cmd_create(args: argparse.Namespace, out: Output) -> int:
    settings = store_settings(args)
    scope = ALL_TENANTS if args.all_tenants else args.tenant

    async def work(control: AccessControl) -> tuple[dict[str, Any], str]:
        try:
            await control.catalog.check_names(args.tenant if scope != ALL_TENANTS else ALL_TENANTS, args.role)
        except RoleInvalid as exc:
            raise CliError(str(exc), 2) from None
        created = await control.keys.create(
            args.name, args.tenant, {scope: args.role}, expires_in=args.expires_in,
            owner=args.owner, created_by=cli_actor(),
        )  # fmt: skip
        return key_view(created.record, control.keys.clock()), created.key

    view, key = _with_control(settings, work)
    _show_created(out, view, key)
    return 0


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    async def work(control: AccessControl) -> list[dict[str, Any]]:
        now = control.keys.clock()
        return [key_view(record, now) for record in await control.keys.list(args.tenant)]

    views: list[dict[str, Any]] = _with_control(store_settings(args), work)
    if out.json:
        out.value(views)
        return 0
    rows = [
        (v["key_id"], v["name"], v["tenant"], _roles_text(v["roles"]), v["owner"] or "(service)",
         v["status"], _when(v["expires_at"]), _when(v["last_used_at"]), v["replaced_by"])
        for v in views
    ]  # fmt: skip
    out.table(("ID", "NAME", "TENANT", "ROLES", "OWNER", "STATUS", "EXPIRES", "LAST USED", "REPLACED BY"), rows)
    return 0


async def _known(keys: KeyService, key_id: str) -> None:
    try:
        await keys.get(key_id)
    except UnknownKey as exc:
        raise CliError(str(exc), 1) from None


def cmd_revoke(args: argparse.Namespace, out: Output) -> int:
    async def work(control: AccessControl) -> dict[str, Any]:
        await _known(control.keys, args.key_id)
        return key_view(await control.keys.revoke(args.key_id), control.keys.clock())

    view = _with_control(store_settings(args), work)
    if out.json:
        out.value(view)
    else:
        out.line(f"revoked {view['key_id']} ({view['name']}) at {_when(view['revoked_at'])}")
    return 0


def cmd_rotate(args: argparse.Namespace, out: Output) -> int:
    async def work(control: AccessControl) -> tuple[dict[str, Any], str, dict[str, Any]]:
        await _known(control.keys, args.key_id)
        try:
            created, old = await control.keys.rotate(args.key_id, overlap=args.overlap, created_by=cli_actor())
        except KeyStateError as exc:
            raise CliError(str(exc), 1) from None
        now = control.keys.clock()
        return key_view(created.record, now), created.key, key_view(old, now)

    view, key, old = _with_control(store_settings(args), work)
    if out.json:
        out.value({"key": key, **view, "previous": old})
        return 0
    _show_created(out, view, key)
    out.note(f"the old key {old['key_id']} keeps working until {_when(old['expires_at'])}")
    return 0
