"""The debugger's data model: machines, transitions, steps and log lines.

A `Session` holds every machine a collector heard from and their
transitions, in memory, under a memory cap (the oldest transitions are
dropped first and counted). The tracer fills it in-process; the Go session
importer and the UI build on the same classes. See docs/debugger.md.

Stability: fields are only ever added, with defaults.
"""

from __future__ import annotations

from typing import Any

import attrs

from .._types import StepType

__all__ = [
    "LogEntry",
    "MachineRecord",
    "Session",
    "Step",
    "StepType",
    "TransitionRecord",
]


@attrs.define
class Step:
    """One step of a transition: what resolution or a handler did.

    `state` is the state the step is about, `source` the state that caused it
    (the one adding, removing, requiring or ordering it; empty when none),
    `data` extra text (a handler's name for handler steps).
    """

    type: StepType
    state: str = ""
    source: str = ""
    data: str = ""


@attrs.define
class LogEntry:
    """One log line of a machine: its level (an `am.LogLevel` value), text
    and wall-clock time (seconds since the epoch, 0 when unknown)."""

    level: int
    text: str
    time: float = 0.0


@attrs.define
class TransitionRecord:
    """One transition of a machine, as the debugger sees it.

    `clocks` holds the tick of every state after the transition, in the
    machine's schema order (`MachineRecord.states`). `mutation` is
    "add", "remove" or "set". `accepted` is the result (False for a canceled
    transition). `pre_logs` are the lines logged between the previous
    transition and this one; `logs` those logged during it. `time` and
    `time_end` are the source side's wall clock (seconds since the epoch).
    `is_queued` marks a record of a mutation put in the queue, not a
    transition that ran: Go's am-dbg sends those, our tracer does not.
    """

    id: str
    clocks: list[int]
    called: list[str]
    mutation: str
    accepted: bool
    is_auto: bool = False
    is_check: bool = False
    is_queued: bool = False
    steps: list[Step] = attrs.Factory(list)
    logs: list[LogEntry] = attrs.Factory(list)
    pre_logs: list[LogEntry] = attrs.Factory(list)
    args: dict[str, str] = attrs.Factory(dict)
    time: float = 0.0
    time_end: float = 0.0
    queue_tick: int = 0
    machine_tick: int = 0

    def active(self, states: list[str]) -> list[str]:
        """The states active after this transition, given the schema order."""
        return [s for s, t in zip(states, self.clocks, strict=False) if t & 1]

    def size(self) -> int:
        """An estimate of this record's memory, in bytes (for the cap)."""
        n = 200 + 8 * len(self.clocks) + 60 * len(self.called) + 120 * len(self.steps)
        if self.logs:
            n += sum(80 + len(e.text) for e in self.logs)
        if self.pre_logs:
            n += sum(80 + len(e.text) for e in self.pre_logs)
        if self.args:
            n += sum(100 + len(k) + len(v) for k, v in self.args.items())
        return n


@attrs.define
class MachineRecord:
    """A machine reporting to a collector: its schema and its transitions.

    `states` are the state names in schema order (clock lists follow it),
    `schema` the relations of each state as plain data (`{"Foo": {"require":
    ["Bar"], "auto": True}}`), `groups` named lists of states, `parent_id`
    the parent machine's id (empty for none). `connected` is False once the
    machine disconnected. `dropped` counts the transitions the machine's
    sender dropped (it reports the count), `dropped_cap` those the session
    dropped under its memory cap.
    """

    id: str
    states: list[str]
    schema: dict[str, dict[str, Any]] = attrs.Factory(dict)
    groups: dict[str, list[str]] = attrs.Factory(dict)
    parent_id: str = ""
    tags: list[str] = attrs.Factory(list)
    connected: bool = True
    dropped: int = 0
    dropped_cap: int = 0
    transitions: list[TransitionRecord] = attrs.Factory(list)
    logs: list[LogEntry] = attrs.Factory(list)
    """Lines logged after the last transition (they move to the next one's
    `pre_logs` when it arrives)."""

    def clock(self, index: int = -1) -> dict[str, int]:
        """The clocks after the transition at `index`, as `{state: tick}`."""
        if not self.transitions:
            return dict.fromkeys(self.states, 0)
        return dict(zip(self.states, self.transitions[index].clocks, strict=False))


@attrs.define
class Session:
    """Every machine a collector heard from, under a memory cap.

    `max_memory` caps the estimated bytes of all transitions (0 = no cap);
    over it, the oldest transitions of the whole session are dropped and
    counted in `dropped` and in their machine's `dropped_cap`. `version`
    grows on every change: a UI polls it to know when to redraw.
    """

    machines: dict[str, MachineRecord] = attrs.Factory(dict)
    max_memory: int = 0
    memory: int = 0
    dropped: int = 0
    version: int = 0
    _order: list[tuple[str, TransitionRecord]] = attrs.field(
        factory=list, repr=False, eq=False, alias="_order"
    )
    _head: int = attrs.field(default=0, repr=False, eq=False, alias="_head")
    # the last clock of each machine, for clock deltas (apply_message)
    _clocks: dict[str, list[int]] = attrs.field(
        factory=dict, repr=False, eq=False, alias="_clocks"
    )
    # per machine: the resolution plans its tracer described (plan id: the
    # plan, change and clock-delta blobs) and its last machine tick, for the
    # short records of the core's fast path (apply_message)
    _plans: dict[str, dict[int, tuple[bytes, bytes | None, bytes]]] = attrs.field(
        factory=dict, repr=False, eq=False, alias="_plans"
    )
    _mt2: dict[str, int] = attrs.field(factory=dict, repr=False, eq=False, alias="_mt2")
    # per machine: log lines streamed before the transition they go with
    # (its own lines, and those logged between transitions)
    _lines: dict[str, tuple[list[LogEntry], list[LogEntry]]] = attrs.field(
        factory=dict, repr=False, eq=False, alias="_lines"
    )

    def add_machine(self, machine: MachineRecord) -> MachineRecord:
        """Add (or replace the schema of) a machine; keeps known transitions."""
        old = self.machines.get(machine.id)
        if old is not None and old is not machine:
            old.states = machine.states
            old.schema = machine.schema
            old.groups = machine.groups
            old.parent_id = machine.parent_id
            old.tags = machine.tags
            old.connected = True
            machine = old
        else:
            self.machines[machine.id] = machine
            for tx in machine.transitions:
                self._account(machine.id, tx)
        self.version += 1
        self._trim()
        return machine

    def add_transition(self, machine_id: str, tx: TransitionRecord) -> None:
        """Append a transition of a known machine (KeyError for unknown ones)."""
        mach = self.machines[machine_id]
        if mach.logs:
            tx.pre_logs[:0] = mach.logs
            mach.logs = []
        mach.transitions.append(tx)
        self._account(machine_id, tx)
        self.version += 1
        self._trim()

    def add_log(self, machine_id: str, entry: LogEntry) -> None:
        """A line logged outside transitions (attached to the next one)."""
        self.machines[machine_id].logs.append(entry)
        self.version += 1

    def _account(self, machine_id: str, tx: TransitionRecord) -> None:
        self.memory += tx.size()
        self._order.append((machine_id, tx))

    def _trim(self) -> None:
        cap = self.max_memory
        if not cap:
            return
        order = self._order
        while self.memory > cap and self._head < len(order):
            mid, tx = order[self._head]
            self._head += 1
            mach = self.machines.get(mid)
            if mach is not None and mach.transitions and mach.transitions[0] is tx:
                del mach.transitions[0]
                mach.dropped_cap += 1
                self.dropped += 1
            self.memory -= tx.size()
        if self._head > 1024 and self._head * 2 > len(order):
            del order[: self._head]
            self._head = 0

    def transitions(self, machine_id: str) -> list[TransitionRecord]:
        """The kept transitions of a machine, oldest first."""
        return self.machines[machine_id].transitions
