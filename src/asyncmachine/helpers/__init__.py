"""Helpers for everyday machine code (the Go project's `amhelp`).

Waiting on several states, synchronous-looking mutations, failsafe requests
with retries and backoff, and typed args on attrs classes.
"""

from __future__ import annotations

from .._args import ArgsError as ArgsError
from .._args import arg as arg
from .._args import args_class as args_class
from .._args import args_converter as args_converter
from .._args import args_from_wire as args_from_wire
from .._args import args_log_fields as args_log_fields
from .._args import args_to_wire as args_to_wire
from .._args import parse_args as parse_args
from .._args import pass_args as pass_args
from ._misc import Cond as Cond
from ._misc import activations as activations
from ._misc import is_multi as is_multi
from ._misc import tag_value as tag_value
from ._misc import tag_value_int as tag_value_int
from ._mutate import EvalError as EvalError
from ._mutate import add1_async as add1_async
from ._mutate import add1_sync as add1_sync
from ._mutate import add_async as add_async
from ._mutate import add_sync as add_sync
from ._mutate import ask_add as ask_add
from ._mutate import ask_add1 as ask_add1
from ._mutate import ask_remove as ask_remove
from ._mutate import ask_remove1 as ask_remove1
from ._mutate import cant_add as cant_add
from ._mutate import cant_add1 as cant_add1
from ._mutate import cant_remove as cant_remove
from ._mutate import cant_remove1 as cant_remove1
from ._mutate import eval_get as eval_get
from ._mutate import remove1_sync as remove1_sync
from ._mutate import remove_multi as remove_multi
from ._mutate import remove_sync as remove_sync
from ._req import MutRequest as MutRequest
from ._req import RequestPolicy as RequestPolicy
from ._req import req_add as req_add
from ._req import req_add1 as req_add1
from ._req import req_remove as req_remove
from ._req import req_remove1 as req_remove1
from ._wait import ExceptionStateError as ExceptionStateError
from ._wait import Waitable as Waitable
from ._wait import group_when1 as group_when1
from ._wait import interval as interval
from ._wait import wait as wait
from ._wait import wait_for_all as wait_for_all
from ._wait import wait_for_any as wait_for_any
from ._wait import wait_for_err_all as wait_for_err_all
from ._wait import wait_for_err_any as wait_for_err_any

__all__: list[str] = [
    "ArgsError",
    "arg",
    "args_class",
    "args_converter",
    "args_from_wire",
    "args_log_fields",
    "args_to_wire",
    "parse_args",
    "pass_args",
]

# waiting, mutations, requests, misc
__all__ += [
    "Cond",
    "EvalError",
    "ExceptionStateError",
    "MutRequest",
    "RequestPolicy",
    "Waitable",
    "activations",
    "add1_async",
    "add1_sync",
    "add_async",
    "add_sync",
    "ask_add",
    "ask_add1",
    "ask_remove",
    "ask_remove1",
    "cant_add",
    "cant_add1",
    "cant_remove",
    "cant_remove1",
    "eval_get",
    "group_when1",
    "interval",
    "is_multi",
    "remove1_sync",
    "remove_multi",
    "remove_sync",
    "req_add",
    "req_add1",
    "req_remove",
    "req_remove1",
    "tag_value",
    "tag_value_int",
    "wait",
    "wait_for_all",
    "wait_for_any",
    "wait_for_err_all",
    "wait_for_err_any",
]
