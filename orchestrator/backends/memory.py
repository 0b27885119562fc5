"""In-memory event log and registry (``memory://``): for tests; trusted because it passes the contracts."""

from __future__ import annotations

import bisect
import builtins
from collections.abc import AsyncIterator, Sequence, Set

from orchestrator.backends.paging import page_summaries
from orchestrator.backends.summary import check_sequences, summarize
from orchestrator.backends.versions import check_owner, same_content
from orchestrator.crypto.identity import IDENTITY
from orchestrator.ports import (
    Checkpoints,
    ConcurrencyError,
    DataKeyRecord,
    EventCodec,
    EventFeed,
    ExecutionPage,
    ExecutionQuery,
    ExecutionSummary,
    FeedPage,
    Link,
    Snapshot,
    UnknownWorkflow,
    VersionConflict,
)
from schemas import fields
from schemas.definition import WorkflowDefinition
from schemas.envelope import Envelope


class MemoryEventLog:
    """Envelopes kept as objects: nothing is at rest, so the codec is not applied, but the data
    key store behaves as the durable ones do (for tests of key handling)."""

    def __init__(self) -> None:
        self.codec: EventCodec = IDENTITY
        self._data_keys: dict[tuple[str, str], DataKeyRecord] = {}
        self._events: dict[str, list[Envelope]] = {}
        self._summaries: dict[str, ExecutionSummary] = {}
        self._snapshots: dict[str, dict[int, Snapshot]] = {}
        self._links: dict[str, dict[tuple[str, str], Link]] = {}
        self._feed: list[tuple[int, Envelope]] = []  # (position, event) in commit order
        self._position = 0  # the last position handed out; never reused
        self._checkpoints: dict[str, int] = {}
        self._analytics = MemoryAnalytics()

    @classmethod
    def from_url(cls, url: str) -> MemoryEventLog:
        return cls()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def append(self, execution_id: str, expected_sequence: int, events: Sequence[Envelope]) -> None:
        check_sequences(execution_id, expected_sequence, events)
        stream = self._events.get(execution_id, [])
        if len(stream) != expected_sequence:
            raise ConcurrencyError(execution_id, expected_sequence)
        summary = summarize(self._summaries.get(execution_id), events)
        self._events[execution_id] = [*stream, *events]
        self._summaries[execution_id] = summary
        for envelope in events:
            self._position += 1
            self._feed.append((self._position, envelope))

    async def read(
        self, execution_id: str, after_sequence: int = 0, limit: int | None = None
    ) -> list[Envelope]:
        stream = self._events.get(execution_id, [])[after_sequence:]
        return stream if limit is None else stream[:limit]

    async def summary(self, execution_id: str) -> ExecutionSummary | None:
        return self._summaries.get(execution_id)

    async def list_executions(self, query: ExecutionQuery) -> ExecutionPage:
        return page_summaries(list(self._summaries.values()), query)

    async def execution_ids(self) -> AsyncIterator[str]:
        for execution_id in list(self._events):  # a copy: deletes may run between yields
            yield execution_id

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        self._snapshots.setdefault(snapshot.execution_id, {})[snapshot.sequence] = snapshot

    async def load_snapshot(self, execution_id: str, at_most: int | None = None) -> Snapshot | None:
        stored = self._snapshots.get(execution_id, {})
        fitting = [n for n in stored if at_most is None or n <= at_most]
        return stored[max(fitting)] if fitting else None

    async def delete_execution(self, execution_id: str) -> bool:
        self._snapshots.pop(execution_id, None)
        self._links.pop(execution_id, None)
        self._summaries.pop(execution_id, None)
        if execution_id in self._events:
            self._feed = [item for item in self._feed if item[1].subject != execution_id]
        return self._events.pop(execution_id, None) is not None

    async def add_link(self, link: Link) -> None:
        """Record a link; the first record of (relation, other_id) stands."""
        links = self._links.setdefault(link.execution_id, {})
        links.setdefault((link.relation, link.other_id), link)

    async def links(self, execution_id: str) -> list[Link]:
        found = self._links.get(execution_id, {}).values()
        return sorted(found, key=lambda k: (k.created_at, k.relation, k.other_id))


    def feed(self) -> EventFeed:
        return MemoryFeed(self)

    async def insert_data_key(self, record: DataKeyRecord) -> DataKeyRecord:
        return self._data_keys.setdefault((record.tenant, record.key_id), record)

    async def data_keys(self, tenant: str | None = None) -> list[DataKeyRecord]:
        return [r for r in self._data_keys.values() if tenant in (None, r.tenant)]

    async def delete_data_keys(self, key_id: str) -> int:
        gone = [k for k in self._data_keys if k[1] == key_id]
        for k in gone:
            del self._data_keys[k]
        return len(gone)

    def checkpoints(self) -> Checkpoints:
        return MemoryCheckpoints(self)

    def analytics(self) -> MemoryAnalytics:
        """The analytics store beside the events (``orchestrator.analytics.store``)."""
        return self._analytics


CellRow = tuple[str, str, int, str, int, str]  # tenant, workflow, version, step, bucket, body
BreachRow = tuple[str, str, float, str, str, str]  # tenant, workflow, at, execution, step, body


class MemoryAnalytics:
    """Analytics cells and tracks in dicts; a save applies whole (no await inside)."""

    def __init__(self) -> None:
        self._cells: dict[tuple[str, str, int, str, int], str] = {}
        self._tracks: dict[str, str] = {}
        self._breaches: dict[tuple[str, str], BreachRow] = {}

    async def load(self) -> tuple[list[CellRow], list[tuple[str, str]]]:
        return [(*key, body) for key, body in self._cells.items()], list(self._tracks.items())

    async def save(
        self, cells: Sequence[CellRow], tracks: Sequence[tuple[str, str]], breaches: Sequence[BreachRow]
    ) -> None:
        for tenant, workflow, version, step, bucket, body in cells:
            self._cells[(tenant, workflow, version, step, bucket)] = body
        self._tracks.update(tracks)
        self._breaches.update(((b[3], b[4]), b) for b in breaches)

    async def breaches(
        self, tenant: str, workflow: str | None, since: float, until: float, limit: int
    ) -> list[BreachRow]:
        found = [
            b
            for b in self._breaches.values()
            if b[0] == tenant and (workflow is None or b[1] == workflow) and since <= b[2] < until
        ]
        return sorted(found, key=lambda b: (-b[2], b[3], b[4]))[:limit]

    async def cells(self, tenant: str, workflow: str | None, since: int, until: int) -> list[CellRow]:
        return [
            (*key, body)
            for key, body in self._cells.items()
            if key[0] == tenant and (workflow is None or key[1] == workflow) and since <= key[4] < until
        ]

    async def clear(self) -> None:
        self._cells, self._tracks, self._breaches = {}, {}, {}


class MemoryFeed:
    """The global feed of a MemoryEventLog: positions 1, 2, 3... in append order."""

    delay = 0.0

    def __init__(self, log: MemoryEventLog) -> None:
        self._log = log

    async def read_after(self, position: int, limit: int = 1000) -> FeedPage:
        feed = self._log._feed
        start = bisect.bisect_right(feed, position, key=lambda item: item[0])
        items = feed[start : start + max(limit, 0)]
        return FeedPage(items, items[-1][0] if items else position)

    async def read_fields_after(self, position: int, limit: int, wanted: Set[str]) -> fields.FieldsPage:
        """``read_after`` as fields (``schemas.fields``)."""
        page = await self.read_after(position, limit)
        return fields.FieldsPage([fields.of_envelope(at, e, wanted) for at, e in page.items], page.last)

    async def head(self) -> int:
        return self._log._position


class MemoryCheckpoints:
    def __init__(self, log: MemoryEventLog) -> None:
        self._log = log

    async def load(self, name: str) -> int:
        return self._log._checkpoints.get(name, 0)

    async def save(self, name: str, position: int) -> None:
        self._log._checkpoints[name] = position


class MemoryRegistry:
    def __init__(self) -> None:
        self._versions: dict[str, dict[int, WorkflowDefinition]] = {}
        self._trigger_states: dict[tuple[str, str], bool] = {}

    @classmethod
    def from_url(cls, url: str) -> MemoryRegistry:
        return cls()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def register(self, definition: WorkflowDefinition) -> WorkflowDefinition:
        versions = self._versions.setdefault(definition.name, {})
        check_owner(next(iter(versions.values()), None), definition)
        if definition.version is None:
            latest = versions[max(versions)] if versions else None
            if latest is not None and same_content(latest, definition):
                return latest
            definition = definition.with_version(max(versions, default=0) + 1)
        assert definition.version is not None
        existing = versions.get(definition.version)
        if existing is not None:
            if not same_content(existing, definition):
                raise VersionConflict(f"{definition.name} v{definition.version} exists with other content")
            return existing
        versions[definition.version] = definition
        return definition

    async def get(self, name: str, version: int | None = None) -> WorkflowDefinition:
        versions = self._versions.get(name)
        if not versions:
            raise UnknownWorkflow(f"unknown workflow {name!r}")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise UnknownWorkflow(f"workflow {name!r} has no version {version}")
        return versions[version]

    async def list(self) -> builtins.list[WorkflowDefinition]:
        return [v[max(v)] for _, v in sorted(self._versions.items())]

    async def versions(self, name: str) -> builtins.list[int]:
        return sorted(self._versions.get(name, {}))

    async def trigger_states(self) -> dict[tuple[str, str], bool]:
        return dict(self._trigger_states)

    async def set_trigger_enabled(self, workflow: str, trigger: str, enabled: bool) -> None:
        self._trigger_states[(workflow, trigger)] = enabled
