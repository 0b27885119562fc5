"""What a schedule does with the fire times that came due: catch-up and overlap, as pure functions.

The state of one schedule is a JSON object (stored by ``ScheduleStates``, fenced by its version):

| key | meaning |
|---|---|
| ``cursor`` | every fire time at or before it is decided (started, buffered or skipped) |
| ``last`` | ``{time, execution_id}`` of the latest start: the "previous run" of the overlap policy |
| ``buffered`` | ``{time, kind, catchup}``: the one fire waiting for the previous run (``buffer_one``) |
| ``pending`` | actions decided and saved but maybe not done yet: ``cancel`` and ``start`` |
| ``paused``, ``note``, ``paused_by``, ``paused_at`` | pause and why |
| ``counts`` | ``started``, ``skipped``, ``failed`` since the schedule was first seen |
| ``skips`` | the latest skipped fires with their reason (never skipped silently) |

:func:`plan` decides: it returns the next state, whose ``pending`` list the caller saves first
(compare-and-set: whoever saves first decided), then carries out (each action is idempotent: a
start has an execution id derived from the fire time, a cancel of a finished run changes nothing),
then clears. A process that crashed in between leaves ``pending`` behind; the next one to load the
state carries it out again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Catchup = Literal["all", "latest", "none"]
Overlap = Literal["allow", "skip", "buffer_one", "cancel_previous", "terminate_previous"]
Kind = Literal["scheduled", "catchup", "buffered", "manual", "backfill"]

LATE_AFTER = 10.0  # seconds after its due time a fire counts as missed (catch-up), not on time
KEPT_SKIPS = 20
REASON_PAUSED = "paused"
REASON_WINDOW = "missed: older than the catchup window"
REASON_LATEST = "missed: catchup latest starts only the latest missed fire"
REASON_NONE = "missed: catchup none starts no missed fire"
REASON_RUNNING = "overlap skip: the previous run is still running"
REASON_BUFFER_FULL = "overlap buffer_one: another fire is buffered already"


@dataclass(frozen=True, slots=True)
class Policy:
    catchup: Catchup
    catchup_window: float
    overlap: Overlap
    late_after: float = LATE_AFTER


@dataclass(frozen=True, slots=True)
class Due:
    """A fire time (``time``, the scheduled time) and when it is due (``at``: time plus jitter)."""

    time: float
    at: float


def initial_state(now: float) -> dict[str, Any]:
    """A schedule seen for the first time starts from now: it does not fire its past."""
    return {
        "cursor": now,
        "last": None,
        "buffered": None,
        "pending": [],
        "paused": False,
        "note": "",
        "paused_by": None,
        "paused_at": None,
        "counts": {"started": 0, "skipped": 0, "failed": 0},
        "skips": [],
    }


def copy_state(state: dict[str, Any]) -> dict[str, Any]:
    """A copy that the decisions may change: the lists and counters are new, their entries (never
    changed in place) are shared."""
    return {
        **state,
        "pending": list(state.get("pending") or []),
        "skips": list(state.get("skips") or []),
        "counts": dict(state.get("counts") or {}),
    }


def plan(
    state: dict[str, Any],
    due: Sequence[Due],
    now: float,
    policy: Policy,
    previous_running: bool,
    execution_id: Callable[[float, Kind], str],
) -> dict[str, Any]:
    """The next state after deciding the buffered fire (if its turn came) and ``due`` (fire times
    after the cursor whose due time has passed, oldest first). ``previous_running``: the
    execution in ``state["last"]`` is still running. ``execution_id(time, kind)``: the id a
    start of that fire gets. Under an overlap policy other than ``allow`` the decision stops at
    the first start (the cursor stays there): whether the next fire overlaps depends on whether
    that run is still going once started, so the caller plans again after carrying it out."""
    new = copy_state(state)
    if due:
        new["cursor"] = due[-1].time
    if new.get("paused"):
        for fire in due:
            skip(new, fire.time, REASON_PAUSED)
        return new
    running = previous_running and new.get("last") is not None
    buffered = new.get("buffered")
    if buffered is not None and not running:
        new["buffered"] = None
        _start(new, buffered["time"], "buffered", bool(buffered.get("catchup")), execution_id)
        running = True
    for time, kind in _fireable(new, due, now, policy):
        starting = len(new["pending"])
        running = decide_overlap(new, time, kind, policy.overlap, running, execution_id)
        if policy.overlap != "allow" and len(new["pending"]) > starting:
            new["cursor"] = time  # decide the later fires once this start is done: it may end at once
            break
    return new


def decide_overlap(
    state: dict[str, Any],
    time: float,
    kind: Kind,
    overlap: Overlap,
    running: bool,
    execution_id: Callable[[float, Kind], str],
) -> bool:
    """Apply the overlap policy to one fire (changing ``state``); whether a run is going after it."""
    catchup = kind == "catchup"
    if running and overlap == "skip":
        skip(state, time, REASON_RUNNING)
        return True
    if running and overlap == "buffer_one":
        if state.get("buffered") is None:
            state["buffered"] = {"time": time, "kind": kind, "catchup": catchup}
        else:
            skip(state, time, REASON_BUFFER_FULL)
        return True
    if running and overlap in ("cancel_previous", "terminate_previous") and state.get("last"):
        verb = "cancelled" if overlap == "cancel_previous" else "terminated"
        state["pending"].append(
            {
                "do": "cancel",
                "execution_id": state["last"]["execution_id"],
                "reason": f"{verb} by schedule: the fire of {time} starts ({overlap})",
            }
        )
    _start(state, time, kind, catchup, execution_id)
    return True


def _fireable(state: dict[str, Any], due: Sequence[Due], now: float, policy: Policy) -> list[tuple[float, Kind]]:
    """The due fires to start, with their kind; the others are recorded as skipped."""
    candidates: list[tuple[float, Kind]] = []
    for fire in due:
        lateness = now - fire.at
        if lateness > policy.catchup_window and lateness > policy.late_after:
            skip(state, fire.time, REASON_WINDOW)
        elif lateness > policy.late_after:
            if policy.catchup == "none":
                skip(state, fire.time, REASON_NONE)
            else:
                candidates.append((fire.time, "catchup"))
        else:
            candidates.append((fire.time, "scheduled"))
    if policy.catchup == "latest" and len(candidates) > 1:
        for time, _ in candidates[:-1]:
            skip(state, time, REASON_LATEST)
        candidates = candidates[-1:]
    return candidates


def _start(
    state: dict[str, Any], time: float, kind: Kind, catchup: bool, execution_id: Callable[[float, Kind], str]
) -> None:
    identifier = execution_id(time, kind)
    state["pending"].append(
        {"do": "start", "time": time, "kind": kind, "catchup": catchup, "execution_id": identifier}
    )
    state["last"] = {"time": time, "execution_id": identifier}
    state.setdefault("counts", {}).setdefault("started", 0)
    state["counts"]["started"] += 1


def skip(state: dict[str, Any], time: float, reason: str, count: int = 1, counter: str = "skipped") -> None:
    """Record skipped fires (``count`` of them, up to ``time``): counted under ``counter``, and
    kept among the latest skips with the reason."""
    counts = state.setdefault("counts", {})
    counts[counter] = counts.get(counter, 0) + count
    skips = state.setdefault("skips", [])
    skips.append({"time": time, "reason": reason} if count == 1 else {"time": time, "reason": reason, "count": count})
    del skips[:-KEPT_SKIPS]


def failed(state: dict[str, Any], action: dict[str, Any], reason: str) -> None:
    """A start that can never succeed (input invalid, workflow gone): counted and kept as a skip."""
    counts = state.setdefault("counts", {})
    counts["started"] = max(0, counts.get("started", 0) - 1)
    skip(state, action["time"], f"could not start: {reason}", counter="failed")
    last = state.get("last")
    if last is not None and last.get("execution_id") == action.get("execution_id"):
        state["last"] = None
