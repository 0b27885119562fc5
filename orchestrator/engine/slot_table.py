"""Who holds and who waits for each concurrency key: the admission's bookkeeping, no I/O.

The table is a projection of execution states (``sync``), so it can be rebuilt from the log at
any time. ``decide`` says what to do next: admit waiters into free slots (higher priority first;
among equal priorities round-robin across the groups of keys waiters ask for, FIFO within a
group), refuse or cancel a new execution whose full key says so, cancel the oldest holder for
``cancel_running``. A grant counts as held from the moment it is decided (``pending``) until the
execution's state shows it, so two grants never share one slot while a command is in flight.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.core.state import ExecutionState

ActionKind = Literal["admit", "refuse", "cancel"]
STRICTNESS = {"queue": 0, "cancel_running": 1, "cancel_new": 2, "fail": 3}
CARRY_SECONDS = 60.0  # a grant not recorded after this long is taken as lost when the table is folded again


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    execution_id: str
    reason: str = ""


@dataclass(slots=True)
class Waiter:
    execution_id: str
    keys: tuple[str, ...]
    priority: float
    queued_at: float
    arrival: int
    first: bool  # never admitted yet: on_limit applies (a wake after a wait only queues)
    ticket: int = 0  # the execution's admissions so far: its grant names it (AdmitExecution)

    def order(self) -> tuple[float, float, int]:
        return (-self.priority, self.queued_at, self.arrival)


@dataclass(slots=True)
class KeyInfo:
    slot: dict[str, Any]
    tenant: str
    workflow: str
    holders: dict[str, float] = field(default_factory=dict)  # execution id -> admitted at
    waiters: set[str] = field(default_factory=set)


class SlotTable:
    """Holders and waiters per key, and the decisions they lead to."""

    def __init__(self) -> None:
        self.keys: dict[str, KeyInfo] = {}
        self.waiting: dict[str, Waiter] = {}  # change it through _wait and _unwait only
        self.pending: dict[str, Waiter] = {}  # decided grants not yet in the state
        self.granted_at: dict[str, float] = {}  # when each pending grant was decided
        self.cancelling: set[str] = set()  # holders a cancel_running has asked to cancel
        self.judged: set[str] = set()  # new waiters whose on_limit was applied
        self._unjudged: set[str] = set()
        self._held_by: dict[str, set[str]] = {}  # execution id -> the keys it holds here
        self._tenant_of: dict[str, str] = {}  # execution id -> its tenant
        self._served: dict[tuple[str, ...], int] = {}  # group -> the tick it was last served
        self._ticks = itertools.count(1)
        self._arrivals = itertools.count()

    def sync(self, state: ExecutionState, now: float) -> bool:
        """Take what ``state`` holds and waits for (a terminal one holds nothing); True if that
        changed anything here."""
        eid = state.execution_id
        if state.terminal:
            known = self.knows(eid)
            self.forget(eid)
            return known
        self._tenant_of[eid] = state.tenant
        for slot in state.slots:
            info = self.keys.get(slot["key"])
            if info is None:
                self.keys[slot["key"]] = KeyInfo(dict(slot), state.tenant, state.workflow)
            else:
                info.slot = dict(slot)  # the newest start's size of a shared key counts
        granted = self.pending.get(eid)
        if granted is not None and (not state.queued or (state.admitted_at or -1.0) >= granted.queued_at):
            del self.pending[eid]  # the grant landed (it may have been given back since)
            self.granted_at.pop(eid, None)
            granted = None
        held = set(state.held) | set(granted.keys if granted is not None else ())
        changed = self._hold(eid, held, state.admitted_at if state.admitted_at is not None else now)
        waiter = self.waiting.get(eid)
        if state.queued and granted is None:
            if waiter is None or waiter.keys != state.queued:
                at = state.queued_at if state.queued_at is not None else now
                first = state.admitted_at is None
                waiter = Waiter(eid, state.queued, state.priority, at, next(self._arrivals), first, state.admissions)
                self._wait(waiter)
                changed = True
        elif waiter is not None:
            self._unwait(eid)
            changed = True
        return changed

    def _hold(self, eid: str, keys: set[str], since: float) -> bool:
        before = self._held_by.get(eid, set())
        for key in before - keys:
            if key in self.keys:
                self.keys[key].holders.pop(eid, None)
        for key in keys - before:
            self.keys[key].holders.setdefault(eid, since)
        if keys:
            self._held_by[eid] = keys
        else:
            self._held_by.pop(eid, None)
        return keys != before

    def _wait(self, waiter: Waiter) -> None:
        self._unwait(waiter.execution_id)
        self.waiting[waiter.execution_id] = waiter
        for key in waiter.keys:
            self.keys[key].waiters.add(waiter.execution_id)
        if waiter.first and waiter.execution_id not in self.judged:
            self._unjudged.add(waiter.execution_id)

    def _unwait(self, eid: str) -> Waiter | None:
        waiter = self.waiting.pop(eid, None)
        if waiter is not None:
            for key in waiter.keys:
                if key in self.keys:
                    self.keys[key].waiters.discard(eid)
        self._unjudged.discard(eid)
        return waiter

    def knows(self, execution_id: str) -> bool:
        """Whether the execution holds, waits for or was just granted a slot here."""
        return execution_id in self.waiting or execution_id in self.pending or execution_id in self._held_by

    def forget(self, execution_id: str) -> None:
        keys = set(self._held_by.get(execution_id, ()))
        waiter = self._unwait(execution_id) or self.pending.get(execution_id)
        keys |= set(waiter.keys) if waiter is not None else set()
        self._hold(execution_id, set(), 0.0)
        self.pending.pop(execution_id, None)
        self.granted_at.pop(execution_id, None)
        self.cancelling.discard(execution_id)
        self.judged.discard(execution_id)
        self._tenant_of.pop(execution_id, None)
        for key in keys:
            info = self.keys.get(key)
            if info is not None and not info.holders and not info.waiters:
                del self.keys[key]

    def carry(self, older: SlotTable, now: float) -> None:
        """Keep counting the grants ``older`` decided that the states do not show yet (a table
        folded again while a grant is in flight must not give its slot to someone else)."""
        for eid, waiter in older.pending.items():
            fresh = now - older.granted_at.get(eid, now) < CARRY_SECONDS
            if fresh and eid in self.waiting and self.waiting[eid].keys == waiter.keys:
                self.granted_at[eid] = older.granted_at.get(eid, now)
                self._unwait(eid)
                self.pending[eid] = waiter
                self._hold(eid, self._held_by.get(eid, set()) | set(waiter.keys), now)

    def undo(self, action: Action) -> None:
        """A decided action whose command could not be sent: decide it again later."""
        if action.kind == "admit" and action.execution_id in self.pending:
            waiter = self.pending.pop(action.execution_id)
            self.granted_at.pop(action.execution_id, None)
            held = self._held_by.get(action.execution_id, set()) - set(waiter.keys)
            self._hold(action.execution_id, held, 0.0)
            self._wait(waiter)
        elif action.kind == "cancel":
            self.cancelling.discard(action.execution_id)
            self.judged.clear()  # a cancel_new or cancel_running is judged again
            self._unjudged |= {eid for eid, w in self.waiting.items() if w.first}

    def free(self, key: str) -> bool:
        info = self.keys[key]
        return len(info.holders) < int(info.slot["limit"])

    def decide(self, now: float) -> list[Action]:
        actions = self._judge_new()
        while True:
            eligible = [w for w in self.waiting.values() if all(self.free(k) for k in w.keys)]
            if not eligible:
                return actions
            top = max(w.priority for w in eligible)
            best = [w for w in eligible if w.priority == top]
            chosen = min(best, key=lambda w: (self._served.get(w.keys, 0), w.order()))
            self._served[chosen.keys] = next(self._ticks)
            self._unwait(chosen.execution_id)
            self.pending[chosen.execution_id] = chosen
            self.granted_at[chosen.execution_id] = now
            self._hold(chosen.execution_id, self._held_by.get(chosen.execution_id, set()) | set(chosen.keys), now)
            actions.append(Action("admit", chosen.execution_id))

    def _judge_new(self) -> list[Action]:
        """Apply ``on_limit`` to new waiters that find a key full."""
        actions: list[Action] = []
        fresh = sorted((self.waiting[eid] for eid in self._unjudged), key=Waiter.order)
        self._unjudged.clear()
        for waiter in fresh:
            self.judged.add(waiter.execution_id)
            full = [k for k in waiter.keys if not self.free(k)]
            if not full:
                continue
            strictest = max(full, key=lambda k: STRICTNESS[self.keys[k].slot["on_limit"]])
            mode = self.keys[strictest].slot["on_limit"]
            reason = f"concurrency limit {self.describe(strictest)} is full ({self.keys[strictest].slot['limit']} held)"
            if mode == "fail":
                self._unwait(waiter.execution_id)
                actions.append(Action("refuse", waiter.execution_id, reason))
            elif mode == "cancel_new":
                self._unwait(waiter.execution_id)
                actions.append(Action("cancel", waiter.execution_id, reason))
            elif mode == "cancel_running":
                for key in full:
                    if self.keys[key].slot["on_limit"] == "cancel_running":
                        actions += self._cancel_oldest(key, waiter.execution_id)
        return actions

    def _cancel_oldest(self, key: str, newcomer: str) -> list[Action]:
        holders = self.keys[key].holders
        candidates = [e for e in holders if e not in self.cancelling and e not in self.pending]
        if not candidates:
            return []
        oldest = min(candidates, key=lambda e: (holders[e], e))
        self.cancelling.add(oldest)
        reason = f"concurrency limit {self.describe(key)} is full: cancelled for the newer execution {newcomer}"
        return [Action("cancel", oldest, reason)]

    def describe(self, key: str) -> str:
        slot = self.keys[key].slot
        return f"{slot['scope']} key {slot['value']!r}"

    def ticket(self, execution_id: str) -> int | None:
        """The ticket the pending grant of ``execution_id`` names (None: no grant pending here)."""
        granted = self.pending.get(execution_id)
        return granted.ticket if granted is not None else None

    def position(self, execution_id: str) -> int | None:
        """1 for the next waiter of its first key, 2 for the one after, ...; None: not waiting."""
        waiter = self.waiting.get(execution_id)
        if waiter is None:
            return None
        order = waiter.order()
        return 1 + sum(1 for e in self.keys[waiter.keys[0]].waiters if self.waiting[e].order() < order)

    def view(self, now: float, tenant: str) -> list[dict[str, Any]]:
        """Each key the tenant uses: its limit, holders, waiters and how long the oldest has
        waited. A global key is listed to the tenants whose executions hold or wait for it (its
        counts are every tenant's); another tenant's keys are never listed."""
        rows = []
        for key, info in sorted(self.keys.items()):
            slot = info.slot
            if slot["scope"] == "global":
                users = {self._tenant_of.get(e) for e in (*info.holders, *info.waiters)}
                if tenant not in users:
                    continue
            elif info.tenant != tenant:
                continue
            waits = [self.waiting[e].queued_at for e in info.waiters]
            rows.append(
                {
                    "key": key,
                    "value": slot["value"],
                    "expression": slot.get("expression"),
                    "scope": slot["scope"],
                    "tenant": None if slot["scope"] == "global" else info.tenant,
                    "workflow": info.workflow if slot["scope"] == "workflow" else None,
                    "limit": slot["limit"],
                    "on_limit": slot["on_limit"],
                    "held": len(info.holders),
                    "queued": len(waits),
                    "oldest_wait_seconds": max(now - min(waits), 0.0) if waits else None,
                }
            )
        return rows
