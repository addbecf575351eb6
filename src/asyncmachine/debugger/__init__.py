"""am-dbg for Python: transition steps, the debug stream and its collector.

`bind_dbg(mach)` (or `AM_DBG_ADDR=1`) reports every transition of a machine,
with steps and log lines, to a `Collector` (`am-dbg serve`), which keeps them
in a `Session`. `read_session` also reads sessions exported by Go's am-dbg
(`.gob.br`). See docs/debugger.md.
"""

from __future__ import annotations

from ._collector import Collector as Collector
from ._collector import apply_message as apply_message
from ._go_import import GoImportError as GoImportError
from ._go_import import read_go_session as read_go_session
from ._gob import GobDecodeError as GobDecodeError
from ._gob import GobInterface as GobInterface
from ._gob import GobType as GobType
from ._gob import decode_gob as decode_gob
from ._gob import go_time as go_time
from ._model import LogEntry as LogEntry
from ._model import MachineRecord as MachineRecord
from ._model import Session as Session
from ._model import Step as Step
from ._model import StepType as StepType
from ._model import TransitionRecord as TransitionRecord
from ._session import read_session as read_session
from ._session import write_session as write_session
from ._tracer import DEFAULT_ADDR as DEFAULT_ADDR
from ._tracer import DebugTracer as DebugTracer
from ._tracer import NetworkMachine as NetworkMachine
from ._tracer import Sender as Sender
from ._tracer import bind_dbg as bind_dbg
from ._tracer import close_senders as close_senders
from ._tracer import machine_record as machine_record
from ._tracer import parse_addr as parse_addr
from ._tracer import sender_for as sender_for
from ._view import list_clients as list_clients
from ._view import mermaid as mermaid
from ._view import step_string as step_string
from ._view import tx_string as tx_string

__all__ = [
    "DEFAULT_ADDR",
    "Collector",
    "DebugTracer",
    "GoImportError",
    "GobDecodeError",
    "GobInterface",
    "GobType",
    "LogEntry",
    "MachineRecord",
    "NetworkMachine",
    "Sender",
    "Session",
    "Step",
    "StepType",
    "TransitionRecord",
    "apply_message",
    "bind_dbg",
    "close_senders",
    "decode_gob",
    "go_time",
    "list_clients",
    "machine_record",
    "mermaid",
    "parse_addr",
    "read_go_session",
    "read_session",
    "sender_for",
    "step_string",
    "tx_string",
    "write_session",
]
