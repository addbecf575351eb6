"""Disposed states: disposing of a machine in states, before `dispose()`."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Final, TypeAlias

import asyncmachine as am

from ._basic import BASIC_SCHEMA, BasicStates


class DisposedStates(BasicStates):
    """State names of disposal in states."""

    RegisterDisposal: str = am.state()
    """Registers a disposal handler passed under `DISPOSED_ARG_HANDLER` (Multi)."""
    Disposing: str = am.state()
    """Disposal has started (removes `Start` and `Exception`)."""
    Disposed: str = am.state()
    """Resources are released; the machine can be disposed of."""


DISPOSED_SCHEMA: Final[am.Schema] = am.schema_merge(
    BASIC_SCHEMA,
    {
        DisposedStates.RegisterDisposal: am.State(multi=True),
        DisposedStates.Disposing: am.State(
            remove=[DisposedStates.Start, DisposedStates.Exception]
        ),
        DisposedStates.Disposed: am.State(
            remove=[
                DisposedStates.Start,
                DisposedStates.Exception,
                DisposedStates.Disposing,
            ]
        ),
    },
)
"""Relations of `DisposedStates`, with the basic schema."""

DisposalHandler: TypeAlias = Callable[[str, am.StateCtx], Awaitable[object] | None]
"""A disposal handler: `fn(machine_id, ctx)`, sync or async; `ctx` is
`Disposing`'s context."""

DISPOSED_ARG_HANDLER: Final = "DisposedArgHandler"
"""The args key of the handler passed to `RegisterDisposal`."""


class DisposedHandlers:
    """Handlers of `DisposedStates`: bind them with the machine's own handlers.

    `RegisterDisposal` with `{DISPOSED_ARG_HANDLER: fn}` registers `fn`;
    `Disposing` runs the registered handlers in order (each sync or async,
    stopping if `Disposing` ends meanwhile), then adds `Disposed`, which
    disposes of the machine. A machine with these states should be disposed
    of by adding `Disposing` rather than by `dispose()`. Needs a running
    machine (`async with mach:`).
    """

    def __init__(self) -> None:
        self.disposal_handlers: list[DisposalHandler] = []
        """The registered disposal handlers, in registration order."""

    def RegisterDisposalEnter(self, e: am.Event) -> bool:
        """Accept only a callable handler; a bad one becomes an exception."""
        fn = e.args.get(DISPOSED_ARG_HANDLER)
        if callable(fn):
            return True
        # a dry run only answers
        if not e.transition.is_check:
            e.machine.add_err(
                TypeError(
                    f"{DisposedStates.RegisterDisposal}: args[{DISPOSED_ARG_HANDLER!r}] "
                    f"must be a callable, got {type(fn).__name__}"
                )
            )
        return False

    def RegisterDisposalState(self, e: am.Event) -> None:
        """Register the handler passed in the args."""
        self.disposal_handlers.append(e.args[DISPOSED_ARG_HANDLER])

    async def DisposingState(self, e: am.Event) -> None:
        """Run the disposal handlers, then add `Disposed`."""
        mach = e.machine
        assert isinstance(mach, am.Machine)
        ctx = mach.new_state_ctx(DisposedStates.Disposing)
        for fn in list(self.disposal_handlers):
            if ctx.expired:
                return
            res = fn(mach.id, ctx)
            if inspect.isawaitable(res):
                await res
        if not ctx.expired:
            mach.add1(DisposedStates.Disposed)

    def DisposedState(self, e: am.Event) -> None:
        """Dispose of the machine."""
        e.machine.dispose()
