"""The default handler of the Exception state (docs/design/semantics.md §8.5)."""

from __future__ import annotations

from typing import Any

from ._transition import Event
from ._types import LogLevel

__all__ = ["ExceptionHandler"]


class ExceptionHandler:
    """Mixin for handler classes: logs errors that activate `Exception`.

    Bind it (or a handler class that inherits it) to see `[error] ...`
    lines, with tracebacks when the machine's `log_stack_trace` is on.
    """

    def ExceptionState(self, e: Event) -> None:
        """Log the error that activated `Exception`."""
        mach = e.machine
        args = e.args
        err = args.get("err")
        msg = str(err).strip() if err is not None else "missing error in args"
        trace = args.get("err_trace") or ""
        panic: dict[str, Any] | None = args.get("panic")
        if panic is None:
            text = f"[error] {msg}"
        else:
            tx = panic.get("transition")
            mtype = tx.mutation.type if tx is not None else e.transition.mutation.type
            called = " ".join(panic.get("called_states", ()))
            text = f"[error:{mtype}] {called} ({msg})"
        if mach.log_stack_trace and trace:
            text += "\n" + trace.rstrip("\n")
        if mach.log_level >= LogLevel.CHANGES:
            mach._log(LogLevel.CHANGES, text)
