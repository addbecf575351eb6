"""The minimal data the UI shows: machines, their transitions, a session.

A stand-in for the debugger's data model (issue 14) until it lands; the UI
reads only the names defined here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._tracer import Tracer

if TYPE_CHECKING:
    from ..._runtime import Machine
    from ..._transition import Transition

__all__ = ["MachineRecord", "Session", "SessionTracer", "TxRecord"]


class TxRecord:
    """One transition of a machine, as the debugger keeps it."""

    __slots__ = ("called", "clocks", "id", "result", "time", "type", "flags")

    def __init__(
        self,
        id: str,
        type: str,
        called: list[str],
        clocks: dict[str, int],
        result: bool,
        time: float,
        flags: list[str] | None = None,
    ) -> None:
        self.id: str = id
        """The transition's id."""
        self.type: str = type
        """The mutation type: add, remove or set."""
        self.called: list[str] = called
        """The called states."""
        self.clocks: dict[str, int] = clocks
        """Ticks of every state after the transition."""
        self.result: bool = result
        """True when the transition was accepted."""
        self.time: float = time
        """Wall-clock time of the end of the transition (epoch seconds)."""
        self.flags: list[str] = flags or []
        """Markers such as `auto` and `check`."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of this record."""
        return {s: getattr(self, s) for s in self.__slots__}


class MachineRecord:
    """A debugged machine: its schema and every transition received."""

    __slots__ = ("connected", "errors", "id", "parent", "relations", "states", "txs")

    def __init__(
        self,
        id: str,
        states: list[str],
        relations: dict[str, dict[str, list[str]]] | None = None,
        parent: str = "",
    ) -> None:
        self.id: str = id
        """The machine's id."""
        self.states: list[str] = states
        """State names in schema order."""
        self.relations: dict[str, dict[str, list[str]]] = relations or {}
        """state -> relation name -> target states."""
        self.parent: str = parent
        """The parent machine's id, or an empty string."""
        self.txs: list[TxRecord] = []
        """Transitions in the order received."""
        self.connected: bool = True
        """False once the machine disconnected (it stays inspectable)."""
        self.errors: int = 0
        """Transitions that activated the Exception state."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of this machine and its transitions."""
        return {
            "id": self.id,
            "states": self.states,
            "relations": self.relations,
            "parent": self.parent,
            "txs": [t.to_json() for t in self.txs],
        }


class Session:
    """All machines the debugger knows, with a change counter for polling."""

    def __init__(self) -> None:
        self.machines: dict[str, MachineRecord] = {}
        """Machines by id, in order of arrival."""
        self.changes: int = 0
        """Bumped on every change; the UI redraws when it moved."""

    def add_machine(self, rec: MachineRecord) -> None:
        """Add (or replace) a machine."""
        self.machines[rec.id] = rec
        self.changes += 1

    def add_tx(self, machine_id: str, tx: TxRecord) -> None:
        """Append a transition to a known machine."""
        rec = self.machines[machine_id]
        rec.txs.append(tx)
        if tx.clocks.get("Exception", 0) % 2 == 1 and tx.result:
            rec.errors += 1
        self.changes += 1

    def disconnect(self, machine_id: str) -> None:
        """Mark a machine disconnected; its data stays."""
        if machine_id in self.machines:
            self.machines[machine_id].connected = False
            self.changes += 1

    def save(self, path: str | Path) -> None:
        """Write the session as JSON to `path`."""
        data = {"machines": [m.to_json() for m in self.machines.values()]}
        Path(path).write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Session:
        """Read a session written by `save`; raises ValueError on bad data."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            session = cls()
            for m in data["machines"]:
                rec = MachineRecord(m["id"], m["states"], m["relations"], m["parent"])
                rec.connected = False
                session.add_machine(rec)
                for t in m["txs"]:
                    session.add_tx(rec.id, TxRecord(**t))
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"not an am-dbg session file: {path}: {e}") from e
        return session


class SessionTracer(Tracer):
    """Records the transitions of machines it is bound to into a Session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        """The session written to."""

    def inheritable(self) -> bool:
        """Submachines are recorded too."""
        return True

    def machine_init(self, machine: Machine) -> None:
        """Register the machine with its states and relations."""
        rels: dict[str, dict[str, list[str]]] = {}
        for name, st in machine.schema.items():
            r = {
                k: list(getattr(st, k) or ())
                for k in ("require", "add", "remove", "after")
            }
            rels[name] = {k: v for k, v in r.items() if v}
        self.session.add_machine(
            MachineRecord(machine.id, machine.state_names, rels, machine.parent_id)
        )

    def transition_end(self, transition: Transition) -> None:
        """Append the finished transition."""
        flags = []
        if transition.is_auto:
            flags.append("auto")
        if transition.is_check:
            flags.append("check")
        self.session.add_tx(
            transition.machine.id,
            TxRecord(
                transition.id,
                str(transition.mutation.type).lower().split(".")[-1],
                transition.called_states,
                dict(transition.clock_after),
                transition.is_accepted,
                time.time(),
                flags,
            ),
        )

    def machine_dispose(self, machine_id: str) -> None:
        """The machine stays inspectable, marked disconnected."""
        self.session.disconnect(machine_id)
