"""Mutation helpers: synchronous-looking mutations, dry-run guards, eval getters.

`add_sync` and friends mutate and return the mutation's real result, also
when the machine runs in another thread (where a plain `add` can only say
`QUEUED`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar, final, overload

import anyio
import anyio.to_thread

from .._ctx import CtxBase
from .._machine import CoreMachine
from .._runtime import Machine, StateCtx
from .._tracer import Tracer
from .._transition import Event, Transition
from .._types import MutationType, Result, StateNameError
from ._wait import _check_ctx, _scope

__all__ = [
    "EvalError",
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
    "remove1_sync",
    "remove_multi",
    "remove_sync",
]

T = TypeVar("T")

_ADD: Final = MutationType.ADD
_REMOVE: Final = MutationType.REMOVE
_EXECUTED: Final = Result.EXECUTED
_CANCELED: Final = Result.CANCELED
_QUEUED: Final = Result.QUEUED


def _names(states: Iterable[str]) -> list[str]:
    if isinstance(states, str):
        raise TypeError(
            f"expected a list of state names, got the string {states!r} "
            "(use the *1 helper for one state)"
        )
    return list(states)


def _args(args: dict[str, Any] | None) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise TypeError(f"args must be a dict or None, got {type(args).__name__}")
    # a dict of our own: its identity marks our mutation in the machine
    return dict(args)


def _do(
    mach: CoreMachine, mtype: MutationType, states: list[str], args: dict[str, Any]
) -> Result:
    if mtype is _ADD:
        return mach.add(states, args)
    return mach.remove(states, args)


class _ResultWatch(Tracer):
    """Records whether the transition of one mutation (by args identity)
    was accepted."""

    def __init__(self, args: dict[str, Any]) -> None:
        self.args = args
        self.result: Result | None = None

    def transition_end(self, transition: Transition) -> None:
        mut = transition.mutation
        if self.result is None and mut.args is self.args and not mut.is_check:
            self.result = _EXECUTED if transition.is_accepted else _CANCELED


def _foreign_sync(
    mach: Machine,
    mtype: MutationType,
    states: list[str],
    args: dict[str, Any],
    ctx: CtxBase | None,
) -> Result:
    """In a worker thread: mutate inside the machine's loop and wait for it."""
    watch = _ResultWatch(args)
    out: list[Result] = []

    def start() -> None:
        # in the loop thread, between transitions: the mutation is queued
        # and runs as soon as `eval` returns, before anything else
        mach.bind_tracer(watch)
        out.append(_do(mach, mtype, states, args))

    if not mach.eval(start, source="add_sync", ctx=ctx):
        return _CANCELED
    mach.eval(lambda: mach.detach_tracer(watch), source="add_sync")
    res = out[0]
    if res is _QUEUED:
        res = watch.result if watch.result is not None else _CANCELED
    return res


async def _mutate_sync(
    mach: Machine,
    mtype: MutationType,
    states: list[str],
    args: dict[str, Any] | None,
    ctx: StateCtx | None,
) -> Result:
    if not isinstance(mach, CoreMachine):
        raise TypeError(f"expected an am.Machine, got {type(mach).__name__}")
    _check_ctx(ctx)
    own = _args(args)
    if mach.disposed or (ctx is not None and ctx.expired):
        return _CANCELED
    for name in states:
        if not mach.has1(name):
            raise StateNameError(name, mach.id)
    if not isinstance(mach, Machine) or mach.runs_inline():
        # the loop's own thread (or no loop): a mutation made outside a
        # handler runs inline, so its result is already the real one
        return _do(mach, mtype, states, own)
    fn = functools.partial(_foreign_sync, mach, mtype, states, own, ctx)
    return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)


async def _mutate_sync_ok(
    mach: Machine,
    mtype: MutationType,
    states: list[str],
    args: dict[str, Any] | None,
    ctx: StateCtx | None,
) -> bool:
    res = await _mutate_sync(mach, mtype, states, args, ctx)
    return res is _EXECUTED


async def add_sync(
    mach: Machine,
    states: Iterable[str],
    args: dict[str, Any] | None = None,
    *,
    ctx: StateCtx | None = None,
) -> bool:
    """Add `states` and wait for the transition; True if it was accepted.

    Like Go's `AddSync`, the answer is never "queued". From the machine's
    own loop (or without one) this is `mach.add`. From another thread with
    its own event loop it runs the mutation in the machine's loop and waits
    for its transition: False if it was refused, if the machine was
    disposed first, or if `ctx` expired first. `args` are copied.
    """
    return await _mutate_sync_ok(mach, _ADD, _names(states), args, ctx)


async def add1_sync(
    mach: Machine,
    state: str,
    args: dict[str, Any] | None = None,
    *,
    ctx: StateCtx | None = None,
) -> bool:
    """`add_sync` for one state."""
    return await _mutate_sync_ok(mach, _ADD, [state], args, ctx)


async def remove_sync(
    mach: Machine,
    states: Iterable[str],
    args: dict[str, Any] | None = None,
    *,
    ctx: StateCtx | None = None,
) -> bool:
    """Remove `states` and wait for the transition; True if it was accepted
    (see `add_sync`)."""
    return await _mutate_sync_ok(mach, _REMOVE, _names(states), args, ctx)


async def remove1_sync(
    mach: Machine,
    state: str,
    args: dict[str, Any] | None = None,
    *,
    ctx: StateCtx | None = None,
) -> bool:
    """`remove_sync` for one state."""
    return await _mutate_sync_ok(mach, _REMOVE, [state], args, ctx)


async def add_async(
    mach: Machine,
    wait_state: str,
    states: Iterable[str],
    args: dict[str, Any] | None = None,
    *,
    ctx: StateCtx | None = None,
) -> bool:
    """Add `states` and wait for the next activation of `wait_state`.

    For flows where `states` start work that ends in `wait_state` (Go:
    `AddAsync`). A Multi `wait_state` that is active counts its next
    re-activation. Returns True once it activated, False if the add was
    canceled or `ctx` expired. Call it from the machine's event loop.
    """
    names = _names(states)
    _check_ctx(ctx)
    if ctx is not None and ctx.expired:
        return False
    tick = mach.tick(wait_state)
    n = 2 if tick & 1 else 1
    if mach.add(names, _args(args)) is _CANCELED:
        return False
    # subscribed after the add, by the absolute tick: nothing is missed
    when = mach.when_time1(wait_state, tick + n, ctx)
    with _scope(ctx):
        await when
    return mach.tick(wait_state) >= tick + n


async def add1_async(
    mach: Machine,
    wait_state: str,
    state: str,
    args: dict[str, Any] | None = None,
    *,
    ctx: StateCtx | None = None,
) -> bool:
    """`add_async` for one added state."""
    return await add_async(mach, wait_state, [state], args, ctx=ctx)


# ------------------------------------------------------------ dry runs


def cant_add(
    mach: CoreMachine, states: Iterable[str], args: dict[str, Any] | None = None
) -> bool:
    """True if adding `states` would certainly be canceled (a dry run).

    Inside a handler the dry run cannot run (it would be `QUEUED`), so the
    answer is False: not known to be impossible.
    """
    return mach.can_add(_names(states), args) is _CANCELED


def cant_add1(
    mach: CoreMachine, state: str, args: dict[str, Any] | None = None
) -> bool:
    """`cant_add` for one state."""
    return mach.can_add([state], args) is _CANCELED


def cant_remove(
    mach: CoreMachine, states: Iterable[str], args: dict[str, Any] | None = None
) -> bool:
    """True if removing `states` would certainly be canceled (a dry run)."""
    return mach.can_remove(_names(states), args) is _CANCELED


def cant_remove1(
    mach: CoreMachine, state: str, args: dict[str, Any] | None = None
) -> bool:
    """`cant_remove` for one state."""
    return mach.can_remove([state], args) is _CANCELED


def ask_add(
    mach: CoreMachine, states: Iterable[str], args: dict[str, Any] | None = None
) -> Result:
    """Add `states` unless a dry run says it is impossible (then CANCELED).

    Negotiation handlers run twice; a refused dry run leaves no trace (no
    canceled transition in logs and traces).
    """
    names = _names(states)
    if cant_add(mach, names, args):
        return _CANCELED
    return mach.add(names, args)


def ask_add1(
    mach: CoreMachine, state: str, args: dict[str, Any] | None = None
) -> Result:
    """`ask_add` for one state."""
    return ask_add(mach, [state], args)


def ask_remove(
    mach: CoreMachine, states: Iterable[str], args: dict[str, Any] | None = None
) -> Result:
    """Remove `states` unless a dry run says it is impossible."""
    names = _names(states)
    if cant_remove(mach, names, args):
        return _CANCELED
    return mach.remove(names, args)


def ask_remove1(
    mach: CoreMachine, state: str, args: dict[str, Any] | None = None
) -> Result:
    """`ask_remove` for one state."""
    return ask_remove(mach, [state], args)


# ---------------------------------------------------------------- misc


@final
class _RemoveMulti:
    __slots__ = ("mach", "state")

    def __init__(self, state: str, mach: CoreMachine | None) -> None:
        self.state = state
        self.mach = mach

    def __call__(self, e: Event) -> None:
        (e.machine if self.mach is None else self.mach).remove1(self.state)

    def __repr__(self) -> str:
        if self.mach is None:
            return f"remove_multi({self.state!r})"
        return f"remove_multi({self.mach.id}, {self.state!r})"


@overload
def remove_multi(state: str, /) -> Callable[[Event], None]: ...
@overload
def remove_multi(mach: CoreMachine, state: str, /) -> Callable[[Event], None]: ...
def remove_multi(
    mach_or_state: CoreMachine | str, state: str | None = None, /
) -> Callable[[Event], None]:
    """A final handler that removes `state` again (for `FooState` of a Multi
    or action state): `FooState = remove_multi("Foo")` in a handler class.

    `remove_multi(mach, "Foo")` (Go's form) removes it from `mach` rather
    than from the machine that called the handler.
    """
    if isinstance(mach_or_state, CoreMachine):
        mach: CoreMachine | None = mach_or_state
        name: object = state
    else:
        mach, name = None, mach_or_state
        if state is not None:
            raise TypeError("remove_multi(state) takes one state name")
    if not isinstance(name, str):
        raise TypeError(f"remove_multi takes a state name, got {name!r}")
    if mach is not None and not mach.has1(name):
        raise StateNameError(name, mach.id)
    return _RemoveMulti(name, mach)


@final
class EvalError(RuntimeError):
    """`eval_get` could not run its function in the machine."""


def eval_get(
    mach: CoreMachine,
    fn: Callable[[], T],
    *,
    source: str = "",
    ctx: CtxBase | None = None,
) -> T:
    """Run `fn` between transitions (`mach.eval`) and return its value.

    Raises `EvalError` when it could not run: a disposed machine, an expired
    `ctx`, or a call from inside a handler. From another thread it blocks
    until the machine ran `fn`.
    """
    out: list[T] = []
    if not mach.eval(lambda: out.append(fn()), source=source, ctx=ctx):
        where = f" ({source})" if source else ""
        raise EvalError(f"eval on machine {mach.id} could not run{where}")
    return out[0]


EvalError.__module__ = "asyncmachine.helpers"
