"""What the runtime counts to enforce limits: a tenant's running executions, this process's load."""

from __future__ import annotations

from orchestrator.ports import EventLog, ExecutionQuery, Overloaded, Shards


async def count_running(log: EventLog, tenant: str, at_most: int) -> int:
    """The tenant's running executions in ``log``, counted up to ``at_most`` (for the quotas)."""
    count, cursor = 0, None
    while count < at_most:
        query = ExecutionQuery(status="running", tenant=tenant, limit=min(at_most - count, 1000), cursor=cursor)
        page = await log.list_executions(query)
        count += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    return count


def check_capacity(transport: Shards, in_flight: int | None, limit: int) -> None:
    """Overloaded when this process already holds ``limit`` step tasks (queued or running): a
    new start would only lengthen the queue. ``in_flight`` None: the transport does not say
    (Kafka API processes hold none; their backlog is the topic's, and the workers pause fetching
    when theirs is full)."""
    if limit <= 0 or in_flight is None:
        return
    if in_flight >= limit:
        raise Overloaded(f"this process holds {in_flight} step tasks (at most {limit}); try again shortly", 1.0)
