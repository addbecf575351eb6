"""A fixed demo session (fixed ids and timestamps) for screenshots and docs."""

from __future__ import annotations

from ._data import MachineRecord, Session, TxRecord

__all__ = ["demo_session"]

_STATES = ["Start", "Ready", "Downloading", "Processing", "Done", "Exception"]
_RELS = {
    "Ready": {"require": ["Start"]},
    "Downloading": {"require": ["Ready"]},
    "Processing": {"require": ["Ready"], "remove": ["Downloading"]},
    "Done": {"remove": ["Processing"]},
}
_STEPS = [
    ("add", ["Start"], True),
    ("add", ["Ready"], True),
    ("add", ["Downloading"], True),
    ("add", ["Done"], False),
    ("add", ["Processing"], True),
    ("add", ["Done"], True),
]


def demo_session(machines: int = 3) -> Session:
    """`machines` machines (a parent and children) with a fixed history."""
    session = Session()
    for n in range(machines):
        mid = "worker" if n == 0 else f"worker-{n}"
        rec = MachineRecord(mid, list(_STATES), dict(_RELS), "" if n == 0 else "worker")
        session.add_machine(rec)
        clocks = dict.fromkeys(_STATES, 0)
        for i, (typ, called, ok) in enumerate(_STEPS):
            if ok:
                clocks = dict(clocks)
                for s in called:
                    clocks[s] += 1 if clocks[s] % 2 == 0 else 0
                if called == ["Processing"]:
                    clocks["Downloading"] += 1
                if called == ["Done"]:
                    clocks["Processing"] += 1
            tx = TxRecord(
                f"{n:02d}{i:014d}", typ, called, clocks, ok, 1_700_000_000 + i
            )
            session.add_tx(mid, tx)
        if n == machines - 1:
            rec.connected = False
    return session
