"""The anyio runtime: task group, inbox stream, when-events, state contexts.

`Machine` is the core machine plus everything that needs an event loop:
`async with machine:` runs it as an anyio task group, foreign threads reach
it through a memory-object stream, when-methods return awaitable events,
state contexts become cancel scopes and async final handlers run as tasks.
"""

from __future__ import annotations

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

# subscription kinds
_WHEN, _WHEN_NOT, _WHEN_TIME, _WHEN_ARGS, _WHEN_QUERY = 0, 1, 2, 3, 4
_QUEUE, _QUEUE_END, _DISPOSED = 5, 6, 7
_KIND_LOG = {
    _WHEN: "when",
    _WHEN_NOT: "whenNot",
    _WHEN_TIME: "whenTime",
    _WHEN_ARGS: "whenArgs",
    _WHEN_QUERY: "whenQuery",
    _QUEUE: "whenQueue",
    _QUEUE_END: "whenQueueEnds",
    _DISPOSED: "whenDisposed",
}


def _unwrap(exc: BaseException) -> BaseException:
    """The error a user raised, out of single-error exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class StateCtx(CtxBase):
    """A state context: bound to one tick of one state (semantics §2.3).

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
        key = anyio.get_current_task().id
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
        key = anyio.get_current_task().id
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
        event = anyio.Event()
        unregister = self.on_expire(event.set)
        try:
            await event.wait()
        finally:
            unregister()


class WhenEvent:
    """What a when-method returns: set once its condition happened.

    `await ev` (or `await ev.wait()`) waits for it; `ev.is_set()` checks.
    A waiter cancelled from outside drops the machine's subscription when
    no other task waits on the event; waiting again subscribes again.
    """

    __slots__ = ("_event", "_flag", "_sub", "_waiters")

    def __init__(self, flag: bool = False) -> None:
        self._flag = flag
        self._event: anyio.Event | None = None
        self._waiters = 0
        self._sub: _Sub | None = None

    def is_set(self) -> bool:
        """True once the condition happened (or the wait was cut short)."""
        return self._flag

    def _set(self) -> None:
        self._flag = True
        self._sub = None
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Wait until the event is set."""
        if self._flag:
            return
        sub = self._sub
        if sub is not None and sub.detached:
            sub.machine._reattach(sub)
            if self._flag:
                return
        if self._event is None:
            self._event = anyio.Event()
        self._waiters += 1
        try:
            await self._event.wait()
        finally:
            self._waiters -= 1
            sub = self._sub
            if not self._flag and self._waiters == 0 and sub is not None:
                sub.machine._detach(sub)

    def __await__(self) -> Any:
        return self.wait().__await__()

    def __repr__(self) -> str:
        return f"<WhenEvent {'set' if self._flag else 'pending'}>"


class _Sub:
    __slots__ = (
        "ctx",
        "ctx_unregister",
        "detached",
        "event",
        "key",
        "kind",
        "machine",
        "states",
        "values",
    )

    def __init__(
        self,
        machine: Machine,
        kind: int,
        states: tuple[str, ...],
        values: Any,
        key: Any,
    ) -> None:
        self.machine = machine
        self.kind = kind
        self.states = states
        self.values = values
        self.key = key
        self.event = WhenEvent()
        self.event._sub = self
        self.detached = False
        self.ctx: CtxBase | None = None
        self.ctx_unregister: Callable[[], None] | None = None


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
    )

    _ctx_class = StateCtx

    def __init__(self, schema: Mapping[str, Any], **kwargs: Any) -> None:
        self._tg: anyio.abc.TaskGroup | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._inbox_send: MemoryObjectSendStream[Callable[[], object]] | None = None
        self._inbox_recv: MemoryObjectReceiveStream[Callable[[], object]] | None = None
        self._subs: dict[str, list[_Sub]] = {}
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
        subs = [
            *{id(s): s for lst in self._subs.values() for s in lst}.values(),
            *(s for lst in self._args_subs.values() for s in lst),
            *self._query_subs,
            *self._queue_subs,
            *self._queue_end_subs,
        ]
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
        if kind in (_WHEN, _WHEN_NOT, _WHEN_TIME, _WHEN_ARGS):
            try:
                names: Any = states if kind == _WHEN_TIME else frozenset(states)
                key = (kind, names, _freeze(values), id(ctx))
                hash(key)
            except TypeError:
                key = None
            if key is not None:
                existing = self._sub_keys.get(key)
                if existing is not None:
                    return existing.event
            elif kind == _WHEN_ARGS:
                for other in self._args_subs.get(states[0], ()):
                    if other.values == values and other.ctx is ctx:
                        return other.event
        sub = _Sub(self, kind, states, values, key)
        sub.ctx = ctx
        self._attach(sub)
        if self._log_level >= _OPS:
            self._log(_OPS, f"[{_KIND_LOG[kind]}:new] {_describe(sub)}")
        return sub.event

    def _attach(self, sub: _Sub) -> None:
        sub.detached = False
        ctx = sub.ctx
        if ctx is not None and sub.ctx_unregister is None:
            sub.ctx_unregister = ctx.on_expire(lambda: self._fire(sub, log=False))
        kind = sub.kind
        if sub.key is not None:
            self._sub_keys[sub.key] = sub
        if kind <= _WHEN_TIME:
            for s in sub.states:
                self._subs.setdefault(s, []).append(sub)
            self._watch = True
        elif kind == _WHEN_ARGS:
            self._args_subs.setdefault(sub.states[0], []).append(sub)
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
        if sub.detached:
            return
        sub.detached = True
        self._unlink(sub)
        if sub.ctx_unregister is not None:
            sub.ctx_unregister()
            sub.ctx_unregister = None

    def _reattach(self, sub: _Sub) -> None:
        if self._disposed or self._ready(sub) or (sub.ctx and sub.ctx.expired):
            sub.event._set()
            return
        self._attach(sub)

    def _ready(self, sub: _Sub) -> bool:
        ticks = self._ticks
        kind = sub.kind
        if kind == _WHEN:
            return all(ticks[s] & 1 for s in sub.states)
        if kind == _WHEN_NOT:
            return not any(ticks[s] & 1 for s in sub.states)
        if kind == _WHEN_TIME:
            return all(
                ticks[s] >= t for s, t in zip(sub.states, sub.values, strict=True)
            )
        if kind == _QUEUE:
            return bool(self._p >= sub.values)
        if kind == _QUEUE_END:
            return not self._processing
        return False

    def _unlink(self, sub: _Sub) -> None:
        kind = sub.kind
        if sub.key is not None and self._sub_keys.get(sub.key) is sub:
            del self._sub_keys[sub.key]
        if kind <= _WHEN_TIME:
            for s in sub.states:
                lst = self._subs.get(s)
                if lst and sub in lst:
                    lst.remove(sub)
                    if not lst:
                        del self._subs[s]
        elif kind == _WHEN_ARGS:
            lst = self._args_subs.get(sub.states[0])
            if lst and sub in lst:
                lst.remove(sub)
                if not lst:
                    del self._args_subs[sub.states[0]]
        elif kind == _WHEN_QUERY:
            if sub in self._query_subs:
                self._query_subs.remove(sub)
        elif kind == _QUEUE:
            if sub in self._queue_subs:
                self._queue_subs.remove(sub)
        elif kind == _QUEUE_END and sub in self._queue_end_subs:
            self._queue_end_subs.remove(sub)
        self._watch = bool(self._subs or self._args_subs or self._query_subs)
        self._watch_queue = bool(self._queue_subs or self._queue_end_subs)

    def _fire(self, sub: _Sub, log: bool = True) -> None:
        if sub.event._flag:
            return
        if not sub.detached:
            self._unlink(sub)
        if sub.ctx_unregister is not None:
            sub.ctx_unregister()
            sub.ctx_unregister = None
        if log and self._log_level >= _OPS:
            self._log(_OPS, f"[{_KIND_LOG[sub.kind]}:match] {_describe(sub)}")
        sub.event._set()

    def _subs_after_tx(self, mut: Mutation, plan: Plan, enters_done: int) -> None:
        subs = self._subs
        fired: list[_Sub] = []
        if subs:
            for name, _ in plan.changes:
                lst = subs.get(name)
                if lst:
                    fired.extend(s for s in lst if s not in fired and self._ready(s))
        args_subs = self._args_subs
        if args_subs and enters_done:
            args = mut.args
            for name in plan.enters[:enters_done]:
                for s in args_subs.get(name, ()):
                    if s not in fired and _args_match(s.values, args):
                        fired.append(s)
        if self._query_subs:
            clock: Clock = dict(self._ticks)
            fired.extend(s for s in list(self._query_subs) if s.values(clock))
        for s in fired:
            self._fire(s)

    def _subs_after_mutation(self) -> None:
        p = self._p
        for s in [s for s in self._queue_subs if p >= s.values]:
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
        return self.when((state,) if isinstance(state, str) else state, ctx)

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
        """A context bound to `state`'s current tick (semantics §2.3)."""
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
    text = " ".join(sub.states)
    if sub.kind == _WHEN_TIME:
        text += " [" + " ".join(str(t) for t in sub.values) + "]"
    elif sub.kind == _WHEN_ARGS:
        text += " (" + " ".join(sorted(sub.values)) + ")"
    elif sub.kind == _QUEUE:
        text = str(sub.values)
    return text
