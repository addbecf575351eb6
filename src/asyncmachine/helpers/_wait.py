"""Waiting helpers: several events at once, bounded by a state context.

The Go originals (`amhelp.WaitForAll` and friends) wrap when-channels in
`select` statements; here they wrap when-events in anyio cancel scopes.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, final

import anyio
import anyio.abc

from .._runtime import Machine, StateCtx, WhenEvent
from .._types import EXCEPTION, StateNameError

__all__ = [
    "ExceptionStateError",
    "Waitable",
    "group_when1",
    "interval",
    "wait",
    "wait_for_all",
    "wait_for_any",
    "wait_for_err_all",
    "wait_for_err_any",
]


class Waitable(Protocol):
    """Anything with `is_set()` and `await wait()`: when-events, `anyio.Event`."""

    def is_set(self) -> bool:
        """True once the event happened."""

    async def wait(self) -> None:
        """Wait until the event happened."""


@final
class ExceptionStateError(Exception):
    """The watched machine's `Exception` state activated while waiting.

    `machine_id` names the machine; `err` is its recorded error (also the
    `__cause__`).
    """

    def __init__(self, machine_id: str, err: BaseException | None) -> None:
        self.machine_id = machine_id
        self.err = err
        super().__init__(f"machine {machine_id}: Exception: {err!r}")


def _check_ctx(ctx: StateCtx | None) -> None:
    if ctx is not None and not isinstance(ctx, StateCtx):
        raise TypeError(f"ctx must be a state context, got {type(ctx).__name__}")


@contextlib.contextmanager
def _scope(ctx: StateCtx | None) -> Iterator[None]:
    """End the block quietly when `ctx` expires."""
    if ctx is None:
        yield
    else:
        with ctx:
            yield


async def _all_then_cancel(
    events: Sequence[Waitable], scope: anyio.CancelScope
) -> None:
    for ev in events:
        await ev.wait()
    scope.cancel()


async def _one_then_cancel(ev: Waitable, scope: anyio.CancelScope) -> None:
    await ev.wait()
    scope.cancel()


async def _race(
    events: Sequence[Waitable],
    every: bool,
    ctx: StateCtx | None,
    mach: Machine | None,
) -> bool:
    _check_ctx(ctx)
    if mach is not None and not isinstance(mach, Machine):
        raise TypeError(f"expected an am.Machine, got {type(mach).__name__}")
    for ev in events:
        if not (callable(getattr(ev, "is_set", None)) and hasattr(ev, "wait")):
            raise TypeError(
                f"expected when-events (is_set() and wait()), got {type(ev).__name__}"
            )
    check = all if every else any
    if check(ev.is_set() for ev in events):
        return True
    if ctx is not None and ctx.expired:
        return False
    if mach is not None and mach.is_err():
        raise ExceptionStateError(mach.id, mach.err) from mach.err
    err_ev: WhenEvent | None = None
    err_tick = 0
    if mach is not None:
        err_ev = mach.when_err()
        err_tick = mach.tick(EXCEPTION)
    with _scope(ctx):
        async with anyio.create_task_group() as tg:
            pending = [ev for ev in events if not ev.is_set()]
            if every:
                tg.start_soon(_all_then_cancel, pending, tg.cancel_scope)
            else:
                for ev in pending:
                    tg.start_soon(_one_then_cancel, ev, tg.cancel_scope)
            if err_ev is not None:
                tg.start_soon(_one_then_cancel, err_ev, tg.cancel_scope)
    if check(ev.is_set() for ev in events):
        return True
    # Exception activated meanwhile (a disposed machine reads tick 0)
    if mach is not None and mach.tick(EXCEPTION) > err_tick:
        raise ExceptionStateError(mach.id, mach.err) from mach.err
    return False


async def wait_for_all(*events: Waitable, ctx: StateCtx | None = None) -> bool:
    """Wait until every event is set.

    Returns True once all are set (at once if they already are), False when
    `ctx` expired first. For a deadline (Go's `timeout` argument), wrap the
    call in `anyio.fail_after`.
    """
    return await _race(events, True, ctx, None)


async def wait_for_any(*events: Waitable, ctx: StateCtx | None = None) -> bool:
    """Wait until at least one event is set.

    Returns True once one is set (at once if one already is), False when
    `ctx` expired first.
    """
    if not events:
        raise ValueError("wait_for_any needs at least one event")
    return await _race(events, False, ctx, None)


async def wait_for_err_all(
    mach: Machine,
    *events: Waitable,
    ctx: StateCtx | None = None,
) -> bool:
    """`wait_for_all`, which also fails when `mach` goes into `Exception`.

    Raises `ExceptionStateError` if `Exception` is active when called (and
    the events are not all set yet) or activates while waiting.
    """
    return await _race(events, True, ctx, mach)


async def wait_for_err_any(
    mach: Machine,
    *events: Waitable,
    ctx: StateCtx | None = None,
) -> bool:
    """`wait_for_any`, which also fails when `mach` goes into `Exception`."""
    if not events:
        raise ValueError("wait_for_err_any needs at least one event")
    return await _race(events, False, ctx, mach)


async def wait(seconds: float, ctx: StateCtx | None = None) -> bool:
    """Sleep `seconds`; return False at once when `ctx` expires, else True."""
    _check_ctx(ctx)
    if ctx is not None and ctx.expired:
        return False
    with _scope(ctx):
        await anyio.sleep(seconds)
    return ctx is None or not ctx.expired


async def interval(
    fn: Callable[[], object],
    every: float,
    *,
    duration: float | None = None,
    ctx: StateCtx | None = None,
) -> bool:
    """Call `fn` every `every` seconds (the first call after one period).

    `fn` may be sync or async; returning `False` stops the loop. Stops after
    `duration` seconds (None: never). Returns True when it stopped by
    `fn` or `duration`, False when `ctx` expired.
    """
    _check_ctx(ctx)
    if every <= 0:
        raise ValueError(f"every must be positive, got {every!r}")
    if ctx is not None and ctx.expired:
        return False
    start = anyio.current_time()
    end = None if duration is None else start + duration
    with _scope(ctx):
        n = 0
        while True:
            n += 1
            await anyio.sleep_until(start + n * every)
            if end is not None and anyio.current_time() > end:
                return True
            ret = fn()
            if inspect.isawaitable(ret):
                ret = await ret
            if ret is False:
                return True
    return False


def group_when1(
    machs: Iterable[Machine], state: str, ctx: StateCtx | None = None
) -> list[WhenEvent]:
    """`when1(state)` of every machine in `machs`, for `wait_for_all`.

    Raises `StateNameError` naming the first machine that lacks `state`.
    """
    machs = list(machs)
    for mach in machs:
        if not mach.has1(state):
            raise StateNameError(state, mach.id)
    return [mach.when1(state, ctx) for mach in machs]


ExceptionStateError.__module__ = "asyncmachine.helpers"
