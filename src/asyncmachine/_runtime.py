"""The anyio runtime: task group, inbox stream, when-events, state contexts.

`Machine` is the core machine plus everything that needs an event loop:
`async with machine:` runs it as an anyio task group, foreign threads reach
it through a memory-object stream, when-methods return awaitable events,
state contexts become cancel scopes and async final handlers run as tasks.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, TypeVar

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._ctx import CtxBase
from ._machine import _END, _STATE, CoreMachine
from ._resolve import Plan
from ._transition import Event, Mutation
from ._types import (
    EXCEPTION,
    Clock,
    LogLevel,
    MachineDisposedError,
    MutationType,
    Result,
)

__all__ = ["Machine", "StateCtx", "WhenEvent"]

T = TypeVar("T")

_OPS: Final = LogLevel.OPS
_get_ident = threading.get_ident
_get_running_loop = asyncio.events._get_running_loop
_checkpoint = anyio.lowlevel.checkpoint
_trio_ll: Any = None


def _trio_lowlevel() -> Any:
    """`trio.lowlevel`, imported on first use (trio is an optional extra)."""
    global _trio_ll
    if _trio_ll is None:
        import trio.lowlevel

        _trio_ll = trio.lowlevel
    return _trio_ll


# subscription kinds
_WHEN, _WHEN_NOT, _WHEN_TIME, _WHEN_ARGS, _WHEN_QUERY = 0, 1, 2, 3, 4
_QUEUE, _QUEUE_END, _DISPOSED = 5, 6, 7
# one state, no ctx: the common waits, indexed by state in plain dicts
_WHEN1, _WHEN_NOT1 = 8, 9
_KIND_LOG = {
    _WHEN1: "when",
    _WHEN_NOT1: "whenNot",
    _WHEN: "when",
    _WHEN_NOT: "whenNot",
    _WHEN_TIME: "whenTime",
    _WHEN_ARGS: "whenArgs",
    _WHEN_QUERY: "whenQuery",
    _QUEUE: "whenQueue",
    _QUEUE_END: "whenQueueEnds",
    _DISPOSED: "whenDisposed",
}


def _task_key() -> int:
    """Identifies the current task (asyncio or trio) while it runs."""
    loop = _get_running_loop()
    if loop is not None:
        return id(asyncio.current_task(loop))
    return id(_trio_lowlevel().current_task())


def _unwrap(exc: BaseException) -> BaseException:
    """The error a user raised, out of single-error exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class StateCtx(CtxBase):
    """A state context: bound to one tick of one state (docs/design/semantics.md §2.3).

    `ctx.expired` turns true when the state's tick changes. `with ctx:`
    runs a block in a fresh anyio `CancelScope` that is cancelled when the
    context expires; `await ctx.wait()` returns once it has.
    """

    __slots__ = ("_scopes",)

    def __init__(
        self, machine: CoreMachine, state: str, tick: int, expired: bool
    ) -> None:
        super().__init__(machine, state, tick, expired)
        self._scopes: (
            dict[int, list[tuple[anyio.CancelScope, Callable[[], None]]]] | None
        ) = None

    def __enter__(self) -> anyio.CancelScope:
        scope = anyio.CancelScope()
        unregister = self.on_expire(scope.cancel)
        key = _task_key()
        if self._scopes is None:
            self._scopes = {}
        self._scopes.setdefault(key, []).append((scope, unregister))
        scope.__enter__()
        return scope

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        key = _task_key()
        assert self._scopes is not None
        stack = self._scopes[key]
        scope, unregister = stack.pop()
        if not stack:
            del self._scopes[key]
        unregister()
        return bool(scope.__exit__(exc_type, exc, tb))

    async def wait(self) -> None:
        """Return once the context has expired."""
        if self._expired:
            return
        event = WhenEvent()
        unregister = self.on_expire(event._set)
        try:
            await event.wait()
        finally:
            unregister()


class WhenEvent:
    """What a when-method returns: set once its condition happened.

    `await ev` (or `await ev.wait()`) waits for it; `ev.is_set()` checks.
    Awaiting a set event is a checkpoint, like awaiting a set `anyio.Event`.
    A waiter cancelled from outside drops the machine's subscription when
    no other task waits on the event; waiting again subscribes again.
    Await it in the machine's event loop (the thread that runs it).
    """

    # a pending event is also the machine's subscription (one object, so
    # that setting up and firing a wait stays cheap); the subscription slots
    # are filled by `_new_sub()` and unused once the event is set
    __slots__ = (
        "_ctx",
        "_ctx_unregister",
        "_detached",
        "_flag",
        "_futs",
        "_key",
        "_kind",
        "_machine",
        "_states",
        "_tasks",
        "_values",
    )
    _kind: int
    _states: tuple[str, ...]
    _values: Any
    _key: Any
    _ctx: CtxBase | None
    _ctx_unregister: Callable[[], None] | None
    _detached: bool

    def __init__(self, flag: bool = False) -> None:
        self._flag = flag
        self._machine: Machine | None = None
        # parked waiters: asyncio futures and trio tasks, created lazily
        self._futs: list[asyncio.Future[None]] | None = None
        self._tasks: list[Any] | None = None

    def is_set(self) -> bool:
        """True once the condition happened (or the wait was cut short)."""
        return self._flag

    def _set(self) -> None:
        self._flag = True
        self._machine = None
        futs = self._futs
        if futs is not None:
            self._futs = None
            for fut in futs:
                if not fut.done():
                    fut.set_result(None)
        tasks = self._tasks
        if tasks is not None:
            self._tasks = None
            reschedule = _trio_ll.reschedule  # imported by the waiters
            for task in tasks:
                reschedule(task)

    async def wait(self) -> None:
        """Wait until the event is set."""
        if not self._flag:
            machine = self._machine
            if machine is not None and self._detached:
                machine._reattach(self)
            if not self._flag:
                # park natively: an anyio.Event per wait would cost more
                # than the whole transition that sets it
                loop = _get_running_loop()
                if loop is not None:
                    fut: asyncio.Future[None] = loop.create_future()
                    futs = self._futs
                    if futs is None:
                        futs = self._futs = []
                    futs.append(fut)
                    try:
                        await fut
                    finally:
                        if not self._flag:  # cancelled from outside
                            futs.remove(fut)
                            self._parked_left()
                else:
                    trio_ll = _trio_ll or _trio_lowlevel()
                    task = trio_ll.current_task()
                    tasks = self._tasks
                    if tasks is None:
                        tasks = self._tasks = []
                    tasks.append(task)

                    def abort(_: Any) -> Any:
                        tasks.remove(task)
                        self._parked_left()
                        return trio_ll.Abort.SUCCEEDED

                    await trio_ll.wait_task_rescheduled(abort)
                return
        await _checkpoint()

    def _parked_left(self) -> None:
        machine = self._machine
        if machine is not None and not self._futs and not self._tasks:
            machine._detach(self)

    def __await__(self) -> Any:
        return self.wait().__await__()

    def __repr__(self) -> str:
        return f"<WhenEvent {'set' if self._flag else 'pending'}>"


_Sub = WhenEvent  # a pending WhenEvent in its role of subscription


def _new_sub(
    machine: Machine,
    kind: int,
    states: tuple[str, ...],
    values: Any,
    key: Any,
    ctx: CtxBase | None = None,
) -> WhenEvent:
    sub = WhenEvent()
    sub._machine = machine
    sub._kind = kind
    sub._states = states
    sub._values = values
    sub._key = key
    sub._ctx = ctx
    sub._ctx_unregister = None
    sub._detached = False
    return sub


class Machine(CoreMachine):
    """A relational, multi-state machine with a tick clock per state.

    Synchronous use (mutations, checks, clocks, sync handlers) needs no
    event loop. `async with machine:` runs it as an anyio task group for
    forks, async handlers, waiting and mutations from other threads.
    """

    __slots__ = (
        "_args_subs",
        "_inbox_recv",
        "_inbox_send",
        "_query_subs",
        "_queue_end_subs",
        "_queue_subs",
        "_sub_keys",
        "_subs",
        "_tg",
        "_token",
        "_w0",
        "_w1",
    )

    _ctx_class = StateCtx

    def __init__(self, schema: Mapping[str, Any], **kwargs: Any) -> None:
        self._tg: anyio.abc.TaskGroup | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._inbox_send: MemoryObjectSendStream[Callable[[], object]] | None = None
        self._inbox_recv: MemoryObjectReceiveStream[Callable[[], object]] | None = None
        self._subs: dict[str, list[_Sub]] = {}
        self._w1: dict[str, _Sub] = {}  # when1(state), no ctx
        self._w0: dict[str, _Sub] = {}  # when_not1(state), no ctx
        self._sub_keys: dict[Any, _Sub] = {}
        self._args_subs: dict[str, list[_Sub]] = {}
        self._query_subs: list[_Sub] = []
        self._queue_subs: list[_Sub] = []
        self._queue_end_subs: list[_Sub] = []
        super().__init__(schema, **kwargs)

    # --------------------------------------------------------- running

    @property
    def running(self) -> bool:
        """True inside `async with machine:`."""
        return self._tg is not None

    async def __aenter__(self) -> Machine:
        if self._disposing:
            raise MachineDisposedError(f"machine {self.id} is disposed")
        if self._tg is not None:
            raise RuntimeError(f"machine {self.id} is already running")
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._token = anyio.lowlevel.current_token()
        self._loop_thread = _get_ident()
        send, recv = anyio.create_memory_object_stream[Callable[[], object]](math.inf)
        self._inbox_send, self._inbox_recv = send, recv
        tg.start_soon(self._inbox_loop, recv)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        tg = self._tg
        assert tg is not None
        self.dispose()
        tg.cancel_scope.cancel()
        try:
            if exc_type is None or issubclass(
                exc_type, anyio.get_cancelled_exc_class()
            ):
                return bool(await tg.__aexit__(exc_type, exc, tb))
            # the block's own error propagates as it is, not in a group
            await tg.__aexit__(None, None, None)
            return False
        finally:
            self._stop_running()

    def _stop_running(self) -> None:
        self._tg = None
        self._token = None
        self._loop_thread = 0
        if self._inbox_send is not None:
            self._inbox_send.close()
        if self._inbox_recv is not None:
            self._inbox_recv.close()
        self._inbox_send = self._inbox_recv = None

    async def _inbox_loop(
        self, recv: MemoryObjectReceiveStream[Callable[[], object]]
    ) -> None:
        with recv:
            async for call in recv:
                call()

    def _is_foreign(self) -> bool:
        return self._loop_thread != 0 and _get_ident() != self._loop_thread

    def _to_inbox(self, call: Callable[[], object]) -> None:
        send = self._inbox_send
        token = self._token
        if send is None or token is None:
            return
        try:
            anyio.from_thread.run_sync(send.send_nowait, call, token=token)
        except (anyio.ClosedResourceError, RuntimeError):
            # the machine stopped meanwhile: a disposed machine cancels
            return

    def _in_loop(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._token is not None
        return anyio.from_thread.run_sync(fn, *args, token=self._token)

    # ------------------------------------------------ thread entry points

    def _foreign_mutate(
        self, mtype: MutationType, called: tuple[str, ...], args: dict[str, Any]
    ) -> Result:
        self._to_inbox(lambda: self._mutate(mtype, called, args))
        return Result.QUEUED

    def eval(
        self, fn: Callable[[], object], *, source: str = "", ctx: CtxBase | None = None
    ) -> bool:
        """Run `fn` between transitions, from any task or thread.

        From another thread it waits until the machine ran `fn`. Returns
        False when `fn` could not run (disposed machine, expired `ctx`, or a
        call from inside a handler, which also adds an Exception).
        """
        if self._is_foreign():
            return self._eval_foreign(fn, source, ctx)
        return super().eval(fn, source=source, ctx=ctx)

    def _eval_foreign(
        self, fn: Callable[[], object], source: str, ctx: CtxBase | None
    ) -> bool:
        # through the inbox, so it runs after this thread's earlier mutations
        done = threading.Event()
        out: list[Any] = [False, None]

        def call() -> None:
            try:
                out[0] = CoreMachine.eval(self, fn, source=source, ctx=ctx)
            except BaseException as exc:
                out[1] = exc
            finally:
                done.set()

        self._to_inbox(call)
        while not done.wait(0.05):
            if self._disposed or self._inbox_send is None:
                return False
        if out[1] is not None:
            raise out[1]
        return bool(out[0])

    def dispose(self) -> None:
        """Stop the machine: cancel its tasks and contexts, wake waiters."""
        if self._is_foreign():
            self._to_inbox(self.dispose)
            return
        super().dispose()

    def _finish_dispose(self) -> None:
        if self._disposed:
            return
        super()._finish_dispose()
        subs = self._pending_subs()
        self._w1.clear()
        self._w0.clear()
        self._subs.clear()
        self._sub_keys.clear()
        self._args_subs.clear()
        self._query_subs.clear()
        self._queue_subs.clear()
        self._queue_end_subs.clear()
        self._watch = self._watch_queue = False
        for sub in subs:
            self._fire(sub, log=False)
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        if self._inbox_send is not None:
            self._inbox_send.close()

    def _pending_subs(self) -> list[_Sub]:
        """Every subscription the machine holds, each once."""
        return [
            *self._w1.values(),
            *self._w0.values(),
            *{id(s): s for lst in self._subs.values() for s in lst}.values(),
            *(s for lst in self._args_subs.values() for s in lst),
            *self._query_subs,
            *self._queue_subs,
            *self._queue_end_subs,
        ]

    # --------------------------------------------------------- tasks

    def fork(
        self,
        ctx: CtxBase | None,
        fn: Callable[..., Awaitable[object]],
        *args: Any,
    ) -> None:
        """Start `fn(*args)` in the machine's task group, inside a cancel
        scope bound to `ctx` (cancelled when the context expires).

        An exception from `fn` becomes the Exception state.
        """
        if self._disposing:
            raise MachineDisposedError(f"machine {self.id} is disposed")
        if ctx is not None and not isinstance(ctx, StateCtx):
            raise TypeError(f"ctx must be a state context, got {type(ctx).__name__}")
        if not callable(fn):
            raise TypeError(f"fork takes an async function, got {type(fn).__name__}")
        if self._is_foreign():
            self._in_loop(self.fork, ctx, fn, *args)
            return
        tg = self._tg
        if tg is None:
            raise RuntimeError(
                f"machine {self.id} is not running: fork needs `async with machine:`"
            )
        tg.start_soon(self._forked, ctx, fn, args, name=f"{self.id}:fork")

    async def _forked(
        self,
        ctx: StateCtx | None,
        fn: Callable[..., Awaitable[object]],
        args: Sequence[Any],
    ) -> None:
        try:
            if ctx is None:
                await fn(*args)
            else:
                with ctx:
                    await fn(*args)
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:
            err = _unwrap(exc)
            if not isinstance(err, Exception):
                raise
            self.add_err(err)

    def _start_async(
        self, fn: Callable[..., Any], event: Event, kind: int, state: str
    ) -> None:
        tg = self._tg
        if tg is None:
            super()._start_async(fn, event, kind, state)
            return
        ctx = self.new_state_ctx(state) if kind in (_STATE, _END) else None
        assert ctx is None or isinstance(ctx, StateCtx)
        tg.start_soon(self._forked, ctx, fn, (event,), name=f"{self.id}:{event.name}")

    # -------------------------------------------------------- when-methods

    def _parse_list(self, states: Iterable[str]) -> tuple[str, ...]:
        called = self._parse(states)
        if not called:
            raise ValueError("a when-method needs at least one state")
        return called

    def _subscribe(
        self,
        kind: int,
        states: tuple[str, ...],
        values: Any,
        ctx: CtxBase | None,
        ready: bool,
    ) -> WhenEvent:
        if self._disposed or ready:
            return WhenEvent(True)
        if ctx is not None:
            if not isinstance(ctx, CtxBase):
                raise TypeError(
                    f"ctx must be a state context, got {type(ctx).__name__}"
                )
            if ctx.expired:
                return WhenEvent(True)
        if self._is_foreign():
            return self._in_loop(self._subscribe, kind, states, values, ctx, ready)
        key: Any = None
        if ctx is None and len(states) == 1 and kind <= _WHEN_NOT:
            kind = _WHEN1 if kind == _WHEN else _WHEN_NOT1
            existing = (self._w1 if kind == _WHEN1 else self._w0).get(states[0])
            if existing is not None:
                return existing
        elif kind in (_WHEN, _WHEN_NOT, _WHEN_TIME, _WHEN_ARGS):
            try:
                names: Any = states if kind == _WHEN_TIME else frozenset(states)
                key = (kind, names, _freeze(values), id(ctx))
                hash(key)
            except TypeError:
                key = None
            if key is not None:
                existing = self._sub_keys.get(key)
                if existing is not None:
                    return existing
            elif kind == _WHEN_ARGS:
                for other in self._args_subs.get(states[0], ()):
                    if other._values == values and other._ctx is ctx:
                        return other
        sub = _new_sub(self, kind, states, values, key, ctx)
        self._attach(sub)
        if self._log_level >= _OPS:
            self._log(_OPS, f"[{_KIND_LOG[kind]}:new] {_describe(sub)}")
        return sub

    def _attach(self, sub: _Sub) -> None:
        sub._detached = False
        ctx = sub._ctx
        if ctx is not None and sub._ctx_unregister is None:
            sub._ctx_unregister = ctx.on_expire(lambda: self._fire(sub, log=False))
        kind = sub._kind
        if kind >= _WHEN1:
            index = self._w1 if kind == _WHEN1 else self._w0
            state = sub._states[0]
            other = index.get(state)
            if other is None or other is sub:
                index[state] = sub
            else:
                # re-attached while a newer identical wait holds the slot:
                # index this one with the general subscriptions
                sub._kind = _WHEN if kind == _WHEN1 else _WHEN_NOT
                self._subs.setdefault(state, []).append(sub)
            self._watch = True
            return
        if sub._key is not None:
            self._sub_keys[sub._key] = sub
        if kind <= _WHEN_TIME:
            for s in sub._states:
                self._subs.setdefault(s, []).append(sub)
            self._watch = True
        elif kind == _WHEN_ARGS:
            self._args_subs.setdefault(sub._states[0], []).append(sub)
            self._watch = True
        elif kind == _WHEN_QUERY:
            self._query_subs.append(sub)
            self._watch = True
        elif kind == _QUEUE:
            self._queue_subs.append(sub)
            self._watch_queue = True
        elif kind == _QUEUE_END:
            self._queue_end_subs.append(sub)
            self._watch_queue = True
        elif kind == _DISPOSED:
            self.on_dispose(lambda: self._fire(sub, log=False))

    def _detach(self, sub: _Sub) -> None:
        """Drop a subscription nobody waits on any more."""
        if sub._detached:
            return
        sub._detached = True
        self._unlink(sub)
        if sub._ctx_unregister is not None:
            sub._ctx_unregister()
            sub._ctx_unregister = None

    def _reattach(self, sub: _Sub) -> None:
        if self._disposed or self._ready(sub) or (sub._ctx and sub._ctx.expired):
            sub._set()
            return
        self._attach(sub)

    def _ready(self, sub: _Sub) -> bool:
        ticks = self._ticks
        kind = sub._kind
        if kind == _WHEN1:
            return bool(ticks[sub._states[0]] & 1)
        if kind == _WHEN_NOT1:
            return not ticks[sub._states[0]] & 1
        if kind == _WHEN:
            return all(ticks[s] & 1 for s in sub._states)
        if kind == _WHEN_NOT:
            return not any(ticks[s] & 1 for s in sub._states)
        if kind == _WHEN_TIME:
            return all(
                ticks[s] >= t for s, t in zip(sub._states, sub._values, strict=True)
            )
        if kind == _QUEUE:
            return bool(self._p >= sub._values)
        if kind == _QUEUE_END:
            return not self._processing
        return False

    def _unlink(self, sub: _Sub) -> None:
        kind = sub._kind
        key = sub._key
        if key is not None and self._sub_keys.get(key) is sub:
            del self._sub_keys[key]
        if kind <= _WHEN_TIME:
            subs = self._subs
            for s in sub._states:
                lst = subs.get(s)
                if lst is not None and sub in lst:
                    if len(lst) == 1:
                        del subs[s]
                        if not subs:
                            self._rewatch()
                    else:
                        lst.remove(sub)
        elif kind >= _WHEN1:
            index = self._w1 if kind == _WHEN1 else self._w0
            state = sub._states[0]
            if index.get(state) is sub:
                del index[state]
                if not index:
                    self._rewatch()
        elif kind == _WHEN_ARGS:
            lst = self._args_subs.get(sub._states[0])
            if lst and sub in lst:
                lst.remove(sub)
                if not lst:
                    del self._args_subs[sub._states[0]]
                    self._rewatch()
        elif kind == _WHEN_QUERY:
            if sub in self._query_subs:
                self._query_subs.remove(sub)
                self._rewatch()
        elif kind == _QUEUE:
            if sub in self._queue_subs:
                self._queue_subs.remove(sub)
                self._rewatch()
        elif kind == _QUEUE_END and sub in self._queue_end_subs:
            self._queue_end_subs.remove(sub)
            self._rewatch()

    def _rewatch(self) -> None:
        self._watch = bool(
            self._w1 or self._w0 or self._subs or self._args_subs or self._query_subs
        )
        self._watch_queue = bool(self._queue_subs or self._queue_end_subs)

    def _fire(self, sub: _Sub, log: bool = True) -> None:
        if sub._flag:
            return
        if not sub._detached:
            self._unlink(sub)
        if sub._ctx_unregister is not None:
            sub._ctx_unregister()
            sub._ctx_unregister = None
        if log and self._log_level >= _OPS:
            self._log(_OPS, f"[{_KIND_LOG[sub._kind]}:match] {_describe(sub)}")
        sub._set()

    def _subs_after_tx(self, mut: Mutation, plan: Plan, enters_done: int = -1) -> None:
        ticks = self._ticks
        w1 = self._w1
        w0 = self._w0
        if w1 or w0:
            # one-state waits: fired at once, nothing to check but the tick
            log = self._log_level >= _OPS
            for name, _ in plan.changes:
                sub = (w1 if ticks[name] & 1 else w0).pop(name, None)
                if sub is not None:
                    if log:
                        kind = _KIND_LOG[sub._kind]
                        self._log(_OPS, f"[{kind}:match] {name}")
                    sub._set()
            if not w1 and not w0:
                self._watch = bool(self._subs or self._args_subs or self._query_subs)
        subs = self._subs
        args_subs = self._args_subs
        if not subs and not args_subs and not self._query_subs:
            return
        fired: list[_Sub] = []
        if subs:
            for name, _ in plan.changes:
                lst = subs.get(name)
                if lst is not None:
                    for s in lst:
                        if s not in fired and self._ready(s):
                            fired.append(s)
        if args_subs and enters_done:
            args = mut.args
            enters = plan.enters if enters_done < 0 else plan.enters[:enters_done]
            for name in enters:
                for s in args_subs.get(name, ()):
                    if s not in fired and _args_match(s._values, args):
                        fired.append(s)
        if self._query_subs:
            clock: Clock = dict(self._ticks)
            fired.extend(s for s in list(self._query_subs) if s._values(clock))
        for s in fired:
            self._fire(s)

    def _subs_after_mutation(self) -> None:
        p = self._p
        for s in [s for s in self._queue_subs if p >= s._values]:
            self._fire(s)

    def _subs_queue_end(self) -> None:
        for s in list(self._queue_end_subs):
            self._fire(s)

    def when(self, states: Iterable[str], ctx: CtxBase | None = None) -> WhenEvent:
        """Set once all `states` are active (at once if they are now)."""
        called = self._disposed_or(self._parse_list, states)
        if called is None:
            return WhenEvent(True)
        ticks = self._ticks
        ready = all(ticks[s] & 1 for s in called)
        return self._subscribe(_WHEN, called, None, ctx, ready)

    def when1(self, state: str, ctx: CtxBase | None = None) -> WhenEvent:
        """Set once `state` is active."""
        tick = self._ticks.get(state) if type(state) is str else None
        if tick is None:  # not a known name: `when` parses and raises
            return self.when((state,) if isinstance(state, str) else state, ctx)
        return self._subscribe(_WHEN, (state,), None, ctx, bool(tick & 1))

    def when_not(self, states: Iterable[str], ctx: CtxBase | None = None) -> WhenEvent:
        """Set once none of `states` is active."""
        called = self._disposed_or(self._parse_list, states)
        if called is None:
            return WhenEvent(True)
        ticks = self._ticks
        ready = not any(ticks[s] & 1 for s in called)
        return self._subscribe(_WHEN_NOT, called, None, ctx, ready)

    def when_not1(self, state: str, ctx: CtxBase | None = None) -> WhenEvent:
        """Set once `state` is inactive."""
        return self.when_not((state,) if isinstance(state, str) else state, ctx)

    def when_err(self, ctx: CtxBase | None = None) -> WhenEvent:
        """Set once the Exception state is active."""
        return self.when((EXCEPTION,), ctx)

    def when_time(
        self, states: Iterable[str], times: Sequence[int], ctx: CtxBase | None = None
    ) -> WhenEvent:
        """Set once each state's tick reaches the matching value of `times`."""
        if self._disposed:
            return WhenEvent(True)
        names = self._parse_keep_dups(states)
        times = tuple(times)
        if not names or len(names) != len(times):
            raise ValueError(
                f"when_time needs as many times as states, got {len(names)} "
                f"states and {len(times)} times"
            )
        for t in times:
            if not isinstance(t, int):
                raise TypeError(f"times are ints, got {t!r}")
        ticks = self._ticks
        ready = all(ticks[s] >= t for s, t in zip(names, times, strict=True))
        return self._subscribe(_WHEN_TIME, tuple(names), times, ctx, ready)

    def when_time1(
        self, state: str, tick: int, ctx: CtxBase | None = None
    ) -> WhenEvent:
        """Set once `state`'s tick is at least `tick`."""
        return self.when_time((state,), (tick,), ctx)

    def when_ticks(self, state: str, n: int, ctx: CtxBase | None = None) -> WhenEvent:
        """Set once `state` ticked `n` more times from now."""
        if self._disposed:
            return WhenEvent(True)
        self._check1(state)
        return self.when_time1(state, self._ticks[state] + n, ctx)

    def when_args(
        self, state: str, args: Mapping[str, Any], ctx: CtxBase | None = None
    ) -> WhenEvent:
        """Set when `state` activates in a transition whose args contain
        every key of `args` with an equal value ({} matches any)."""
        if self._disposed:
            return WhenEvent(True)
        self._check1(state)
        if not isinstance(args, Mapping):
            raise TypeError(f"args must be a dict, got {type(args).__name__}")
        return self._subscribe(_WHEN_ARGS, (state,), dict(args), ctx, False)

    def when_query(
        self, fn: Callable[[Clock], object], ctx: CtxBase | None = None
    ) -> WhenEvent:
        """Set when `fn(clock)` is truthy after a later transition."""
        if not callable(fn):
            raise TypeError(f"when_query takes a callable, got {type(fn).__name__}")
        return self._subscribe(_WHEN_QUERY, (), fn, ctx, False)

    def when_queue(self, tick: int) -> WhenEvent:
        """Set once the mutation with queue tick `tick` was processed."""
        if not isinstance(tick, int):
            raise TypeError(f"tick must be an int, got {type(tick).__name__}")
        return self._subscribe(_QUEUE, (), tick, None, self._p >= tick)

    def when_queue_ends(self) -> WhenEvent:
        """Set once the machine is not processing its queue."""
        return self._subscribe(_QUEUE_END, (), None, None, not self._processing)

    def when_disposed(self) -> WhenEvent:
        """Set once the machine is disposed."""
        return self._subscribe(_DISPOSED, (), None, None, self._disposed)

    def _disposed_or(
        self, parse: Callable[[Iterable[str]], tuple[str, ...]], states: Iterable[str]
    ) -> tuple[str, ...] | None:
        if self._disposed:
            return None
        return parse(states)

    def new_state_ctx(self, state: str) -> StateCtx:
        """A context bound to `state`'s current tick (docs/design/semantics.md §2.3)."""
        if self._is_foreign():
            return self._in_loop(self.new_state_ctx, state)
        ctx = super().new_state_ctx(state)
        assert isinstance(ctx, StateCtx)
        return ctx


def _freeze(values: Any) -> Any:
    if isinstance(values, dict):
        return frozenset(values.items())
    return values


def _args_match(wanted: Mapping[str, Any], args: Mapping[str, Any]) -> bool:
    return all(k in args and bool(args[k] == v) for k, v in wanted.items())


def _describe(sub: _Sub) -> str:
    text = " ".join(sub._states)
    if sub._kind == _WHEN_TIME:
        text += " [" + " ".join(str(t) for t in sub._values) + "]"
    elif sub._kind == _WHEN_ARGS:
        text += " (" + " ".join(sorted(sub._values)) + ")"
    elif sub._kind == _QUEUE:
        text = str(sub._values)
    return text
