"""Headless views of a session: clients, transitions with steps, Mermaid.

`tx_string` writes the text format of Go's am-dbg `--output-tx` (tx.md):
the transition's URL, its UTC time, `[type] called states` and one line per
step. See docs/debugger.md.
"""

from __future__ import annotations

import datetime as _dt

from ._model import MachineRecord, Session, Step, StepType, TransitionRecord

__all__ = ["list_clients", "mermaid", "step_string", "tx_string"]

_REL = {
    StepType.IMPLIED: "add",
    StepType.REMOVED: "remove",
    StepType.BLOCKED: "require",
    StepType.AFTER: "after",
}
_WORD = {
    StepType.REQUESTED: "called",
    StepType.HANDLER: "handler",
    StepType.CANCEL: "cancel",
    StepType.SET: "activate",
    StepType.REMOVE: "deactivate",
}


def step_string(step: Step) -> str:
    """One step as Go writes it (`**A** add **B**`, `activate **A**`)."""
    rel = _REL.get(step.type)
    if rel is not None:
        # Add/Remove: the source acts on the state; Require/After: the
        # state needs / follows the source
        if step.type in (StepType.IMPLIED, StepType.REMOVED):
            a, b = step.source, step.state
        else:
            a, b = step.state, step.source
        return f"**{a}** {rel} **{b}**" if a else f"{rel} **{b}**"
    word = _WORD[step.type]
    if step.type is StepType.REMOVE and step.data == "passive":
        word = "deactivate-passive"  # an already inactive state (Go sessions)
    if step.type is StepType.HANDLER:
        if step.state and step.data.startswith(step.state):
            return f"{word} **{step.state}**{step.data[len(step.state) :]}"
        return f"{word} **{step.data}**"
    return f"{word} **{step.state or 'Any'}**"


def _utc(ts: float) -> str:
    t = _dt.datetime.fromtimestamp(ts, _dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def tx_string(machine_id: str, tx: TransitionRecord) -> str:
    """A transition with its steps, in Go's `--output-tx` text format."""
    out = f"mach://{machine_id}/{tx.id}\n{_utc(tx.time)}\n\n"
    out += f"[{tx.mutation}] {' '.join(tx.called)}\n"
    out += "".join(f"- {step_string(s)}\n" for s in tx.steps)
    return out


def list_clients(session: Session) -> str:
    """One line per machine: id, parent, state count, transitions, drops."""
    lines = []
    for m in session.machines.values():
        status = "connected" if m.connected else "disconnected"
        parent = f" parent={m.parent_id}" if m.parent_id else ""
        lines.append(
            f"{m.id}{parent} states={len(m.states)} "
            f"transitions={len(m.transitions)} dropped={m.dropped} "
            f"dropped_cap={m.dropped_cap} {status}"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def mermaid(machine: MachineRecord, tx: TransitionRecord) -> str:
    """A Mermaid flowchart of one transition: its states and steps.

    Active states after the transition are filled; relation steps are
    labelled edges; called, activated and deactivated states are marked.
    """
    ids = {s: f"s{i}" for i, s in enumerate(machine.states)}
    used: dict[str, None] = {}
    edges: list[str] = []
    marks: dict[str, str] = {}
    for st in tx.steps:
        if st.state:
            used[st.state] = None
        if st.source:
            used[st.source] = None
        rel = _REL.get(st.type)
        if rel is not None and st.source and st.state:
            if st.type in (StepType.IMPLIED, StepType.REMOVED):
                a, b = st.source, st.state
            else:
                a, b = st.state, st.source
            if a in ids and b in ids:
                edges.append(f"    {ids[a]} -->|{rel}| {ids[b]}")
        elif st.type is StepType.REQUESTED:
            marks[st.state] = "called"
        elif st.type is StepType.SET:
            marks[st.state] = "activate"
        elif st.type is StepType.REMOVE:
            passive = st.data == "passive"
            marks[st.state] = "deactivate-passive" if passive else "deactivate"
        elif st.type is StepType.CANCEL and st.state:
            marks[st.state] = "cancel"
    active = set(tx.active(machine.states))
    lines = ["flowchart LR"]
    for s in machine.states:
        if s not in used:
            continue
        label = s if s not in marks else f"{s} ({marks[s]})"
        lines.append(f'    {ids[s]}["{label}"]')
    lines += edges
    lines += [
        f"    class {ids[s]} active"
        for s in machine.states
        if s in used and s in active
    ]
    lines.append("    classDef active fill:#2e7d32,color:#fff")
    return "\n".join(lines) + "\n"
