"""``orchestrator redrive | redrive-bulk | job``: re-run finished executions, against a running
server; a bulk redrive runs as a server job that ``redrive-bulk --execute`` follows."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

from orchestrator.cli.args import Parents, finite_number, parse_json_arg
from orchestrator.cli.client import TERMINAL, Client, remote
from orchestrator.cli.errors import CliError
from orchestrator.cli.output import Output, ticking
from orchestrator.cli.results import exit_code, result_json, show_result

JOB_POLL_SECONDS = 0.25


def add_commands(sub: Any, parents: Parents) -> None:
    p = sub.add_parser(
        "redrive",
        parents=[parents.server],
        help="re-run a finished execution as a new one, reusing what succeeded",
    )
    p.set_defaults(handler=remote(redrive))
    p.add_argument("id")
    origin = p.add_mutually_exclusive_group()
    origin.add_argument("--from-step", metavar="STEP", help="reuse the steps that succeeded before STEP")
    origin.add_argument("--from-failure", action="store_true", help="re-run from the step that failed")
    p.add_argument("--input", metavar="JSON", help="new input JSON, or @file (default: the original's)")
    p.add_argument("--version", type=int, help="definition version (default: the original's)")
    p.add_argument("--idempotency-key", help="redrives at most once per key")
    p.add_argument("--reason", help="why: recorded on the new execution and in the audit trail")
    p.add_argument("--wait", action="store_true", help="wait for the end and show the history")
    p.add_argument("--timeout", type=finite_number, metavar="S", help="with --wait: give up after S s")

    p = sub.add_parser(
        "redrive-bulk",
        parents=[parents.server],
        help="redrive every matching finished execution (a dry run unless --execute)",
    )
    p.set_defaults(handler=remote(redrive_bulk))
    p.add_argument("--workflow", required=True)
    p.add_argument("--status", default="failed", choices=sorted(TERMINAL))
    p.add_argument("--failing-step", metavar="STEP", help="only those whose ExecutionFailed names STEP")
    p.add_argument("--since", metavar="TIME", help="started at or after (RFC 3339)")
    p.add_argument("--until", metavar="TIME", help="started before (RFC 3339)")
    origin = p.add_mutually_exclusive_group()
    origin.add_argument("--from-step", metavar="STEP")
    origin.add_argument("--from-failure", action="store_true")
    p.add_argument("--execute", action="store_true", help="redrive them (default: only list)")
    p.add_argument("--rate", type=finite_number, default=10.0, metavar="N", help="starts per second (default 10)")
    p.add_argument("--limit", type=int, default=100, help="at most N executions (default 100)")
    p.add_argument("--idempotency-key", help="batch key (default: derived from the filters)")
    p.add_argument("--reason", help="why: recorded on each new execution and in the audit trail")
    p.add_argument(
        "--detach", action="store_true", help="with --execute: print the job id and return (see 'job')"
    )

    p = sub.add_parser("job", parents=[parents.server], help="show (or cancel) a background job")
    p.set_defaults(handler=remote(job))
    p.add_argument("id")
    p.add_argument("--cancel", action="store_true", help="stop it")
    p.add_argument("--follow", action="store_true", help="wait for its end, showing progress")


async def redrive(client: Client, args: argparse.Namespace, out: Output) -> int:
    body: dict[str, Any] = {"from_step": args.from_step, "from_failure": args.from_failure}
    if args.input is not None:
        body["input"] = parse_json_arg(args.input, "input")
    if args.version is not None:
        body["version"] = args.version
    if args.reason:
        body["reason"] = args.reason
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    answer = await client.post(f"/executions/{args.id}/redrive", body, headers)
    execution_id = answer["execution_id"]
    if not args.wait:
        if out.json:
            out.value(answer)
        elif not answer.get("created", True):
            out.line(f"{execution_id} already redrives {args.id} for that idempotency key; nothing started")
        else:
            where = f"from step {answer['from_step']}" if answer.get("from_step") else "from its input"
            reused = ", ".join(answer.get("reused") or []) or "nothing"
            out.line(f"redriven {args.id} as {execution_id} {where} (reused: {reused})")
        return 0
    execution = await client.wait(execution_id, args.timeout)
    events = await client.history(execution_id)
    if out.json:
        out.value({**result_json(execution, events), "created": answer.get("created"), "redrive_of": args.id})
    else:
        show_result(out, execution, events)
    return exit_code(str(execution.get("status")))


async def redrive_bulk(client: Client, args: argparse.Namespace, out: Output) -> int:
    body: dict[str, Any] = {
        "workflow": args.workflow,
        "status": args.status,
        "failing_step": args.failing_step,
        "started_after": args.since,
        "started_before": args.until,
        "from_step": args.from_step,
        "from_failure": args.from_failure,
        "dry_run": not args.execute,
        "rate_per_second": args.rate,
        "limit": args.limit,
        "reason": args.reason,
    }
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    sent = {k: v for k, v in body.items() if v is not None}
    if not args.execute:
        with out.progress("matching") as advance:
            answer = await ticking(client.post("/executions/redrive", sent, headers), advance)
    else:
        answer = await client.post("/executions/redrive", sent, headers)  # 202: a background job
        if args.detach:
            return show_job(out, answer)
        answer = await follow(client, answer, out, f"redriving at {args.rate:g}/s")
    if out.json:
        out.value(answer)
        return 0
    return show_bulk(out, answer)


async def job(client: Client, args: argparse.Namespace, out: Output) -> int:
    path = f"/jobs/{args.id}"
    answer = await (client.post(path + "/cancel", None) if args.cancel else client.get(path))
    if args.follow and answer.get("status") == "running":
        answer = await follow(client, answer, out, "following")
    if out.json:
        out.value(answer)
        return 0
    return show_bulk(out, answer) if answer.get("status") != "running" else show_job(out, answer)


async def follow(client: Client, job: dict[str, Any], out: Output, label: str) -> dict[str, Any]:
    """Poll the job until it ends, with a progress bar; interrupted (Ctrl-C), cancel it."""
    path = f"/jobs/{job['job_id']}"
    shown = 0
    try:
        with out.progress(label, unit="executions") as advance:
            while job.get("status") == "running":
                await asyncio.sleep(JOB_POLL_SECONDS)
                job = await client.get(path)
                done = int((job.get("progress") or {}).get("done", 0))
                advance(done - shown)
                shown = done
    except asyncio.CancelledError:
        with contextlib.suppress(CliError):
            await asyncio.shield(client.post(path + "/cancel", None))
        out.note(f"interrupted: job {job['job_id']} cancelled")
        raise
    return job


def show_job(out: Output, job: dict[str, Any]) -> int:
    if out.json:
        out.value(job)
        return 0
    progress = job.get("progress") or {}
    total = progress.get("total")
    out.line(
        f"job {job.get('job_id')} {job.get('status')}: "
        f"{progress.get('done', 0)}/{'?' if total is None else total} done"
    )
    return 0


def show_bulk(out: Output, answer: dict[str, Any]) -> int:
    """A dry run's matches, or a finished job's outcome; 1 when any redrive failed or the job
    did not succeed."""
    matched = answer.get("matched", [])
    out.line(f"{answer.get('count', len(matched))} matched")
    for execution_id in matched:
        out.line(f"  {execution_id}")
    if answer.get("truncated"):
        out.note("the scan stopped at its limit: more may match; narrow the filters (--since/--until)")
    if answer.get("dry_run", True):
        out.line("dry run: nothing started; add --execute to redrive them")
        return 0
    started, existing = answer.get("started", []), answer.get("existing", [])
    out.line(
        f"started {len(started)}" + (f", {len(existing)} already redriven by this batch" if existing else "")
    )
    for execution_id in started:
        out.line(f"  {execution_id}")
    for failure in answer.get("errors", []):
        out.note(f"error: {failure.get('execution_id')}: {failure.get('error')}")
    status = answer.get("status", "succeeded")
    if status != "succeeded":
        out.note(f"job {answer.get('job_id')} {status}" + (f": {answer['error']}" if answer.get("error") else ""))
    return 1 if answer.get("errors") or status != "succeeded" else 0
