"""``orchestrator templates list|show|render|test|install|upgrade|from-workflow``
(docs/templates.md). ``list``, ``show``, ``render`` and ``test`` run locally over the shipped
library plus ``--path`` folders or files; ``install``, ``upgrade`` and ``from-workflow`` talk to
the server (``templates:install``, ``definitions:read``). A TEMPLATE is ``id[@range]`` from the
library or a path to a template file."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import yaml

from orchestrator.cli.args import Parents, key_values
from orchestrator.cli.catalog import add_publish, add_review
from orchestrator.cli.client import Client, remote
from orchestrator.cli.errors import CliError
from orchestrator.cli.output import Output
from orchestrator.templates.extract import from_workflow
from orchestrator.templates.installer import engine_version
from orchestrator.templates.library import TemplateLibrary, as_mapping, load_file
from orchestrator.templates.render import render
from orchestrator.templates.testing import run_tests
from schemas.definition_diff import render as render_diff
from schemas.template import WorkflowTemplate
from schemas.validation import parse_definition


def add_commands(sub: Any, parents: Parents) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("templates", help="workflow templates: render, test, install")
    actions = parser.add_subparsers(dest="templates_command", required=True, metavar="ACTION")
    local = argparse.ArgumentParser(add_help=False, parents=[parents.json])
    local.add_argument("--path", action="append", default=[], help="another template folder or file (repeatable)")
    params = argparse.ArgumentParser(add_help=False)
    params.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter; VALUE is JSON when it parses, else a string (repeatable)")  # fmt: skip
    params.add_argument("--params", metavar="FILE", help="parameters from a YAML/JSON file")
    params.add_argument("--name", help="the workflow name (default: the template's)")
    p = actions.add_parser("list", parents=[local], help="the templates in the library")
    p.set_defaults(handler=cmd_list)
    p = actions.add_parser("show", parents=[local], help="one template document")
    p.add_argument("template")
    p.set_defaults(handler=cmd_show)
    p = actions.add_parser("render", parents=[local, params], help="render into a definition (YAML)")
    p.add_argument("template")
    p.set_defaults(handler=cmd_render)
    p = actions.add_parser("test", parents=[local], help="run test cases in memory (all templates: --all)")
    p.add_argument("template", nargs="?")
    p.add_argument("--all", action="store_true", help="every template in the library")
    p.add_argument("--case", help="only this case")
    p.set_defaults(handler=cmd_test)
    p = actions.add_parser("install", parents=[parents.server, params], help="render and register on the server")
    p.add_argument("template")
    p.add_argument("--path", action="append", default=[], help="another template folder or file")
    p.set_defaults(handler=remote(cmd_install))
    p = actions.add_parser("upgrade", parents=[parents.server], help="re-render an installed workflow")
    p.add_argument("workflow")
    p.add_argument("--to", required=True, metavar="VERSION", help="the template version (or range)")
    p.add_argument("--yes", action="store_true", help="register it (default: show the diff only)")
    p.set_defaults(handler=remote(cmd_upgrade))
    p = actions.add_parser("from-workflow", parents=[parents.server], help="a template from a registered workflow")
    p.add_argument("workflow")
    p.add_argument("--version", type=int)
    p.add_argument("--param", action="append", default=[], metavar="PATH=NAME",
                   help="lift the value at PATH (e.g. steps.charge.config.url) into parameter NAME")  # fmt: skip
    p.add_argument("--id", help="template id (default: the workflow name)")
    p.add_argument("--output", "-o", help="write the template here (default: stdout)")
    p.set_defaults(handler=remote(cmd_from_workflow))
    # The catalog's publish, review and rate, under ``templates`` too (docs/templates.md).
    add_publish(actions, [parents.server])
    add_review(actions, [parents.server])
    add_review(actions, [parents.server], "rate")


def library(args: argparse.Namespace) -> TemplateLibrary:
    return TemplateLibrary.from_paths([Path(p) for p in args.path])


def pick(reference: str, lib: TemplateLibrary) -> WorkflowTemplate:
    path = Path(reference)
    if path.suffix in (".yaml", ".yml", ".json") and path.exists():
        template = load_file(path)
        lib.add(template)
        return template
    return lib.find(reference, "template")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if args.params:
        data = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise CliError(f"{args.params}: parameters must be a mapping", 2)
        values.update(data)
    values.update(key_values(args.param))
    return values


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    templates = library(args).all()
    if out.json:
        out.value([t.metadata.model_dump(mode="json") for t in templates])
        return 0
    for t in templates:
        out.line(f"{t.metadata.id}@{t.metadata.version}\t{', '.join(t.metadata.categories)}\t{t.metadata.title}")
    return 0


def cmd_show(args: argparse.Namespace, out: Output) -> int:
    data = as_mapping(pick(args.template, library(args)))
    if out.json:
        out.value(data)
    else:
        out.line(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())
    return 0


def cmd_render(args: argparse.Namespace, out: Output) -> int:
    lib = library(args)
    rendered = render(pick(args.template, lib), parameters(args), lib, name=args.name, engine=engine_version())
    data = rendered.definition.model_dump(mode="json", exclude_none=True)
    if out.json:
        out.value(data)
    else:
        out.line(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())
    return 0


def cmd_test(args: argparse.Namespace, out: Output) -> int:
    lib = library(args)
    if args.all:
        chosen = lib.all()
    elif args.template:
        chosen = [pick(args.template, lib)]
    else:
        raise CliError("name a template or give --all", 2)

    async def go() -> list[Any]:
        return [r for t in chosen for r in await run_tests(t, lib, args.case)]

    results = asyncio.run(go())
    if out.json:
        out.value([r.to_dict() for r in results])
    else:
        for r in results:
            out.line(f"{'PASS' if r.passed else 'FAIL'}  {r.template} :: {r.case}")
            for problem in r.problems:
                out.line(f"      {problem}")
        out.note(f"{sum(r.passed for r in results)} of {len(results)} cases passed")
    return 0 if results and all(r.passed for r in results) else 1


def _request(reference: str, args: argparse.Namespace) -> dict[str, Any]:
    path = Path(reference)
    if path.suffix in (".yaml", ".yml", ".json") and path.exists():
        return {"document": as_mapping(load_file(path))}
    if args.path:
        return {"document": as_mapping(pick(reference, library(args)))}
    return {"template": reference}


async def cmd_install(client: Client, args: argparse.Namespace, out: Output) -> int:
    body = {**_request(args.template, args), "parameters": parameters(args), "name": args.name}
    answer = await client.post("/templates/install", body)
    if out.json:
        out.value(answer)
    else:
        out.line(
            f"installed {answer['template']}@{answer['template_version']} as {answer['workflow']} "
            f"version {answer['version']}"
        )
    return 0


async def cmd_upgrade(client: Client, args: argparse.Namespace, out: Output) -> int:
    current = await client.get(f"/definitions/{args.workflow}")
    provenance = current.get("provenance") if isinstance(current, dict) else None
    if not provenance:
        raise CliError(f"{args.workflow} was not installed from a template (no provenance)", 2)
    body = {"workflow": args.workflow, "template": f"{provenance['template']}@{args.to}", "apply": args.yes}
    answer = await client.post("/templates/upgrade", body)
    if out.json:
        out.value(answer)
        return 0
    out.lines(render_diff(answer["diff"]))
    out.line(f"compatibility: {answer['compatibility']}")
    if answer.get("registered"):
        out.line(f"registered {args.workflow} version {answer['registered']['version']}")
    else:
        out.note("not registered: run again with --yes to register it")
    return 0


async def cmd_from_workflow(client: Client, args: argparse.Namespace, out: Output) -> int:
    query = {"version": str(args.version)} if args.version else None
    data = await client.get(f"/definitions/{args.workflow}", query)
    lifted = {}
    for item in args.param:
        path, sep, name = item.partition("=")
        if not sep or not path or not name:
            raise CliError(f"--param {item!r}: expected PATH=NAME", 2)
        lifted[path] = name
    template = from_workflow(parse_definition(data), lifted, template_id=args.id, engine=engine_version())
    text = yaml.safe_dump(template, sort_keys=False, allow_unicode=True)
    if args.output:
        await asyncio.to_thread(Path(args.output).write_text, text, encoding="utf-8")
        out.note(f"wrote {args.output}")
    elif out.json:
        out.value(template)
    else:
        out.line(text.rstrip())
    return 0
