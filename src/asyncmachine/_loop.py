"""The loop binding: what the runtime needs to know of the loop it runs in.

A running machine is bound, once, in `async with machine:`, to the event
loop that entered it: asyncio, trio, or trio in guest mode on an asyncio
host. The binding answers three questions the rest of the runtime asks:

- is this call made in the machine's own loop (its thread *and* its async
  library), or from outside?
- how does a call from outside get into the loop without blocking the
  caller (`call_soon`, thread-safe)?
- how does a task park and get woken (per library)?

The backend is read from sniffio (which trio and anyio keep up to date),
never from asyncio internals, so trio tasks of a guest run on an asyncio
host are recognised as trio. See docs/manual.md, "Where calls come from".
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Final

import sniffio

__all__ = ["Binding", "bind_current", "current_lib", "task_key"]

ASYNCIO: Final = "asyncio"
TRIO: Final = "trio"

_get_ident = threading.get_ident
_sniffio_tl = sniffio.thread_local
_trio_ll: Any = None


def trio_lowlevel() -> Any:
    """`trio.lowlevel`, imported on first use (trio is an optional extra)."""
    global _trio_ll
    if _trio_ll is None:
        import trio.lowlevel

        _trio_ll = trio.lowlevel
    return _trio_ll


def current_lib() -> str:
    """The async library running the current task: "trio" or "asyncio".

    Trio marks its thread while it runs (also for each tick of a guest run);
    everything else is asyncio, as far as anyio is concerned.
    """
    return TRIO if _sniffio_tl.name == TRIO else ASYNCIO


def task_key() -> int:
    """Identifies the current task while it runs (asyncio or trio)."""
    if _sniffio_tl.name == TRIO:
        return id(trio_lowlevel().current_task())
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("a state context is entered from inside a task")
    return id(task)


class Binding:
    """The loop a running machine belongs to."""

    __slots__ = ("_call_soon", "guest", "lib", "thread")

    def __init__(
        self,
        lib: str,
        thread: int,
        call_soon: Callable[..., object],
        guest: bool,
    ) -> None:
        self.lib = lib
        """"asyncio" or "trio"."""
        self.thread = thread
        """Ident of the thread the loop runs in."""
        self.guest = guest
        """True for trio in guest mode on an asyncio host (same thread)."""
        self._call_soon = call_soon

    def is_home(self) -> bool:
        """True when called from the loop itself: its thread and library."""
        return _get_ident() == self.thread and (
            (_sniffio_tl.name == TRIO) is (self.lib == TRIO)
        )

    def call_soon(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run `fn(*args)` soon in the loop, from any thread; never blocks.

        False when the loop is gone (closed or finished).
        """
        try:
            self._call_soon(fn, *args)
        except RuntimeError:  # asyncio: loop closed; trio: RunFinishedError
            return False
        return True

    def __repr__(self) -> str:
        guest = " guest" if self.guest else ""
        return f"<Binding {self.lib}{guest} thread={self.thread}>"


def bind_current() -> Binding:
    """The binding of the loop running the current task."""
    thread = _get_ident()
    if _sniffio_tl.name == TRIO:
        token = trio_lowlevel().current_trio_token()
        try:
            asyncio.get_running_loop()
            guest = True  # a trio run inside a running asyncio loop
        except RuntimeError:
            guest = False
        return Binding(TRIO, thread, token.run_sync_soon, guest)
    loop = asyncio.get_running_loop()
    return Binding(ASYNCIO, thread, loop.call_soon_threadsafe, False)
