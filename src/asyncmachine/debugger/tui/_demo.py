"""A fixed demo session for screenshots, docs and tests.

Recorded from real machines (the debug tracer, in-process), then given
fixed transition ids and times so that screenshots do not change.
"""

from __future__ import annotations

import asyncmachine as am

from .._collector import apply_message
from .._model import Session
from .._tracer import DebugTracer

__all__ = ["DEMO_SCHEMA", "demo_session", "drive_demo"]

S = am.State
DEMO_SCHEMA: dict[str, am.State] = {
    "Start": S(add=["Ready"]),
    "Ready": S(require=["Start"]),
    "Downloading": S(require=["Ready"], remove=["Done"]),
    "Processing": S(require=["Ready"], remove=["Downloading"]),
    "Done": S(remove=["Processing"], after=["Processing"]),
    "Blocked": S(require=["Done"]),
}
"""The demo machines' states."""


def drive_demo(mach: am.Machine, fail: bool = False) -> None:
    """A fixed history: start, download, a canceled call, process, done."""
    mach.add1("Start")
    mach.log("starting the download")
    mach.add1("Downloading")
    mach.add1("Blocked")  # canceled: Blocked requires Done
    mach.add1("Processing")
    mach.log("processed %d items", 3)
    mach.add1("Done")
    if fail:
        mach.add_err(RuntimeError("disk full"))


def demo_session(machines: int = 3) -> Session:
    """`machines` machines (a parent and its children) with a fixed history.

    The last one has an error and is disconnected.
    """
    session = Session()
    root = am.Machine(DEMO_SCHEMA, id="worker", log_level=am.LogLevel.OPS)
    root.logger = lambda level, text: None
    root.bind_tracer(DebugTracer(lambda msg: apply_message(session, msg)))
    drive_demo(root)
    for n in range(1, machines):
        # children inherit the debug tracer
        child = am.Machine(
            DEMO_SCHEMA, id=f"worker-{n}", parent=root, log_level=am.LogLevel.OPS
        )
        last = n == machines - 1
        drive_demo(child, fail=last)
        if last:
            child.dispose()
    for mach_rec in session.machines.values():
        for i, tx in enumerate(mach_rec.transitions):
            tx.id = f"{mach_rec.id}-{i + 1:03d}"
            tx.time = 1_700_000_000 + i
            tx.time_end = tx.time
            for e in (*tx.logs, *tx.pre_logs):
                e.time = tx.time
    return session
