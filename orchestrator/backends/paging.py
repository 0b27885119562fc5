"""Filtering and cursor paging of execution summaries, newest first (for in-process backends)."""

from __future__ import annotations

from orchestrator.ports import ExecutionPage, ExecutionQuery, ExecutionSummary


def matches(summary: ExecutionSummary, query: ExecutionQuery) -> bool:
    return (
        (query.workflow is None or summary.workflow == query.workflow)
        and (query.status is None or summary.status == query.status)
        and (query.version is None or summary.version == query.version)
        and (query.tenant is None or summary.tenant == query.tenant)
        and (query.started_by is None or summary.started_by == query.started_by)
        and (query.correlation_key is None or summary.correlation_key == query.correlation_key)
        and (query.started_after is None or summary.started_at >= query.started_after)
        and (query.started_before is None or summary.started_at < query.started_before)
    )


def cursor_of(summary: ExecutionSummary) -> str:
    return f"{summary.started_at}|{summary.execution_id}"


def page_summaries(summaries: list[ExecutionSummary], query: ExecutionQuery) -> ExecutionPage:
    ordered = sorted((s for s in summaries if matches(s, query)), key=cursor_of, reverse=True)
    if query.cursor is not None:
        ordered = [s for s in ordered if cursor_of(s) < query.cursor]
    items = ordered[: query.limit]
    more = len(ordered) > query.limit
    return ExecutionPage(items, cursor_of(items[-1]) if more and items else None)
