"""State snapshots: a folded state stored beside the events, so long histories load in O(tail).

A snapshot after event N holds the exact ``ExecutionState`` folded from events 1..N, plus what
the engine needs to carry on from there without reading event N (the command that caused it,
and its chain hash). Loading takes the latest snapshot at or before the wanted sequence and folds
only the events after it. Snapshots are derived data: a missing or unreadable one costs a full
fold, never a wrong state, and the event log stays the only source of truth.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

from orchestrator.core.state import MISSING, ActiveStep, ExecutionState, Timer, fold
from orchestrator.core.timefmt import parse_rfc3339
from orchestrator.history import pager
from orchestrator.ports import EventLog, Snapshot

log = logging.getLogger(__name__)
FORMAT = 1
PAGE = 1000
_SPECIAL = frozenset({"active", "timers", "joins", "signals", "event_ids"})


class SnapshotError(ValueError):
    """Bytes that are not a snapshot this code can read."""


@dataclass(frozen=True, slots=True)
class Loaded:
    """A state and how its last event was stamped (what the engine continues from)."""

    state: ExecutionState
    last_command_id: str | None
    chainhash: str
    from_snapshot: int  # the snapshot's sequence, 0 when folded from the first event
    folded: int  # events folded on top of it
    started_at: float | None = None  # the start's time when folded from it (None from a snapshot)


def encode(state: ExecutionState, last_command_id: str | None, chainhash: str) -> bytes:
    """The snapshot body: JSON, with the state's tuples and sentinels spelled out."""
    plain: dict[str, Any] = {
        f.name: getattr(state, f.name) for f in dataclasses.fields(state) if f.name not in _SPECIAL
    }
    plain["active"] = [dataclasses.asdict(a) for a in state.active.values()]
    plain["timers"] = [dataclasses.asdict(t) for t in state.timers.values()]
    plain["joins"] = {
        step: [[False, None] if r is MISSING else [True, r] for r in results]
        for step, results in state.joins.items()
    }
    plain["signals"] = [[name, payload] for name, payload in state.signals]
    plain["event_ids"] = list(state.event_ids)
    body = {"format": FORMAT, "state": plain, "last_command_id": last_command_id, "chainhash": chainhash}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def decode(body: bytes) -> tuple[ExecutionState, str | None, str]:
    """The state, last command id and chain hash held by a snapshot body."""
    try:
        doc = json.loads(body)
        if doc.get("format") != FORMAT:
            raise SnapshotError(f"snapshot format {doc.get('format')!r} is not {FORMAT}")
        plain = dict(doc["state"])
        plain["active"] = {a["step"]: ActiveStep(**a) for a in plain["active"]}
        plain["timers"] = {t["timer_id"]: Timer(**t) for t in plain["timers"]}
        plain["joins"] = {
            step: tuple(value if present else MISSING for present, value in results)
            for step, results in plain["joins"].items()
        }
        plain["signals"] = tuple((name, payload) for name, payload in plain["signals"])
        plain["event_ids"] = tuple(plain.get("event_ids", ()))
        for name in ("slots", "held", "queued", "deferred"):  # JSON lists; absent before limits
            plain[name] = tuple(plain.get(name, ()))
        known = {f.name for f in dataclasses.fields(ExecutionState)}
        state = ExecutionState(**{k: v for k, v in plain.items() if k in known})
        return state, doc.get("last_command_id"), str(doc.get("chainhash") or "")
    except SnapshotError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SnapshotError(f"unreadable snapshot: {exc!r}") from None


def due(before_sequence: int, after_sequence: int, every: int) -> bool:
    """Whether a commit from ``before`` to ``after`` crossed a multiple of ``every`` (0: never)."""
    return every > 0 and after_sequence // every > before_sequence // every


async def load(log_: EventLog, execution_id: str, at_sequence: int | None = None) -> Loaded | None:
    """The state after event ``at_sequence`` (the last one when None): snapshot + tail, paged."""
    state: ExecutionState | None = None
    command_id: str | None = None
    chain = ""
    base = 0
    started_at: float | None = None
    snapshot: Snapshot | None = await log_.load_snapshot(execution_id, at_sequence)
    if snapshot is not None:
        try:
            state, command_id, chain = decode(snapshot.body)
            base = snapshot.sequence
        except SnapshotError as exc:
            log.warning("execution %s: ignoring snapshot %d: %s", execution_id, snapshot.sequence, exc)
            state, command_id, chain = None, None, ""
    after = state.sequence if state is not None else 0
    folded = 0
    async for page in pager.pages(log_, execution_id, after, upto=at_sequence, page=PAGE):
        if state is None and page[0].sequence == 1:
            started_at = time_of(page[0].time)
        state = fold(page, state)
        last = page[-1]
        command_id, chain = last.causationid, last.chainhash or ""
        folded += len(page)
    if state is None:
        return None
    return Loaded(state, command_id, chain, base, folded, started_at)


def time_of(text: str | None) -> float | None:
    """An envelope's time in seconds since the epoch (None when absent or unreadable)."""
    try:
        return parse_rfc3339(text) if text else None
    except ValueError:
        return None
