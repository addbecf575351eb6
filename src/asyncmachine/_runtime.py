"""The anyio runtime: task group, thread entry, when-events, state contexts.

`Machine` is the core machine plus everything that needs an event loop:
`async with machine:` binds it to the loop that entered it (see `_loop`)
and runs it as an anyio task group. Calls from outside that loop (other
threads, other loops, the host of a trio guest run) enter through one FIFO
inbox and are applied by the loop in the order they were made; when-methods
return awaitable events, state contexts become cancel scopes and async
final handlers run as tasks. docs/manual.md, "Where calls come from", has
the table of what each call does from where.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import types
from collections.abc import (
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Any, Final, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel

from ._ctx import CtxBase
from ._loop import TRIO, Binding, bind_current, current_lib, task_key, trio_lowlevel
from ._machine import _END, _STATE, CoreMachine, log_handler_error
from ._resolve import Plan
from ._tracer import Tracer
from ._transition import Event
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
_QUEUED: Final = Result.QUEUED
_CANCELED: Final = Result.CANCELED
_get_ident = threading.get_ident
_checkpoint = anyio.lowlevel.checkpoint

# calls from outside run per loop turn, at most (then other tasks run)
_INBOX_CHUNK = 256
# calls from outside that may wait in the inbox: a thread that gets this far
# ahead of the loop waits for it to catch up, so a flood can't eat memory
_INBOX_MAX = 10_000
# guards the remote (other thread / other loop) waiters of when-events
_remote_lock = threading.Lock()

# subscription kinds
_WHEN, _WHEN_NOT, _WHEN_TIME, _WHEN_ARGS, _WHEN_QUERY = 0, 1, 2, 3, 4
_QUEUE, _QUEUE_END, _DISPOSED = 5, 6, 7
# one state, no ctx: the common waits, indexed by state in plain dicts
_WHEN1, _WHEN_NOT1 = 8, 9
# when_ticks from another thread: `values` is the count, made absolute
# (a _WHEN_TIME) by the loop
_WHEN_TICKS = 10
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


def _unwrap(exc: BaseException) -> BaseException:
    """The error a user raised, out of single-error exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _resolve_fut(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _soon_here() -> Callable[[Callable[[], object]], None]:
    """A function that runs a callback in the current task's loop, called
    from any thread (a no-op once that loop is gone)."""
    if current_lib() == TRIO:
        run_soon = trio_lowlevel().current_trio_token().run_sync_soon
    else:
        run_soon = asyncio.get_running_loop().call_soon_threadsafe

    def soon(fn: Callable[[], object]) -> None:
        # RuntimeError: the loop closed, or the trio run finished
        with contextlib.suppress(RuntimeError):
            run_soon(fn)

    return soon


class StateCtx(CtxBase):
    """A state context: bound to one tick of one state
    (docs/design/semantics.md §2.3).

    `ctx.expired` turns true when the state's tick changes. `with ctx:`
    runs a block in a fresh anyio `CancelScope` that is cancelled when the
    context expires (at once when entered expired); `await ctx.wait()`
    returns once it has. Both work in any task of any loop or thread: the
    cancellation is delivered in the loop that entered the block.
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
        key = task_key()
        if self._expired:
            scope.cancel()
            unregister: Callable[[], None] = _noop
        else:
            machine = self.machine
            binding = machine._binding if isinstance(machine, Machine) else None
            if binding is None or binding.is_home():
                unregister = self.on_expire(scope.cancel)
            else:
                # expiry happens in the machine's loop: cancel in ours
                soon = _soon_here()
                unregister = self.on_expire(lambda: soon(scope.cancel))
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
        key = task_key()
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
            await _checkpoint()
            return
        event = WhenEvent()
        machine = self.machine
        if isinstance(machine, Machine):
            event._home = machine._binding
        unregister = self.on_expire(event.set)
        try:
            await event.wait()
        finally:
            unregister()


def _noop() -> None:
    return None


@types.coroutine
def _park_trio(abort: Callable[[Any], Any]) -> Generator[Any, Any, None]:
    """Park the current trio task until it is rescheduled.

    A generator marked as a coroutine, so that `WhenEvent.__await__` can
    `yield from` it and it can `yield from` trio's coroutine: without the
    mark the coroutine needs its `__await__()` wrapper, and trio's wake-up
    value (not None) goes through that wrapper's `send` method, a slow path
    (benchmarks/README.md, "when1 wake-up").
    """
    yield from trio_lowlevel().wait_task_rescheduled(abort)


class WhenEvent:
    """An event: set once, awaited by any number of tasks.

    When-methods return one, set when their condition happened; it is also
    a plain event of its own (`WhenEvent()`, `set()`), like `anyio.Event`.
    `await ev` (or `await ev.wait()`) waits; awaiting a set event is a
    checkpoint. A machine's events may be awaited in any task of any loop
    or thread: waiters outside the machine's loop are woken thread-safely.
    A plain `WhenEvent()` belongs to one loop, like `anyio.Event`.

    A waiter of a when-event cancelled from outside drops the machine's
    subscription when no other task waits on the event; waiting again
    subscribes again.
    """

    __slots__ = ("_flag", "_futs", "_home", "_remote", "_sub", "_tasks")

    def __init__(self) -> None:
        self._flag = False
        # the subscription that sets this event, while it is pending
        self._sub: _Sub | None = None
        # the loop that sets it (a running machine's), if known: waiters
        # elsewhere park as remote waiters
        self._home: Binding | None = None
        # waiters in the setting loop: asyncio futures and trio tasks
        self._futs: list[asyncio.Future[None]] | None = None
        self._tasks: list[Any] | None = None
        # waiters elsewhere: thread-safe wake-up functions
        self._remote: list[Callable[[], None]] | None = None

    def is_set(self) -> bool:
        """True once the event is set."""
        return self._flag

    def set(self) -> None:
        """Set the event and wake every waiter (nothing happens if it is
        already set)."""
        if self._flag:
            return
        self._flag = True
        self._sub = None
        futs = self._futs
        if futs is not None:
            self._futs = None
            for fut in futs:
                if not fut.done():
                    fut.set_result(None)
        tasks = self._tasks
        if tasks is not None:
            self._tasks = None
            reschedule = trio_lowlevel().reschedule
            for task in tasks:
                reschedule(task)
        if self._remote is not None:
            with _remote_lock:
                remote = self._remote
                self._remote = None
            for wake in remote or ():
                wake()

    def statistics(self) -> anyio.EventStatistics:
        """How many tasks wait on the event now."""
        n = len(self._futs or ()) + len(self._tasks or ()) + len(self._remote or ())
        return anyio.EventStatistics(n)

    async def wait(self) -> None:
        """Wait until the event is set."""
        await self

    def __await__(self) -> Generator[Any, Any, None]:
        # a generator, not `wait().__await__()`: one object and one frame
        # less per wait (benchmarks/bench_runtime.py, when1 wake-up)
        if self._flag:
            yield from _checkpoint().__await__()
            return
        sub = self._sub
        home = self._home
        if home is None and sub is not None:
            home = sub.machine._binding
        if home is None:
            trio = current_lib() == TRIO
        elif home.is_home():
            trio = home.lib == TRIO
        else:
            yield from self._wait_remote(sub).__await__()
            return
        if sub is not None and sub.detached:
            sub.machine._reattach(sub)
            if self._flag:
                yield from _checkpoint().__await__()
                return
        # park natively: an anyio.Event per wait would cost more than the
        # whole transition that sets it
        if not trio:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            futs = self._futs
            if futs is None:
                futs = self._futs = []
            futs.append(fut)
            try:
                yield from fut
            finally:
                if not self._flag:  # cancelled from outside
                    futs.remove(fut)
                    self._waiter_left()
            return
        trio_ll = trio_lowlevel()
        task = trio_ll.current_task()
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = []
        tasks.append(task)

        def abort(_: Any) -> Any:
            tasks.remove(task)
            self._waiter_left()
            return trio_ll.Abort.SUCCEEDED

        yield from _park_trio(abort)

    async def _wait_remote(self, sub: _Sub | None) -> None:
        """Wait from outside the loop that sets the event."""
        soon = _soon_here()
        if current_lib() == TRIO:
            trio_ll = trio_lowlevel()
            task = trio_ll.current_task()
            woken = [False]

            def resume() -> None:
                if not woken[0]:
                    woken[0] = True
                    trio_ll.reschedule(task)

            def wake() -> None:
                soon(resume)

            if not self._add_remote(wake, sub):
                await _checkpoint()
                return

            def abort(_: Any) -> Any:
                woken[0] = True
                self._drop_remote(wake, sub)
                return trio_ll.Abort.SUCCEEDED

            await trio_ll.wait_task_rescheduled(abort)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake_fut() -> None:
            soon(lambda: _resolve_fut(fut))

        if not self._add_remote(wake_fut, sub):
            await _checkpoint()
            return
        try:
            await fut
        finally:
            if not fut.done() or fut.cancelled():
                self._drop_remote(wake_fut, sub)

    def _add_remote(self, wake: Callable[[], None], sub: _Sub | None) -> bool:
        with _remote_lock:
            if self._flag:
                return False
            if self._remote is None:
                self._remote = []
            self._remote.append(wake)
        if sub is not None:
            # in order after any earlier detach of the subscription
            mach = sub.machine
            if not mach._submit(mach._keep_attached, (sub,)):
                self.set()  # the machine stopped: it sets its events
        return True

    def _drop_remote(self, wake: Callable[[], None], sub: _Sub | None) -> None:
        with _remote_lock:
            if self._remote is not None and wake in self._remote:
                self._remote.remove(wake)
        if sub is not None and not self._flag:
            mach = sub.machine
            mach._submit(mach._drop_if_unwaited, (sub,))

    def _has_waiters(self) -> bool:
        return bool(self._futs or self._tasks or self._remote)

    def _waiter_left(self) -> None:
        sub = self._sub
        if sub is not None and not self._has_waiters():
            sub.machine._detach(sub)

    def __repr__(self) -> str:
        return f"<WhenEvent {'set' if self._flag else 'pending'}>"


class _Sub:
    """A machine's pending subscription: what sets one WhenEvent."""

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
        ctx: CtxBase | None,
        event: WhenEvent,
    ) -> None:
        self.machine = machine
        self.kind = kind
        self.states = states
        self.values = values
        self.key = key
        self.ctx = ctx
        self.ctx_unregister: Callable[[], None] | None = None
        self.detached = False
        self.event = event


class _Subs:
    """A machine's pending subscriptions, indexed for the checks after a
    transition (made on the first subscription: an idle machine has none)."""

    __slots__ = (
        "args",
        "by_state",
        "general",
        "keys",
        "query",
        "queue",
        "queue_end",
        "w0",
        "w1",
    )

    def __init__(self) -> None:
        self.by_state: dict[str, list[_Sub]] = {}
        self.w1: dict[str, _Sub] = {}  # when1(state), no ctx
        self.w0: dict[str, _Sub] = {}  # when_not1(state), no ctx
        self.keys: dict[Any, _Sub] = {}
        self.args: dict[str, list[_Sub]] = {}
        self.query: list[_Sub] = []
        # any in by_state, args or query: the check after a transition has
        # more to do than the one-state waits (kept by _attach, _rewatch)
        self.general = False
        self.queue: list[_Sub] = []
        self.queue_end: list[_Sub] = []


def _set_event() -> WhenEvent:
    ev = WhenEvent()
    ev._flag = True
    return ev


# calls from outside the loop, in order: (function, args, abandon), abandon
# called if the machine stops first (a list: an empty deque takes 760 bytes)
_InboxCalls = list[
    tuple[Callable[..., object], tuple[Any, ...], Callable[[], object] | None]
]


class _Gate:
    """Start order of the machine's tasks: each waits for the one before."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = WhenEvent()


class Machine(CoreMachine):
    """A relational, multi-state machine with a tick clock per state.

    Synchronous use (mutations, checks, clocks, sync handlers) needs no
    event loop. `async with machine:` runs it as an anyio task group for
    forks, async handlers, waiting and calls from other threads and loops.
    """

    __slots__ = (
        "_binding",
        "_context",
        "_inbox",
        "_inbox_armed",
        "_inbox_closed",
        "_inbox_cond",
        "_inbox_full",
        "_inbox_lock",
        "_inbox_waker",
        "_last_gate",
        "_sb",
        "_tg",
    )

    _ctx_class = StateCtx

    def __init__(self, schema: Mapping[str, Any], **kwargs: Any) -> None:
        self._tg: anyio.abc.TaskGroup | None = None
        self._binding: Binding | None = None
        # calls from outside the loop, in the order they were made:
        # (function, args, abandon), abandon called if the machine stops first
        # created when the machine first runs (`_open_inbox`): an idle
        # machine takes no calls from outside
        self._inbox: _InboxCalls | None = None
        self._inbox_lock: threading.Lock | None = None
        # on the lock, made when a thread first waits for room in the inbox
        self._inbox_cond: threading.Condition | None = None
        self._inbox_full = 0  # threads waiting for room in the inbox
        self._inbox_armed = False
        self._inbox_closed = True
        # wakes the inbox task; None until the first call from outside
        # starts that task (_start_inbox)
        self._inbox_waker: Callable[[], None] | None = None
        # the context `async with` ran in: the inbox task's, as if started there
        self._context: contextvars.Context | None = None
        self._last_gate: _Gate | None = None
        self._sb: _Subs | None = None  # made by the first subscription
        super().__init__(schema, **kwargs)

    # --------------------------------------------------------- running

    @property
    def running(self) -> bool:
        """True inside `async with machine:`."""
        return self._tg is not None

    def runs_inline(self) -> bool:
        """True when a call made here runs inline: in the machine's own
        loop, or anywhere while it is not running. False from other threads
        and loops, where mutations are queued in the machine's inbox."""
        return not self._is_foreign()

    async def __aenter__(self) -> Machine:
        if self._disposing:
            raise MachineDisposedError(f"machine {self.id} is disposed")
        if self._tg is not None:
            raise RuntimeError(f"machine {self.id} is already running")
        binding = bind_current()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._binding = binding
        self._context = contextvars.copy_context()
        # the core's cheap thread check; a guest run shares its thread with
        # the host loop, so there every call asks the binding
        self._loop_thread = -1 if binding.guest else binding.thread
        with self._open_inbox():
            # the inbox task starts with the first call from outside
            # (_submit): a machine nobody calls from outside runs no task
            self._inbox_closed = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        tg = self._tg
        assert tg is not None
        try:
            self.dispose()
        except BaseException:
            tg.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                await tg.__aexit__(None, None, None)
            self._stop_running()
            raise
        tg.cancel_scope.cancel()
        try:
            if exc_type is None or issubclass(
                exc_type, anyio.get_cancelled_exc_class()
            ):
                try:
                    return bool(await tg.__aexit__(exc_type, exc, tb))
                except BaseException as raised:
                    if exc is not None and raised is exc:
                        # not suppressed: let the caller re-raise it. Raising
                        # the same object again from an AsyncExitStack
                        # callback makes contextlib set it as its own
                        # __context__, and anyio's asyncio backend then loops
                        # forever walking that chain
                        return False
                    raise
            # the block's own error propagates as it is, not in a group
            await tg.__aexit__(None, None, None)
            return False
        finally:
            self._stop_running()

    def _open_inbox(self) -> threading.Lock:
        """The inbox's lock (and the inbox), made on the first run."""
        lock = self._inbox_lock
        if lock is None:
            self._inbox = []
            self._inbox_lock = lock = threading.Lock()
        return lock

    def _stop_running(self) -> None:
        self._close_inbox()
        self._tg = None
        self._binding = None
        self._context = None
        self._inbox_waker = None
        self._loop_thread = 0
        self._last_gate = None

    # ----------------------------------------------------------- the inbox

    def _is_foreign(self) -> bool:
        lt = self._loop_thread
        if lt > 0:
            return lt != _get_ident()
        if lt == 0:
            return False
        binding = self._binding
        return binding is not None and not binding.is_home()

    def _submit(
        self,
        fn: Callable[..., object],
        args: tuple[Any, ...] = (),
        abandon: Callable[[], object] | None = None,
    ) -> bool:
        """Queue `fn(*args)` for the loop, from anywhere; never blocks.

        False (and nothing queued) when the machine no longer runs.
        """
        lock = self._inbox_lock
        inbox = self._inbox
        if lock is None or inbox is None:  # never ran
            return False
        with lock:
            while len(inbox) >= _INBOX_MAX and not self._inbox_closed:
                binding = self._binding
                if binding is None or binding.thread == _get_ident():
                    break  # the loop's own thread (a guest's host) can't wait
                cond = self._inbox_cond
                if cond is None:
                    cond = self._inbox_cond = threading.Condition(lock)
                self._inbox_full += 1
                cond.wait()
                self._inbox_full -= 1
            if self._inbox_closed:
                return False
            inbox.append((fn, args, abandon))
            if self._inbox_armed:
                return True
            # armed until the inbox task finds the inbox empty: one wake-up
            # (or the task's start) per batch, and none is lost
            self._inbox_armed = True
            binding = self._binding
            waker = self._inbox_waker or self._start_inbox
        if binding is None or not binding.call_soon(waker):
            # the loop is gone without stopping the machine (it crashed)
            self._close_inbox()
        return True

    def _start_inbox(self) -> None:
        """In the loop: start the inbox task, for the first call from
        outside (it runs from then on)."""
        tg = self._tg
        context = self._context
        if tg is None or context is None or self._inbox_closed:
            return
        if self._inbox_waker is not None:  # started already
            self._inbox_waker()
            return
        self._inbox_waker = _noop  # until the task sets its own

        def start() -> None:
            tg.start_soon(self._inbox_task, name=f"{self.id}:inbox")

        try:
            context.run(start)
        except RuntimeError:  # the task group is closing: so is the machine
            self._close_inbox()

    async def _inbox_task(self) -> None:
        """Run the calls from outside, in order, in the loop."""
        if current_lib() == TRIO:
            trio_ll = trio_lowlevel()
            task = trio_ll.current_task()
            parked = [False]

            def wake() -> None:
                if parked[0]:
                    parked[0] = False
                    trio_ll.reschedule(task)

            def abort(_: Any) -> Any:
                parked[0] = False
                return trio_ll.Abort.SUCCEEDED

            self._inbox_waker = wake
            while True:
                if self._run_inbox():
                    await _checkpoint()  # more came meanwhile: others first
                    continue
                parked[0] = True
                await trio_ll.wait_task_rescheduled(abort)
        else:
            loop = asyncio.get_running_loop()
            box: list[asyncio.Future[None] | None] = [None]

            def wake_fut() -> None:
                fut = box[0]
                if fut is not None and not fut.done():
                    fut.set_result(None)

            self._inbox_waker = wake_fut
            while True:
                if self._run_inbox():
                    await _checkpoint()  # more came meanwhile: others first
                    continue
                fut = box[0] = loop.create_future()
                await fut

    def _run_inbox(self) -> bool:
        """Run the calls waiting now (a chunk of them: threads that outpace
        the loop must not starve its other tasks); True if more are waiting
        (the inbox stays armed), False once it is empty (disarmed)."""
        inbox = self._inbox
        lock = self._inbox_lock
        assert inbox is not None and lock is not None
        with lock:
            batch = inbox[:_INBOX_CHUNK]
            del inbox[:_INBOX_CHUNK]
            if self._inbox_full and self._inbox_cond is not None:
                self._inbox_cond.notify_all()
        for i, (fn, args, _) in enumerate(batch):
            try:
                fn(*args)
            except BaseException:
                # the error ends the machine's task group; what is left
                # of the batch is abandoned with the rest of the inbox
                with lock:
                    inbox[:0] = batch[i + 1 :]
                raise
        with lock:
            if inbox:
                return True
            self._inbox_armed = False
            return False

    def _close_inbox(self) -> None:
        """Stop taking calls; abandon the waiting ones (blocked callers
        return their neutral answer)."""
        lock = self._inbox_lock
        inbox = self._inbox
        if lock is None or inbox is None:  # never ran
            self._inbox_closed = True
            return
        with lock:
            self._inbox_closed = True
            left = inbox[:]
            inbox.clear()
            if self._inbox_cond is not None:
                self._inbox_cond.notify_all()
        for _, _, abandon in left:
            if abandon is not None:
                abandon()

    def _call_blocking(
        self, what: str, default: T, fn: Callable[..., T], *args: Any
    ) -> T:
        """Run `fn(*args)` in the loop, in order with the caller's earlier
        calls, and wait for its result (from outside the loop)."""
        binding = self._binding
        if binding is not None and binding.thread == _get_ident():
            raise RuntimeError(
                f"{what} from the host loop of a trio guest run would block the "
                f"thread machine {self.id} runs in: call it from a trio task"
            )
        done = threading.Event()
        box: list[Any] = [default, None]

        def run() -> None:
            try:
                box[0] = fn(*args)
            except BaseException as exc:
                box[1] = exc
            finally:
                done.set()

        if not self._submit(run, (), done.set):
            return default
        done.wait()
        if box[1] is not None:
            raise box[1]
        result: T = box[0]
        return result

    # ------------------------------------------------ calls from outside

    def _foreign_mutate(
        self, mtype: MutationType, called: tuple[str, ...], args: dict[str, Any]
    ) -> Result:
        if not self._is_foreign():  # a guest run's own task
            return self._mutate(mtype, called, args, True)
        if self._submit(self._apply_mutation, (mtype, called, args)):
            return _QUEUED
        return _CANCELED

    def _apply_mutation(
        self, mtype: MutationType, called: tuple[str, ...], args: dict[str, Any]
    ) -> None:
        if not self._disposing:
            self._mutate(mtype, called, args, True)

    def toggle(
        self, states: Iterable[str], args: dict[str, Any] | None = None
    ) -> Result:
        """Remove `states` if all are active, else add them.

        From outside the loop the choice is made by the loop, in order.
        """
        if self._is_foreign():
            called = self._parse(states)
            own = self._check_args(args)
            if self._disposing:
                return _CANCELED
            return self._queued(CoreMachine.toggle, (self, called, own))
        return super().toggle(states, args)

    def add_err_state(
        self, state: str, exc: BaseException, args: dict[str, Any] | None = None
    ) -> Result:
        """Record `exc` and activate `state` together with `Exception`.

        From outside the loop the error is recorded (and `on_error` called)
        by the loop, in order with the caller's other calls.
        """
        if self._is_foreign():
            self._check1(state)
            if exc is not None and not isinstance(exc, BaseException):
                raise TypeError(f"exc must be an exception, got {type(exc).__name__}")
            own = self._check_args(args)
            if self._disposing:
                return _CANCELED
            return self._queued(CoreMachine.add_err_state, (self, state, exc, own))
        return super().add_err_state(state, exc, args)

    def _queued(self, fn: Callable[..., object], args: tuple[Any, ...]) -> Result:
        return _QUEUED if self._submit(fn, args) else _CANCELED

    def _check(self, mtype: MutationType, called: tuple[str, ...], args: Any) -> Result:
        if self._is_foreign():
            # negotiation handlers run in the loop; wait for the answer
            args = self._check_args(args)
            if self._disposing:
                return _CANCELED
            return self._call_blocking(
                "a dry run", _CANCELED, CoreMachine._check, self, mtype, called, args
            )
        return super()._check(mtype, called, args)

    def eval(
        self, fn: Callable[[], object], *, source: str = "", ctx: CtxBase | None = None
    ) -> bool:
        """Run `fn` between transitions, from any task or thread.

        From outside the loop it runs in the loop, after the caller's earlier
        calls, and `eval` returns once it ran. Returns False when `fn` could
        not run (disposed machine, expired `ctx`, or a call from inside a
        handler, which also adds an Exception).
        """
        if self._is_foreign():
            if not callable(fn):
                raise TypeError(f"eval takes a callable, got {type(fn).__name__}")
            if self._disposing:
                return False
            return self._call_blocking(
                "eval",
                False,
                lambda: CoreMachine.eval(self, fn, source=source, ctx=ctx),
            )
        return super().eval(fn, source=source, ctx=ctx)

    def new_state_ctx(self, state: str) -> StateCtx:
        """A context bound to `state`'s current tick.

        From outside the loop the tick is read by the loop, after the
        caller's earlier calls (the call waits for it).
        """
        if self._is_foreign():
            self._check1(state)
            expired = StateCtx(self, state, 0, True)
            return self._call_blocking(
                "new_state_ctx", expired, self._new_state_ctx_here, state
            )
        return self._new_state_ctx_here(state)

    def _new_state_ctx_here(self, state: str) -> StateCtx:
        ctx = super().new_state_ctx(state)
        assert isinstance(ctx, StateCtx)
        return ctx

    def bind_handlers(self, obj: object, id: str | None = None) -> str:
        """Bind the handler methods of `obj`; return the binding id."""
        if self._is_foreign():
            return self._call_blocking(
                "bind_handlers", "", CoreMachine.bind_handlers, self, obj, id
            )
        return super().bind_handlers(obj, id)

    def detach_handlers(self, binding_id: str) -> None:
        """Unbind the handler object bound under `binding_id`."""
        if self._is_foreign():
            self._call_blocking(
                "detach_handlers", None, CoreMachine.detach_handlers, self, binding_id
            )
            return
        super().detach_handlers(binding_id)

    def bind_tracer(self, tracer: Tracer) -> None:
        """Attach a tracer; it sees every transition from now on."""
        if self._is_foreign():
            self._call_blocking(
                "bind_tracer", None, CoreMachine.bind_tracer, self, tracer
            )
            return
        super().bind_tracer(tracer)

    def detach_tracer(self, tracer: Tracer) -> None:
        """Detach a bound tracer."""
        if self._is_foreign():
            self._call_blocking(
                "detach_tracer", None, CoreMachine.detach_tracer, self, tracer
            )
            return
        super().detach_tracer(tracer)

    def dispose(self) -> None:
        """Stop the machine: cancel its tasks and contexts, wake waiters.

        From outside the loop it is queued, in order, and returns at once.
        """
        if self._is_foreign():
            self._submit(self.dispose)
            return
        super().dispose()

    def _finish_dispose(self) -> None:
        if self._disposed:
            return
        super()._finish_dispose()
        self._close_inbox()
        subs = self._pending_subs()
        self._sb = None
        self._watch = self._watch_queue = False
        for sub in subs:
            self._fire(sub, log=False)
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    @property
    def pending_waits(self) -> int:
        """How many when-subscriptions the machine holds now (waits that
        fire on a later transition; for leak checks and debugging)."""
        sb = self._sb
        keyed = sb.keys.values() if sb is not None else ()
        return len({id(s) for s in (*self._pending_subs(), *keyed)})

    def _pending_subs(self) -> list[_Sub]:
        """Every subscription the machine holds, each once."""
        sb = self._sb
        if sb is None:
            return []
        return [
            *sb.w1.values(),
            *sb.w0.values(),
            *{id(s): s for lst in sb.by_state.values() for s in lst}.values(),
            *(s for lst in sb.args.values() for s in lst),
            *sb.query,
            *sb.queue,
            *sb.queue_end,
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

        Work of a context that expired before the task starts never starts.
        An exception from `fn` becomes the Exception state. From outside
        the loop the start is queued, in order, and `fork` returns at once.
        """
        if self._disposing:
            raise MachineDisposedError(f"machine {self.id} is disposed")
        if ctx is not None and not isinstance(ctx, StateCtx):
            raise TypeError(f"ctx must be a state context, got {type(ctx).__name__}")
        if not callable(fn):
            raise TypeError(f"fork takes an async function, got {type(fn).__name__}")
        if self._is_foreign():
            if not self._submit(self._fork_here, (ctx, fn, args)):
                raise MachineDisposedError(f"machine {self.id} is disposed")
            return
        if self._tg is None:
            raise RuntimeError(
                f"machine {self.id} is not running: fork needs `async with machine:`"
            )
        self._fork_here(ctx, fn, args)

    def _fork_here(
        self,
        ctx: StateCtx | None,
        fn: Callable[..., Awaitable[object]],
        args: tuple[Any, ...],
    ) -> None:
        if self._tg is not None and not self._disposing:
            self._spawn(ctx, fn, args, False, f"{self.id}:fork")

    def _spawn(
        self,
        ctx: StateCtx | None,
        fn: Callable[..., Awaitable[object]],
        args: Sequence[Any],
        nested: bool,
        name: str,
    ) -> None:
        tg = self._tg
        assert tg is not None
        # trio starts the tasks of one batch in random order: each task
        # waits for the previous one to start, so they start in call order
        gate = _Gate()
        prev = self._last_gate
        self._last_gate = gate
        tg.start_soon(self._forked, ctx, fn, args, prev, gate, nested, name=name)

    async def _forked(
        self,
        ctx: StateCtx | None,
        fn: Callable[..., Awaitable[object]],
        args: Sequence[Any],
        prev: _Gate | None,
        gate: _Gate,
        nested: bool,
    ) -> None:
        try:
            if prev is not None and not prev.event._flag:
                await prev.event.wait()
        finally:
            gate.event.set()
            if self._last_gate is gate:
                self._last_gate = None
        if ctx is not None and ctx.expired:
            return  # work of an expired context never starts
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
            where = getattr(fn, "__qualname__", repr(fn))
            log_handler_error(self._id, f"task {where}", err)
            if nested:
                # an async handler of an error transition: report it, but
                # add no Exception for it (that could loop, §8.3 rule 6)
                if self.on_error is not None:
                    self.on_error(self, err)
            else:
                self.add_err(err)

    def _start_async(
        self, fn: Callable[..., Any], event: Event, kind: int, state: str
    ) -> None:
        if self._tg is None:
            super()._start_async(fn, event, kind, state)
            return
        ctx = None
        if kind in (_STATE, _END):
            ctx = self._new_state_ctx_here(state)
            event._ctx = ctx
        nested = EXCEPTION in event.transition.mutation.called
        self._spawn(ctx, fn, (event,), nested, f"{self.id}:{event.name}")

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
    ) -> WhenEvent:
        """A when-event for a checked request: set already, or subscribed.

        Readiness is decided in the loop: a call from outside gets a pending
        event at once and the loop subscribes it, in order with the caller's
        earlier calls.
        """
        if self._disposed:
            return _set_event()
        if ctx is not None:
            if not isinstance(ctx, CtxBase):
                raise TypeError(
                    f"ctx must be a state context, got {type(ctx).__name__}"
                )
            if ctx.expired:
                return _set_event()
        if self._is_foreign():
            ev = WhenEvent()
            ev._home = self._binding
            if not self._submit(self._attach_new, (ev, kind, states, values, ctx)):
                ev.set()  # the machine stopped meanwhile
            return ev
        if kind == _WHEN_TICKS:
            kind, values = _WHEN_TIME, (self._ticks[states[0]] + values,)
        if ctx is None and len(states) == 1 and kind <= _WHEN_NOT:
            state = states[0]
            return self._wait1(kind == _WHEN, state, self._ticks[state])
        key: Any = None
        sb = self._sb
        if kind in (_WHEN, _WHEN_NOT, _WHEN_TIME, _WHEN_ARGS):
            key = _sub_key(kind, states, values, ctx)
            if sb is not None and key is not None:
                existing = sb.keys.get(key)
                if existing is not None and not existing.event._flag:
                    return existing.event
            elif sb is not None and kind == _WHEN_ARGS:
                for other in sb.args.get(states[0], ()):
                    if (
                        other.values == values
                        and other.ctx is ctx
                        and not other.event._flag
                    ):
                        return other.event
        ev = WhenEvent()
        self._attach_new(ev, kind, states, values, ctx, key)
        return ev

    def _wait1(self, active: bool, state: str, tick: int) -> WhenEvent:
        """In the loop: a one-state wait without ctx (the common wait), for
        `state` being `active`; set already, shared, or new."""
        if bool(tick & 1) is active:
            return _set_event()
        sb = self._sb
        if sb is None:
            sb = self._sb = _Subs()
        index = sb.w1 if active else sb.w0
        sub = index.get(state)
        if sub is not None and not sub.event._flag:
            return sub.event
        ev = WhenEvent()
        kind = _WHEN1 if active else _WHEN_NOT1
        ev._sub = index[state] = _Sub(self, kind, (state,), None, None, None, ev)
        self._watch = True
        if self._log_level >= _OPS:
            self._log(_OPS, f"[{_KIND_LOG[kind]}:new] {state}")
        return ev

    def _attach_new(
        self,
        ev: WhenEvent,
        kind: int,
        states: tuple[str, ...],
        values: Any,
        ctx: CtxBase | None,
        key: Any = None,
    ) -> None:
        """In the loop: set `ev` if its condition holds, else subscribe it."""
        if self._disposed or (ctx is not None and ctx.expired):
            ev.set()
            return
        if kind == _WHEN_TICKS:
            kind, values = _WHEN_TIME, (self._ticks[states[0]] + values,)
            key = _sub_key(kind, states, values, ctx)
        if ctx is None and len(states) == 1 and kind <= _WHEN_NOT:
            kind = _WHEN1 if kind == _WHEN else _WHEN_NOT1
        sub = _Sub(self, kind, states, values, key, ctx, ev)
        if self._ready(sub):
            ev.set()
            return
        ev._sub = sub
        self._attach(sub)
        if self._log_level >= _OPS:
            self._log(_OPS, f"[{_KIND_LOG[kind]}:new] {_describe(sub)}")

    def _attach(self, sub: _Sub) -> None:
        sub.detached = False
        ctx = sub.ctx
        if ctx is not None and sub.ctx_unregister is None:
            sub.ctx_unregister = ctx.on_expire(lambda: self._fire(sub, log=False))
            if sub.event._flag:  # expired meanwhile: fired and gone
                return
        sb = self._sb
        if sb is None:
            sb = self._sb = _Subs()
        kind = sub.kind
        if kind >= _WHEN1:
            index = sb.w1 if kind == _WHEN1 else sb.w0
            state = sub.states[0]
            other = index.get(state)
            if other is None or other is sub or other.event._flag:
                index[state] = sub
            else:
                # an identical wait holds the slot (re-attached, or made
                # from another thread): index this one with the general ones
                sub.kind = _WHEN if kind == _WHEN1 else _WHEN_NOT
                sb.by_state.setdefault(state, []).append(sub)
                sb.general = True
            self._watch = True
            return
        key = sub.key
        if key is not None:
            other_sub = sb.keys.get(key)
            if other_sub is None or other_sub.event._flag:
                sb.keys[key] = sub
            else:
                sub.key = None  # an identical one is indexed: keep it there
        if kind <= _WHEN_TIME:
            for s in sub.states:
                sb.by_state.setdefault(s, []).append(sub)
            sb.general = self._watch = True
        elif kind == _WHEN_ARGS:
            sb.args.setdefault(sub.states[0], []).append(sub)
            sb.general = self._watch = True
        elif kind == _WHEN_QUERY:
            sb.query.append(sub)
            sb.general = self._watch = True
        elif kind == _QUEUE:
            sb.queue.append(sub)
            self._watch_queue = True
        elif kind == _QUEUE_END:
            sb.queue_end.append(sub)
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
        ev = sub.event
        if ev._flag:
            return
        if self._disposed or self._ready(sub) or (sub.ctx and sub.ctx.expired):
            ev.set()
            return
        self._attach(sub)

    def _keep_attached(self, sub: _Sub) -> None:
        """In the loop: a remote waiter came; re-subscribe if dropped."""
        if sub.detached and sub.event._has_waiters():
            self._reattach(sub)

    def _drop_if_unwaited(self, sub: _Sub) -> None:
        """In the loop: a remote waiter left; drop the subscription if it
        was the last."""
        if not sub.event._flag and not sub.event._has_waiters():
            self._detach(sub)

    def _ready(self, sub: _Sub) -> bool:
        ticks = self._ticks
        kind = sub.kind
        if kind == _WHEN1:
            return bool(ticks[sub.states[0]] & 1)
        if kind == _WHEN_NOT1:
            return not ticks[sub.states[0]] & 1
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
        if kind == _DISPOSED:
            return self._disposed
        return False

    def _unlink(self, sub: _Sub) -> None:
        sb = self._sb
        if sb is None:
            return
        kind = sub.kind
        key = sub.key
        if key is not None and sb.keys.get(key) is sub:
            del sb.keys[key]
        if kind <= _WHEN_TIME:
            subs = sb.by_state
            for s in sub.states:
                lst = subs.get(s)
                if lst is not None and sub in lst:
                    if len(lst) == 1:
                        del subs[s]
                        if not subs:
                            self._rewatch()
                    else:
                        lst.remove(sub)
        elif kind >= _WHEN1:
            index = sb.w1 if kind == _WHEN1 else sb.w0
            state = sub.states[0]
            if index.get(state) is sub:
                del index[state]
                if not index:
                    self._rewatch()
        elif kind == _WHEN_ARGS:
            lst = sb.args.get(sub.states[0])
            if lst and sub in lst:
                lst.remove(sub)
                if not lst:
                    del sb.args[sub.states[0]]
                    self._rewatch()
        elif kind == _WHEN_QUERY:
            if sub in sb.query:
                sb.query.remove(sub)
                self._rewatch()
        elif kind == _QUEUE:
            if sub in sb.queue:
                sb.queue.remove(sub)
                self._rewatch()
        elif kind == _QUEUE_END and sub in sb.queue_end:
            sb.queue_end.remove(sub)
            self._rewatch()

    def _rewatch(self) -> None:
        sb = self._sb
        if sb is None:
            self._watch = self._watch_queue = False
            return
        sb.general = bool(sb.by_state or sb.args or sb.query)
        self._watch = bool(sb.w1 or sb.w0 or sb.general)
        self._watch_queue = bool(sb.queue or sb.queue_end)

    def _fire(self, sub: _Sub, log: bool = True) -> None:
        ev = sub.event
        if not sub.detached:
            self._unlink(sub)
        if sub.ctx_unregister is not None:
            sub.ctx_unregister()
            sub.ctx_unregister = None
        if ev._flag:
            return
        if log and self._log_level >= _OPS:
            self._log(_OPS, f"[{_KIND_LOG[sub.kind]}:match] {_describe(sub)}")
        ev.set()

    def _subs_after_tx(
        self, args: dict[str, Any], plan: Plan, enters_done: int = -1
    ) -> None:
        sb = self._sb
        if sb is None:
            return
        # one-state waits, set at once: nothing to check but the tick. A
        # pending one waits for its state to change, so only a changed state
        # can set it: when1 an entered one, still active unless a failed
        # final handler undid it (_panic)
        ticks = self._ticks
        w0 = sb.w0
        if w0:
            for name, _ in plan.changes:
                if name in w0 and not ticks[name] & 1:
                    sub = w0.pop(name)
                    if self._log_level >= _OPS:
                        self._log(_OPS, f"[whenNot:match] {name}")
                    sub.event.set()
        w1 = sb.w1
        if w1:
            for name in plan.enters:
                if name in w1 and ticks[name] & 1:
                    sub = w1.pop(name)
                    if self._log_level >= _OPS:
                        self._log(_OPS, f"[when:match] {name}")
                    sub.event.set()
        if not sb.general:
            if not w1 and not w0:
                self._watch = False
            return
        subs = sb.by_state
        args_subs = sb.args
        query = sb.query
        fired: list[_Sub] = []
        if subs:
            for name, _ in plan.changes:
                lst = subs.get(name)
                if lst is not None:
                    for s in lst:
                        if s not in fired and self._ready(s):
                            fired.append(s)
        if args_subs and enters_done:
            enters = plan.enters if enters_done < 0 else plan.enters[:enters_done]
            for name in enters:
                for s in args_subs.get(name, ()):
                    if s not in fired and _args_match(s.values, args):
                        fired.append(s)
        if query:
            clock: Clock = dict(self._ticks)
            fired.extend(s for s in list(query) if s.values(clock))
        for s in fired:
            self._fire(s)

    def _subs_after_mutation(self) -> None:
        sb = self._sb
        if sb is not None:
            p = self._p
            for s in [s for s in sb.queue if p >= s.values]:
                self._fire(s)

    def _subs_queue_end(self) -> None:
        sb = self._sb
        if sb is not None:
            for s in list(sb.queue_end):
                self._fire(s)

    def when(self, states: Iterable[str], ctx: CtxBase | None = None) -> WhenEvent:
        """Set once all `states` are active (at once if they are now)."""
        if self._disposed:
            return _set_event()
        return self._subscribe(_WHEN, self._parse_list(states), None, ctx)

    def when1(self, state: str, ctx: CtxBase | None = None) -> WhenEvent:
        """Set once `state` is active."""
        tick = self._ticks.get(state) if type(state) is str else None
        if tick is None:  # not a known name: `when` parses and raises
            return self.when((state,) if isinstance(state, str) else state, ctx)
        lt = self._loop_thread
        if ctx is None and (not lt or lt == _get_ident()):
            # in the loop, or not running (a guest run's lt is -1)
            return self._wait1(True, state, tick)
        return self._subscribe(_WHEN, (state,), None, ctx)

    def when_not(self, states: Iterable[str], ctx: CtxBase | None = None) -> WhenEvent:
        """Set once none of `states` is active."""
        if self._disposed:
            return _set_event()
        return self._subscribe(_WHEN_NOT, self._parse_list(states), None, ctx)

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
            return _set_event()
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
        return self._subscribe(_WHEN_TIME, tuple(names), times, ctx)

    def when_time1(
        self, state: str, tick: int, ctx: CtxBase | None = None
    ) -> WhenEvent:
        """Set once `state`'s tick is at least `tick`."""
        return self.when_time((state,), (tick,), ctx)

    def when_ticks(self, state: str, n: int, ctx: CtxBase | None = None) -> WhenEvent:
        """Set once `state` ticked `n` more times from now (for a call from
        outside the loop: from when the loop takes the call)."""
        if self._disposed:
            return _set_event()
        self._check1(state)
        if not isinstance(n, int):
            raise TypeError(f"n must be an int, got {n!r}")
        return self._subscribe(_WHEN_TICKS, (state,), n, ctx)

    def when_args(
        self, state: str, args: Mapping[str, Any], ctx: CtxBase | None = None
    ) -> WhenEvent:
        """Set when `state` activates in a transition whose args contain
        every key of `args` with an equal value ({} matches any)."""
        if self._disposed:
            return _set_event()
        self._check1(state)
        if not isinstance(args, Mapping):
            raise TypeError(f"args must be a dict, got {type(args).__name__}")
        return self._subscribe(_WHEN_ARGS, (state,), dict(args), ctx)

    def when_query(
        self, fn: Callable[[Clock], object], ctx: CtxBase | None = None
    ) -> WhenEvent:
        """Set when `fn(clock)` is truthy after a later transition."""
        if not callable(fn):
            raise TypeError(f"when_query takes a callable, got {type(fn).__name__}")
        return self._subscribe(_WHEN_QUERY, (), fn, ctx)

    def when_queue(self, tick: int) -> WhenEvent:
        """Set once the mutation with queue tick `tick` was processed."""
        if not isinstance(tick, int):
            raise TypeError(f"tick must be an int, got {type(tick).__name__}")
        return self._subscribe(_QUEUE, (), tick, None)

    def when_queue_ends(self) -> WhenEvent:
        """Set once the machine is not processing its queue."""
        return self._subscribe(_QUEUE_END, (), None, None)

    def when_disposed(self) -> WhenEvent:
        """Set once the machine is disposed."""
        return self._subscribe(_DISPOSED, (), None, None)


def _sub_key(kind: int, states: tuple[str, ...], values: Any, ctx: Any) -> Any:
    """The identity of a subscription (equal requests share one event)."""
    try:
        names: Any = states if kind == _WHEN_TIME else frozenset(states)
        key = (kind, names, _freeze(values), id(ctx))
        hash(key)
    except TypeError:
        return None
    return key


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
