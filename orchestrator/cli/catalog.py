"""``orchestrator catalog ...``: publish, search, show, review, moderate and install catalog
templates on a running server, and remote catalogs (``catalog add``, ``catalog list``,
``--catalog NAME``) whose downloads are verified against a pinned key (docs/catalog.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from urllib.parse import quote

from orchestrator.cli.args import Parents, key_values
from orchestrator.cli.catalogs import (
    RemoteCatalog,
    catalogs_file,
    load_catalogs,
    remote_catalog,
    save_catalog,
    verified,
)
from orchestrator.cli.client import API, Client, remote
from orchestrator.cli.errors import CliError
from orchestrator.cli.output import Output

BASE = "/catalog"


def add_commands(sub: Any, parents: Parents) -> None:
    parser = sub.add_parser("catalog", help="the template catalog: publish, search, review, moderate, install")
    actions = parser.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    server = [parents.server]
    add_publish(actions, server)
    p = actions.add_parser("search", parents=server, help="search templates")
    p.add_argument("q", nargs="?")
    for flag in ("category", "tag", "author", "engine"):
        p.add_argument(f"--{flag}")
    p.add_argument("--catalog", help="a remote catalog added with 'catalog add'")
    p.set_defaults(handler=remote(search))
    p = actions.add_parser("show", parents=server, help="a template: versions, rating, reviews")
    p.add_argument("id")
    p.set_defaults(handler=remote(show))
    add_review(actions, server)
    p = actions.add_parser("moderate", parents=server, help="approve, reject or unlist a version")
    p.add_argument("id")
    p.add_argument("version")
    p.add_argument("action", choices=("approve", "reject", "unlist"))
    p.add_argument("--reason")
    p.set_defaults(handler=remote(moderate))
    p = actions.add_parser("install", parents=server, help="install a template version in the tenant")
    p.add_argument("id")
    p.add_argument("version", nargs="?", help="default: the latest approved")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="a parameter (repeatable)")
    p.add_argument("--catalog", help="download from a remote catalog, verified, and register it here")
    p.set_defaults(handler=remote(install))
    p = actions.add_parser("add", parents=server, help="add a remote catalog (pins its public key)")
    p.add_argument("name")
    p.add_argument("catalog_url", metavar="URL")
    p.add_argument("--key-env", help="the variable holding an API key for that server")
    p.add_argument("--public-key", help="its public key (base64); default: fetched from it now")
    p.set_defaults(handler=remote(add_catalog))
    p = actions.add_parser("list", parents=[parents.json], help="the remote catalogs added")
    p.set_defaults(handler=list_catalogs)


def add_publish(actions: Any, server: list[argparse.ArgumentParser]) -> None:
    """``publish FILE`` (also ``templates publish``)."""
    p = actions.add_parser("publish", parents=server, help="publish a template document (JSON file)")
    p.add_argument("file")
    p.set_defaults(handler=publish_file)


def add_review(actions: Any, server: list[argparse.ArgumentParser], name: str = "review") -> None:
    """``review ID --rating N [--text T]``; ``rate ID N`` is the same with the rating alone
    (also ``templates review`` and ``templates rate``): one review per principal, editable."""
    if name == "rate":
        p = actions.add_parser("rate", parents=server, help="rate a template (1-5): a review without text")
        p.add_argument("id")
        p.add_argument("rating", type=int, choices=range(1, 6), metavar="1-5")
        p.set_defaults(text="")
    else:
        p = actions.add_parser("review", parents=server, help="rate (1-5) and review a template")
        p.add_argument("id")
        p.add_argument("--rating", type=int, required=True, choices=range(1, 6), metavar="1-5")
        p.add_argument("--text", default="")
    p.set_defaults(handler=remote(review))


def template_path(template_id: str, *rest: str) -> str:
    return "/".join([BASE + "/templates", *(quote(part, safe="") for part in (template_id, *rest))])


def publish_file(args: argparse.Namespace, out: Output) -> int:
    try:
        args.document = Path(args.file).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}", 2) from None
    return remote(publish)(args, out)


async def publish(client: Client, args: argparse.Namespace, out: Output) -> int:
    headers = {"Content-Type": "application/json"}
    status, answer = await client.call("POST", API + BASE + "/templates", data=args.document, headers=headers)
    if out.json:
        out.value(answer)
    else:
        what = "published" if status == 201 else "already published"
        out.line(f"{what} {answer['id']}@{answer['version']} ({answer['status']}) {answer['checksum']}")
    return 0


def summary_rows(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    rows = []
    for item in items:
        rating = item.get("rating") or {}
        average = "-" if rating.get("average") is None else f"{rating['average']:.1f} ({rating.get('count')})"
        rows.append((item["id"], item["version"], item.get("status", ""), average, item.get("author", ""), item.get("title", "")))
    return rows


async def search(client: Client, args: argparse.Namespace, out: Output) -> int:
    params = {k: v for k in ("q", "category", "tag", "author", "engine") if (v := getattr(args, k))}
    if args.catalog:
        found = remote_catalog(catalogs_file(), args.catalog)
        async with Client(found.url, api_key=found.api_key) as other:
            answer = await other.get(BASE + "/templates", params)
    else:
        answer = await client.get(BASE + "/templates", params)
    if out.json:
        out.value(answer)
    else:
        out.table(("ID", "VERSION", "STATUS", "RATING", "AUTHOR", "TITLE"), summary_rows(answer["items"]))
    return 0


async def show(client: Client, args: argparse.Namespace, out: Output) -> int:
    answer = await client.get(template_path(args.id))
    if out.json:
        out.value(answer)
        return 0
    out.table(("ID", "VERSION", "STATUS", "RATING", "AUTHOR", "TITLE"), summary_rows([answer]))
    out.line(f"versions: {', '.join(answer['versions'])}")
    for item in answer.get("reviews", []):
        out.line(f"  {item['rating']}/5 {item['reviewer']}: {item['text']} [{item['status']}]")
    return 0


async def review(client: Client, args: argparse.Namespace, out: Output) -> int:
    body = {"rating": args.rating, "text": args.text}
    _, answer = await client.call("PUT", API + template_path(args.id, "review"), body=body)
    if out.json:
        out.value(answer)
    else:
        out.line(f"reviewed {args.id}: {answer['rating']}/5")
    return 0


async def moderate(client: Client, args: argparse.Namespace, out: Output) -> int:
    body = {"action": args.action, "reason": args.reason}
    answer = await client.post(template_path(args.id, "versions", args.version, "moderation"), body)
    if out.json:
        out.value(answer)
    else:
        out.line(f"{answer['id']}@{answer['version']} is {answer['status']}")
    return 0


async def latest_version(client: Client, template_id: str) -> str:
    return str((await client.get(template_path(template_id)))["version"])


async def install(client: Client, args: argparse.Namespace, out: Output) -> int:
    params = key_values(args.param)
    if args.catalog:
        answer = await install_remote(client, remote_catalog(catalogs_file(), args.catalog), args, params)
    else:
        version = args.version or await latest_version(client, args.id)
        path = template_path(args.id, "versions", version, "install")
        answer = await client.post(path, {"parameters": params})
    if out.json:
        out.value(answer)
    else:
        out.line(f"installed {args.id}@{answer.get('version')}: workflow {answer.get('workflow')} v{answer.get('workflow_version')}")
    return 0


async def install_remote(
    client: Client, found: RemoteCatalog, args: argparse.Namespace, params: dict[str, Any]
) -> dict[str, Any]:
    """Download from the remote catalog, verify checksum and signature, register the workflow."""
    async with Client(found.url, api_key=found.api_key) as other:
        version = args.version or await latest_version(other, args.id)
        document = verified(await other.get(template_path(args.id, "versions", version)), found.public_key)
    schema = document.get("parameters")
    if params or (isinstance(schema, dict) and schema.get("properties")):
        raise CliError("a template with parameters installs through its own server's catalog", 2)
    workflow = document.get("workflow")
    if not isinstance(workflow, dict):
        raise CliError("the template has no workflow to install", 2)
    stored = await client.post("/definitions", workflow)
    return {"template": args.id, "version": version, "workflow": stored.get("name"), "workflow_version": stored.get("version")}


async def add_catalog(client: Client, args: argparse.Namespace, out: Output) -> int:
    key = args.public_key
    if not key:
        async with Client(args.catalog_url) as other:
            env_key = RemoteCatalog(args.name, args.catalog_url, "", args.key_env).api_key
            other.api_key = env_key
            key = (await other.get(BASE + "/key"))["key"]
    save_catalog(catalogs_file(), RemoteCatalog(args.name, args.catalog_url.rstrip("/"), key, args.key_env))
    out.line(f"added catalog {args.name} at {args.catalog_url} (key {key[:16]}...)")
    return 0


def list_catalogs(args: argparse.Namespace, out: Output) -> int:
    known = load_catalogs(catalogs_file())
    if out.json:
        out.value({name: {"url": c.url, "key_env": c.key_env, "public_key": c.public_key} for name, c in known.items()})
    else:
        out.table(("NAME", "URL", "KEY ENV", "PUBLIC KEY"), [(c.name, c.url, c.key_env or "", c.public_key[:16] + "...") for c in known.values()])
    return 0
