"""What the UI shows, computed from the debugger's model (no widgets here).

The filtered transition list and the error counts are kept incrementally:
a live session only appends, so a frame costs what arrived since the last
one, not the whole history. See docs/am-dbg.md.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from rich.text import Text

from .._model import LogEntry, MachineRecord, Session, Step, StepType, TransitionRecord
from .._view import step_string

__all__ = [
    "FILTERS",
    "STEP_WORDS",
    "ErrorCounter",
    "TxFilter",
    "active_at_step",
    "client_depths",
    "human_time",
    "log_lines",
    "parse_url",
    "plain_step",
    "step_marks",
    "timeline",
]

FILTERS = ("auto", "canceled", "empty", "checks", "queued", "disconnected")
"""Filter names: the first five hide transitions, `disconnected` machines."""

STEP_WORDS: dict[StepType, str] = {
    StepType.REQUESTED: "called",
    StepType.IMPLIED: "implied",
    StepType.REMOVED: "removed",
    StepType.BLOCKED: "blocked",
    StepType.AFTER: "after",
    StepType.HANDLER: "handler",
    StepType.CANCEL: "cancel",
    StepType.SET: "set",
    StepType.REMOVE: "unset",
}
"""The mark a step leaves on its state in the states tree."""


def _hidden(
    tx: TransitionRecord, prev: list[int] | None, filters: frozenset[str]
) -> bool:
    if "auto" in filters and tx.is_auto:
        return True
    if "canceled" in filters and not tx.accepted:
        return True
    if "checks" in filters and tx.is_check:
        return True
    if "queued" in filters and tx.is_queued:
        return True
    # empty: accepted, yet no state's tick moved
    return "empty" in filters and tx.accepted and tx.clocks == prev


class TxFilter:
    """The indexes of one machine's transitions that pass `filters`.

    `update` only looks at transitions that arrived since the last call; a
    drop at the front (the session's memory cap) recomputes from scratch.
    """

    def __init__(self, machine: MachineRecord, filters: frozenset[str]) -> None:
        self.machine: MachineRecord = machine
        """The machine filtered."""
        self.filters: frozenset[str] = filters
        """The active transition filters."""
        self.index: list[int] = []
        """Positions in `machine.transitions` of the shown transitions."""
        self._done = 0
        self._dropped = machine.dropped_cap
        self._prev: list[int] | None = None

    def update(self) -> bool:
        """Catch up with the machine; True when the list was rebuilt."""
        m = self.machine
        rebuilt = False
        if m.dropped_cap != self._dropped or len(m.transitions) < self._done:
            self.index, self._done, self._prev = [], 0, None
            self._dropped = m.dropped_cap
            rebuilt = True
        txs = m.transitions
        filters = self.filters
        for i in range(self._done, len(txs)):
            tx = txs[i]
            if not filters or not _hidden(tx, self._prev, filters):
                self.index.append(i)
            if tx.accepted:
                self._prev = tx.clocks
        self._done = len(txs)
        return rebuilt


class ErrorCounter:
    """Per machine: how many accepted transitions activated `Exception`."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, int, int]] = {}

    def count(self, m: MachineRecord) -> int:
        """The machine's error count (cheap: only new transitions are read)."""
        done, dropped, n = self._seen.get(m.id, (0, m.dropped_cap, 0))
        if dropped != m.dropped_cap:
            done, dropped, n = 0, m.dropped_cap, 0
        txs = m.transitions
        for tx in txs[done:]:
            if tx.accepted and "Exception" in tx.called:
                n += 1
        self._seen[m.id] = (len(txs), dropped, n)
        return n


def step_marks(steps: Iterable[Step]) -> dict[str, list[str]]:
    """state -> the marks its steps left, in order."""
    out: dict[str, list[str]] = {}
    for st in steps:
        if st.state:
            out.setdefault(st.state, []).append(STEP_WORDS[st.type])
    return out


def active_at_step(
    states: list[str],
    before: list[int] | None,
    tx: TransitionRecord,
    step: int,
) -> tuple[set[str], dict[str, int]]:
    """Active states and ticks after the first `step` steps of `tx`.

    Stepping starts from the clocks before the transition; `set` and
    `unset` steps move a state; past the last step it is the clocks after.
    """
    if step >= len(tx.steps):
        ticks = dict(zip(states, tx.clocks, strict=False))
        return {s for s, t in ticks.items() if t & 1}, ticks
    base = before if before is not None else [0] * len(states)
    ticks = dict(zip(states, base, strict=False))
    active = {s for s, t in ticks.items() if t & 1}
    for st in tx.steps[:step]:
        if st.type is StepType.SET and st.state:
            if st.state not in active:
                ticks[st.state] = ticks.get(st.state, 0) + 1
            active.add(st.state)
        elif st.type is StepType.REMOVE and st.state in active:
            active.discard(st.state)
            ticks[st.state] = ticks.get(st.state, 0) + 1
    return active, ticks


def parse_url(url: str) -> tuple[str, str, int | None]:
    """`mach://ID/TX/STEP` as (machine id, tx id or number, step or None).

    Raises ValueError naming the URL when it is not a `mach://` one or the
    step is not a number.
    """
    if not url.startswith("mach://"):
        raise ValueError(f"not a mach:// URL: {url!r}")
    parts = url[len("mach://") :].split("/")
    if not parts[0]:
        raise ValueError(f"no machine id in {url!r}")
    tx = parts[1] if len(parts) > 1 else ""
    step: int | None = None
    if len(parts) > 2 and parts[2]:
        if not parts[2].isdigit():
            raise ValueError(f"step of {url!r} is not a number: {parts[2]!r}")
        step = int(parts[2])
    return parts[0], tx, step


def human_time(ts: float) -> str:
    """A wall-clock time as HH:MM:SS.mmm (UTC)."""
    if not ts:
        return "-"
    t = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    return t.strftime("%H:%M:%S.%f")[:-3]


def plain_step(step: Step) -> str:
    """A step as text (Go's format without the bold markers)."""
    return step_string(step).replace("**", "")


def log_lines(
    machine: MachineRecord, pos: int, level: int, height: int, scan: int = 500
) -> list[tuple[LogEntry, bool]]:
    """The log up to the transition at `pos`: (entry, belongs to it) pairs.

    At most `height` lines, newest last; lines above `level` are left out.
    At most `scan` transitions are read back (a frame's cost stays bounded
    when the log is sparse or filtered out).
    """
    out: list[tuple[LogEntry, bool]] = []
    txs = machine.transitions
    i = pos
    stop = max(-1, pos - scan)
    while i > stop and len(out) < height:
        tx = txs[i]
        mine = i == pos
        out.extend((e, mine) for e in reversed(tx.logs) if e.level <= level)
        out.extend((e, False) for e in reversed(tx.pre_logs) if e.level <= level)
        i -= 1
    out = out[:height]
    out.reverse()
    return out


def timeline(pos: int, total: int, width: int) -> Text:
    """A one-line bar with a marker at `pos` of `total` (0-based)."""
    width = max(4, width)
    if total <= 0:
        return Text("·" * width, style="dim")
    at = min(width - 1, pos * width // max(1, total))
    out = Text()
    out.append("━" * at, style="green")
    out.append("●", style="bold")
    out.append("─" * (width - at - 1), style="dim")
    return out


def client_depths(session: Session, ids: list[str]) -> dict[str, int]:
    """Nesting depth of each listed machine (0 for roots)."""
    known = set(ids)
    out: dict[str, int] = {}
    for mid in ids:
        d, m, seen = 0, session.machines[mid], {mid}
        while m.parent_id in known and m.parent_id not in seen:
            seen.add(m.parent_id)
            d += 1
            m = session.machines[m.parent_id]
        out[mid] = d
    return out
