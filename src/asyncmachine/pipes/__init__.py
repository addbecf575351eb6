"""Pipes: bind states of one machine to states of another.

`bind(source, target, "Foo")` adds `Foo` to `target` when it activates in
`source` and removes it when it deactivates; `pipe_add` and `pipe_remove`
pipe one direction, `bind_err` pipes errors, `bind_many` several states.
Each call returns a `Pipe`; `pipe.close()` removes it. `add` and `remove`
make single handlers for piping by hand.
"""

from __future__ import annotations

from ._pipes import Pipe as Pipe
from ._pipes import PipeHandler as PipeHandler
from ._pipes import add as add
from ._pipes import add_flat as add_flat
from ._pipes import bind as bind
from ._pipes import bind_any as bind_any
from ._pipes import bind_connected as bind_connected
from ._pipes import bind_err as bind_err
from ._pipes import bind_many as bind_many
from ._pipes import bind_ready as bind_ready
from ._pipes import bind_start as bind_start
from ._pipes import pipe_add as pipe_add
from ._pipes import pipe_remove as pipe_remove
from ._pipes import remove as remove
from ._pipes import remove_flat as remove_flat
from ._pipes import sync as sync

__all__ = [
    "Pipe",
    "PipeHandler",
    "add",
    "add_flat",
    "bind",
    "bind_any",
    "bind_connected",
    "bind_err",
    "bind_many",
    "bind_ready",
    "bind_start",
    "pipe_add",
    "pipe_remove",
    "remove",
    "remove_flat",
    "sync",
]

Pipe.__module__ = "asyncmachine.pipes"
PipeHandler.__module__ = "asyncmachine.pipes"
