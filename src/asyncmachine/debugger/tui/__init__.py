"""am-dbg's terminal UI on Textual (needs the `debugger` extra)."""

from ._app import DebuggerApp
from ._data import MachineRecord, Session, SessionTracer, TxRecord
from ._main import main

__all__ = [
    "DebuggerApp",
    "MachineRecord",
    "Session",
    "SessionTracer",
    "TxRecord",
    "main",
]
