"""Retention: a finished execution expires ``retention.days`` after it ended, archived first if asked.

The policy is the workflow's latest version's ``retention`` (a workflow-level setting, so raising
or lowering it applies to past executions too). A sweep finds finished executions of each such
workflow whose last event is older than the cutoff, writes each history to the archive directory
when the policy says ``archive: true`` (the file is durable before anything is deleted), then
removes the execution through ``EventLog.delete_execution``. Archive files use the export format
(``docs/data.md``), so ``orchestrator import`` restores them and they can be replayed.

Sweeps are idempotent: two processes sweeping at once archive the same bytes and delete once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.core.timefmt import rfc3339
from orchestrator.history import archive, pager, sealed
from orchestrator.history.files import atomic_text_offloop
from orchestrator.ports import EventLog, ExecutionQuery, ExecutionSummary, Registry
from schemas.definition import WorkflowDefinition

log = logging.getLogger(__name__)
DAY = 86_400.0
FINISHED = ("succeeded", "failed", "cancelled")
PAGE = 500


class ArchiveMissing(RuntimeError):
    """A policy asks for archiving but no archive directory is configured."""


@dataclass(slots=True)
class SweepReport:
    expired: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)  # archive file paths
    skipped: dict[str, str] = field(default_factory=dict)  # workflow -> why it was not swept

    def to_dict(self) -> dict[str, Any]:
        return {"expired": self.expired, "archived": self.archived, "skipped": self.skipped}


class RetentionSweeper:
    """Expires finished executions of workflows that declare ``retention``."""

    def __init__(
        self,
        log_: EventLog,
        registry: Registry,
        *,
        clock: Callable[[], float],
        archive_dir: str | Path | None = None,
    ) -> None:
        self.log = log_
        self.registry = registry
        self.clock = clock
        self.archive_dir = Path(archive_dir) if archive_dir else None

    async def sweep(
        self, workflow: str | None = None, progress: Callable[[int], None] | None = None
    ) -> SweepReport:
        """One pass over every workflow with a retention policy (or just ``workflow``);
        ``progress(1)`` after each execution expired."""
        report = SweepReport()
        for definition in await self.registry.list():
            if definition.retention is None or (workflow is not None and definition.name != workflow):
                continue
            if definition.retention.archive and self.archive_dir is None:
                report.skipped[definition.name] = "retention.archive is set but no archive directory is"
                log.warning("retention: %s not swept: no archive directory configured", definition.name)
                continue
            await self._sweep_workflow(definition, report, progress)
        return report

    async def run(self, interval: float, active: Callable[[], bool] = lambda: True) -> None:
        """Sweep now and then every ``interval`` seconds until cancelled, whenever ``active()``
        says this process is the sweeper; errors are logged and retried next time."""
        while True:
            try:
                report = await self.sweep() if active() else SweepReport()
                if report.expired:
                    log.info("retention: expired %d executions", len(report.expired))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("retention sweep failed (will retry): %s", exc)
            await asyncio.sleep(interval)

    async def _sweep_workflow(
        self, definition: WorkflowDefinition, report: SweepReport, progress: Callable[[int], None] | None
    ) -> None:
        policy = definition.retention
        assert policy is not None
        cutoff = rfc3339(self.clock() - policy.days * DAY)
        for status in FINISHED:
            # started_before: it ended after it started, so this is a safe superset
            query = ExecutionQuery(workflow=definition.name, status=status, started_before=cutoff)
            async for summary in pager.executions(self.log, query, page=PAGE):
                if summary.updated_at > cutoff:
                    continue
                if policy.archive:
                    report.archived.append(str(await self._archive(summary)))
                if await self.log.delete_execution(summary.execution_id):
                    report.expired.append(summary.execution_id)
                    if progress is not None:
                        progress(1)

    async def _archive(self, summary: ExecutionSummary) -> Path:
        """Write one history in the export format; durable (fsync + rename) before returning.
        The file is written off the event loop (``files.atomic_text_offloop``)."""
        assert self.archive_dir is not None
        path = self.archive_dir / summary.workflow / summary.started_at[:10] / f"{summary.execution_id}.jsonl"
        definition = await self.registry.get(summary.workflow, summary.version)
        async with atomic_text_offloop(path) as out:
            archive.write_header(out, self.clock)
            await sealed.write_data_keys(out, self.log, summary.tenant)
            archive.write_definition(out, definition)
            count = await archive.write_history(self.log, out, summary.execution_id)
            archive.write_footer(out, archive.ExportReport(executions=1, events=count, definitions=1))
        return path
