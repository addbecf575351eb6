"""The synchronous part of state contexts (docs/design/semantics.md §2.3).

The anyio part (cancel scopes, waiting) is `asyncmachine.StateCtx` in the
runtime layer; the core only creates, expires and forgets contexts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._machine import CoreMachine

__all__ = ["CtxBase"]

# guards callback registration against expiry in another thread (a running
# machine expires its contexts in its loop; a context may be used elsewhere)
_lock = threading.Lock()


class CtxBase:
    """Bound to one tick of one state; expires when that tick changes."""

    __slots__ = ("_callbacks", "_expired", "machine", "state", "tick")

    def __init__(
        self, machine: CoreMachine, state: str, tick: int, expired: bool
    ) -> None:
        self.machine: CoreMachine = machine
        """The machine the context belongs to."""
        self.state: str = state
        """The state the context is bound to."""
        self.tick: int = tick
        """The state's tick when the context was created."""
        self._expired = expired
        self._callbacks: list[Callable[[], None]] | None = None

    @property
    def expired(self) -> bool:
        """True once the state's tick changed or the machine was disposed."""
        return self._expired

    def on_expire(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Call `fn` when the context expires (at once if it already has).

        Returns a function that unregisters `fn`. `fn` runs where the
        context expires: in the machine's loop, for a running machine.
        """
        with _lock:
            if not self._expired:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return lambda: self._unregister(fn)
        fn()
        return _noop

    def _unregister(self, fn: Callable[[], None]) -> None:
        with _lock:
            cbs = self._callbacks
            if cbs is not None and fn in cbs:
                cbs.remove(fn)

    def _expire(self) -> None:
        with _lock:
            if self._expired:
                return
            self._expired = True
            cbs = self._callbacks
            self._callbacks = None
        if cbs:
            for fn in cbs:
                fn()

    def __repr__(self) -> str:
        state = "expired" if self._expired else "live"
        return f"<StateCtx {self.state}:{self.tick} {state}>"


def _noop() -> None:
    return None
