"""asyncmachine: a relational, multi-state, clock-based state machine for anyio.

Users write ``import asyncmachine as am``.
"""

from ._args import ArgsError as ArgsError
from ._args import arg as arg
from ._args import args_class as args_class
from ._args import parse_args as parse_args
from ._args import pass_args as pass_args
from ._exception import ExceptionHandler as ExceptionHandler
from ._export import Serialized as Serialized
from ._lint import LintIssue as LintIssue
from ._lint import lint as lint
from ._log import LogArgsMapper as LogArgsMapper
from ._log import LogSink as LogSink
from ._log import new_log_args_mapper as new_log_args_mapper
from ._machine import CoreMachine as CoreMachine
from ._runtime import Machine as Machine
from ._runtime import StateCtx as StateCtx
from ._runtime import WhenEvent as WhenEvent
from ._schema import s_add as s_add
from ._schema import schema_merge as schema_merge
from ._states import StatesBase as StatesBase
from ._states import state as state
from ._tracer import Tracer as Tracer
from ._transition import Event as Event
from ._transition import Mutation as Mutation
from ._transition import Transition as Transition
from ._types import EXCEPTION as EXCEPTION
from ._types import Clock as Clock
from ._types import HandlerTimeoutError as HandlerTimeoutError
from ._types import LogLevel as LogLevel
from ._types import MachineDisposedError as MachineDisposedError
from ._types import MutationType as MutationType
from ._types import NestedEvalError as NestedEvalError
from ._types import Position as Position
from ._types import Result as Result
from ._types import S as S
from ._types import Schema as Schema
from ._types import SchemaError as SchemaError
from ._types import State as State
from ._types import StateNameError as StateNameError
from ._types import Time as Time

__version__ = "0.1.0"

__all__ = [
    "EXCEPTION",
    "ArgsError",
    "Clock",
    "CoreMachine",
    "Event",
    "ExceptionHandler",
    "HandlerTimeoutError",
    "LintIssue",
    "LogArgsMapper",
    "LogLevel",
    "LogSink",
    "Machine",
    "MachineDisposedError",
    "Mutation",
    "MutationType",
    "NestedEvalError",
    "Position",
    "Result",
    "S",
    "Schema",
    "SchemaError",
    "Serialized",
    "State",
    "StateCtx",
    "StateNameError",
    "StatesBase",
    "Time",
    "Tracer",
    "Transition",
    "WhenEvent",
    "arg",
    "args_class",
    "lint",
    "new_log_args_mapper",
    "parse_args",
    "pass_args",
    "s_add",
    "schema_merge",
    "state",
]

# show the public path in reprs and docs
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("asyncmachine._"):
        _obj.__module__ = "asyncmachine"
del _name, _obj
