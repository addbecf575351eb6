"""The machine: states, clocks, the queue and transitions (docs/design/semantics.md §1-§11)."""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time as _time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Self

from . import _export
from ._ctx import CtxBase, _noop
from ._handlers import (
    ANY_ENTER,
    ANY_STATE,
    Binding,
    handler_pairs,
    new_binding_id,
    scan_handlers,
)
from ._log import LogArgsMapper, LogSink, default_log_args_mapper, format_args
from ._log import stdlib_sink as _stdlib_sink
from ._resolve import PLAN_CACHE_BYTES, Plan, plan_bytes, re_resolve, resolve
from ._schema import compile_schema
from ._tracer import Tracer
from ._transition import Event, Mutation, Transition
from ._types import (
    EXCEPTION,
    Clock,
    HandlerTimeoutError,
    LogLevel,
    MutationType,
    NestedEvalError,
    Position,
    Result,
    State,
    StateNameError,
    Time,
)

__all__ = ["CoreMachine"]

_ADD: Final = MutationType.ADD
_REMOVE: Final = MutationType.REMOVE
_SET: Final = MutationType.SET
_EXECUTED: Final = Result.EXECUTED
_CANCELED: Final = Result.CANCELED
_QUEUED: Final = Result.QUEUED
_EXTERNAL: Final = LogLevel.EXTERNAL
_CHANGES: Final = LogLevel.CHANGES
_OPS: Final = LogLevel.OPS
_DECISIONS: Final = LogLevel.DECISIONS
_EVERYTHING: Final = LogLevel.EVERYTHING

# handler entry kinds
_EXIT, _ENTER, _SELF, _CROSS, _ANY_ENTER = 0, 1, 2, 3, 4
_END, _STATE, _ANY_STATE = 5, 6, 7

_HEALTH_STATES = frozenset({"Healthcheck", "Heartbeat"})
_PLAN_CACHE_MAX = 8192
_MISSING: Any = object()
_get_ident = threading.get_ident
_now = _time.time

if sys.implementation.name == "cpython":
    _refs = sys.getrefcount
else:  # no reference counts to tell a kept Event: never reuse one

    def _refs(obj: object) -> int:
        return 1 << 30


def _api(mach: CoreMachine) -> Any:
    """The machine as handlers and tracers see it: the full `Machine` type."""
    return mach


Methods = tuple[tuple[Binding, Callable[..., Any]], ...]
NegEntry = tuple[int, str, str, str, Methods]
FinalEntry = tuple[int, str, str, Methods]


# a direct handler call: the method, its name, the handler kind, its state
# (or ""), and the binding it belongs to
DirectCall = tuple[Callable[..., Any], str, int, str, Binding]


class _HandlerPlan:
    __slots__ = ("direct", "direct_final", "direct_neg", "final", "neg")

    def __init__(
        self,
        neg: tuple[NegEntry, ...],
        final: tuple[FinalEntry, ...],
        direct: bool,
    ):
        self.neg = neg
        self.final = final
        # the handlers are called without `_call` (CoreMachine._direct), in
        # the order of these flat lists
        self.direct = direct
        self.direct_neg: tuple[DirectCall, ...] = ()
        self.direct_final: tuple[DirectCall, ...] = ()
        if direct:
            self.direct_neg = tuple(
                (fn, name, kind, x, b)
                for kind, x, _, name, methods in neg
                for b, fn in methods
            )
            self.direct_final = tuple(
                (fn, name, kind, x, b)
                for kind, x, name, methods in final
                for b, fn in methods
            )


class _ZeroTicks(dict[str, int]):
    """The ticks of a disposed machine: every name reads as 0."""

    def __missing__(self, key: str) -> int:
        return 0


class _Off(dict[str, bool]):
    """The active flags of a disposed machine: every name reads as False."""

    def __missing__(self, key: str) -> bool:
        return False


class _Breakpoint:
    __slots__ = ("added", "removed", "strict")

    def __init__(self, added: tuple[str, ...], removed: tuple[str, ...], strict: bool):
        self.added = added
        self.removed = removed
        self.strict = strict


class _Panic(Exception):
    """Internal: a handler raised; carries where it happened."""

    def __init__(
        self, exc: Exception, kind: int, state: str, binding: Binding, name: str
    ):
        super().__init__(exc)
        self.exc = exc
        self.kind = kind
        self.state = state
        self.binding = binding
        self.name = name


_error_logger = logging.getLogger("asyncmachine")


def _is_cancellation(exc: BaseException) -> bool:
    # the core imports no event loop library: look at the loaded ones
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and isinstance(exc, asyncio.CancelledError):
        return True
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(exc, trio.Cancelled)


def _check_timeout(value: object) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"handler_timeout must be None or a positive number of seconds, "
            f"got {value!r}"
        )
    return float(value)


def log_handler_error(machine_id: str, where: str, exc: BaseException) -> None:
    """Log a handler's error at ERROR, with its traceback, to the stdlib
    `asyncmachine` logger (on by default, whatever the machine's log level)."""
    _error_logger.error(
        "[%s] %s raised %s: %s",
        machine_id[:5],
        where,
        type(exc).__name__,
        exc,
        exc_info=exc,
        extra={"machine_id": machine_id},
    )


# os.environ's own dict (POSIX: bytes keys), which os.environ's setters
# write: reading it skips os.environ.get's key and value codecs, a fifth of
# a machine's creation (benchmarks/README.md, "memory and start")
_ENV_DATA: Any = getattr(os.environ, "_data", None) if os.name == "posix" else None
if type(_ENV_DATA) is not dict:
    _ENV_DATA = None
# (raw AM_LOG, raw AM_DEBUG) -> (AM_LOG's level, AM_DEBUG == "1")
_env_last: tuple[tuple[Any, Any], tuple[LogLevel | None, bool]] = (
    (0, 0),
    (None, False),
)


def _env_flags() -> tuple[LogLevel | None, bool]:
    """AM_LOG's level (None: unset or not 0-5) and whether AM_DEBUG is "1",
    parsed once per distinct raw value (tests change them at runtime)."""
    global _env_last
    data = _ENV_DATA
    if data is not None:
        raw = (data.get(b"AM_LOG"), data.get(b"AM_DEBUG"))
    else:
        raw = (os.environ.get("AM_LOG"), os.environ.get("AM_DEBUG"))
    last = _env_last
    if raw == last[0]:
        return last[1]
    level_raw = os.environ.get("AM_LOG", "")
    level = None
    if level_raw.isdigit() and 0 <= int(level_raw) <= 5:
        level = LogLevel(int(level_raw))
    flags = (level, os.environ.get("AM_DEBUG") == "1")
    _env_last = (raw, flags)
    return flags


class CoreMachine:
    """The synchronous core of a machine: states, relations, clocks, queue.

    Everything here works without an event loop. `asyncmachine.Machine`
    adds the anyio runtime on top.
    """

    __slots__ = (
        "__weakref__",
        "_active_cache",
        "_auto_cache",
        "_bind_count",
        "_bind_gen",
        "_bindings",
        "_breakpoints",
        "_cs",
        "_ctxs",
        "_disposed",
        "_disposing",
        "_ever_bound",
        "_has_auto",
        "_hp_cache",
        "_id",
        "_in_eval",
        "_index",
        "_lazy",
        "_lazy_applied",
        "_log_level",
        "_loop_thread",
        "_mkey",
        "_n",
        "_on",
        "_on_dispose",
        "_p",
        "_parent_id",
        "_plans",
        "_processing",
        "_q_tracers",
        "_queue",
        "_rec_fast",
        "_rec_t0",
        "_recs",
        "_sink",
        "_spare",
        "_tags",
        "_ticks",
        "_tracers",
        "_tx_need",
        "_tx_tracers",
        "_tx",
        "_watch",
        "_watch_queue",
        "_handler_timeout",
        "err",
        "log_args_mapper",
        "log_id",
        "log_stack_trace",
        "on_error",
        "panic_to_exception",
        "queue_limit",
    )

    def __init__(
        self,
        schema: Mapping[str, State],
        *,
        id: str | None = None,
        parent: CoreMachine | None = None,
        tags: Iterable[str] = (),
        handlers: object | Sequence[object] | None = None,
        log_level: LogLevel | int = LogLevel.NOTHING,
        handler_timeout: float | None = None,
        panic_to_exception: bool = True,
        queue_limit: int = 1000,
        log_stack_trace: bool = True,
        logger: LogSink | None = None,
        tracers: Iterable[Tracer] = (),
    ) -> None:
        if id is not None and not isinstance(id, str):
            raise TypeError(f"id must be a str, got {type(id).__name__}")
        if parent is not None and not isinstance(parent, CoreMachine):
            raise TypeError(f"parent must be a Machine, got {type(parent).__name__}")
        if isinstance(tags, str):
            raise TypeError("tags must be a list of strings, not a string")
        if (
            not isinstance(queue_limit, int)
            or isinstance(queue_limit, bool)
            or queue_limit < 1
        ):
            raise TypeError(f"queue_limit must be a positive int, got {queue_limit!r}")
        timeout = None if handler_timeout is None else _check_timeout(handler_timeout)
        for name, flag in (
            ("panic_to_exception", panic_to_exception),
            ("log_stack_trace", log_stack_trace),
        ):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        if logger is not None and not callable(logger):
            raise TypeError(
                f"logger must be a callable (level, text), got {type(logger).__name__}"
            )
        if type(log_level) is not LogLevel:
            try:
                log_level = LogLevel(log_level)
            except ValueError:
                raise ValueError(
                    f"log_level must be an am.LogLevel (0-5), got {log_level!r}"
                ) from None
        self._cs = cs = compile_schema(schema)
        self._index: dict[str, int] = cs.index
        self._has_auto = bool(cs.auto)
        self._id: str = id if id else os.urandom(8).hex()
        self._parent_id: str = parent.id if parent is not None else ""
        self._tags: tuple[str, ...] = tuple(dict.fromkeys(tags)) if tags else ()

        self._ticks: dict[str, int] = dict.fromkeys(cs.names, 0)
        self._on: dict[str, bool] = dict.fromkeys(cs.names, False)
        # the active set, as the key of the plan caches (_schema.MaskKey)
        self._mkey = cs.mask_key(0)
        self._plans: dict[tuple[Any, ...], Plan] = cs.plans
        self._auto_cache = cs.auto_cache
        self._active_cache = cs.active_cache
        # handler plans by plan; None while no handler can run (nothing
        # bound, log level below EVERYTHING): see _handlers_changed
        self._hp_cache: dict[Plan, _HandlerPlan | None] | None = None

        self._queue: list[Mutation] = []
        self._p = 1
        self._n = 0
        self._processing = False
        self._in_eval = False
        self._tx: Transition | None = None
        # a transition whose Transition is built only on request, and the
        # Event its handlers reuse (docs/design/architecture.md, "Direct
        # handler calls")
        self._lazy: tuple[Plan, dict[str, Any], Mutation | None] | None = None
        self._lazy_applied = False
        self._spare: Event | None = None
        self._disposing = False
        self._disposed = False
        self._on_dispose: list[Callable[[], None]] | None = None
        self._ctxs: dict[str, Any] | None = None  # made by new_state_ctx
        # set by the runtime layer: its loop's thread, and whether it has
        # subscriptions to process
        self._loop_thread = 0
        self._watch = False
        self._watch_queue = False

        self._bindings: tuple[Binding, ...] = ()
        self._bind_count = 0
        self._bind_gen = 0
        self._ever_bound = False
        # a tuple, replaced on bind/detach: a tracer that detaches itself (or
        # another) inside a hook doesn't make the others miss that call
        self._tracers: tuple[Tracer, ...] = ()
        # the bound tracers that override a transition or handler hook: only
        # they make a transition build its Transition object
        self._tx_tracers: tuple[Tracer, ...] = ()
        # whether a bound tracer needs a Transition for every transition;
        # recorders (Tracer._record) are called instead where none is built,
        # with the start time in _rec_t0 meanwhile (docs/design/
        # architecture.md, "Recorders")
        self._tx_need = False
        self._recs: tuple[Callable[..., None], ...] = ()
        self._rec_t0 = 0.0
        # a lone recorder's fast path, set by it (None while it wants its
        # _record called): (plan id lookup, buffer's extend, buffer, its
        # bound); see docs/design/architecture.md, "Recorders"
        self._rec_fast: (
            tuple[
                Callable[[Plan], int | None],
                Callable[[tuple[Any, ...]], None],
                list[Any],
                int,
            ]
            | None
        ) = None
        # the bound tracers that override mutation_queued or queue_end
        self._q_tracers: tuple[Tracer, ...] = ()
        self._breakpoints: tuple[_Breakpoint, ...] = ()

        env_level, debug = _env_flags()
        if env_level is not None and log_level == 0:
            log_level = env_level
        self._log_level: LogLevel = log_level
        self.log_id: bool = True
        """Whether log lines start with the machine id's first 5 chars."""
        self.log_args_mapper: LogArgsMapper | None = default_log_args_mapper
        """Picks the mutation args shown in log lines; None shows none."""
        # None: the stdlib sink, made on the first log line (self.logger)
        self._sink: LogSink | None = logger
        self._handler_timeout = timeout
        self.panic_to_exception: bool = panic_to_exception
        """Turn handler exceptions into the Exception state (else re-raise)."""
        self.queue_limit: int = queue_limit
        """Mutations the queue holds before new ones are canceled."""
        self.log_stack_trace: bool = log_stack_trace
        """Log tracebacks of errors."""
        self.on_error: Callable[[CoreMachine, BaseException], None] | None = None
        """Called with every error recorded by `add_err_state`."""
        self.err: BaseException | None = None
        """The last recorded error."""
        if debug:
            self.panic_to_exception = False
            self._handler_timeout = None
        if log_level >= _EVERYTHING:
            self._handlers_changed()

        if cs.relation_error:
            self._log(_CHANGES, f"[resolver] relation error: {cs.relation_error}")

        for tracer in tracers:
            self.bind_tracer(tracer)
        if parent is not None:
            for tracer in parent._tracers:
                if tracer.inheritable() and tracer not in self._tracers:
                    self.bind_tracer(tracer)
            for tracer in parent._tracers:
                tracer.new_submachine(_api(parent), _api(self))
        if handlers is not None:
            if isinstance(handlers, (list, tuple)):
                for obj in handlers:
                    self.bind_handlers(obj)
            else:
                self.bind_handlers(handlers)

    # ------------------------------------------------------------------ info

    @property
    def id(self) -> str:
        """The machine's id."""
        return self._id

    @property
    def parent_id(self) -> str:
        """Id of the parent machine, or '' for none."""
        return self._parent_id

    @property
    def tags(self) -> list[str]:
        """The machine's tags."""
        return list(self._tags)

    @property
    def schema(self) -> Mapping[str, State]:
        """The normalised schema, `Exception` included (read-only)."""
        return MappingProxyType(self._cs.states)

    @property
    def state_names(self) -> list[str]:
        """All state names in state order (schema order, `Exception` last)."""
        return list(self._cs.names)

    @property
    def log_level(self) -> LogLevel:
        """The current log level."""
        return self._log_level

    @log_level.setter
    def log_level(self, level: LogLevel | int) -> None:
        self._log_level = LogLevel(level)
        self._handlers_changed()

    def _handlers_changed(self) -> None:
        off = not self._bindings and self._log_level < _EVERYTHING
        self._hp_cache = None if off else {}

    @property
    def handler_timeout(self) -> float | None:
        """Seconds a sync handler may run before it counts as failed (None:
        no limit). Setting it checks the value like the constructor does."""
        return self._handler_timeout

    @handler_timeout.setter
    def handler_timeout(self, value: float | None) -> None:
        self._handler_timeout = _check_timeout(value)
        self._handlers_changed()

    @property
    def logger(self) -> LogSink:
        """The log sink: a callable `(level, text)`."""
        sink = self._sink
        if sink is None:
            sink = self._sink = _stdlib_sink(self._id)
        return sink

    @logger.setter
    def logger(self, sink: LogSink | None) -> None:
        self._sink = sink

    @property
    def disposed(self) -> bool:
        """True once disposal completed."""
        return self._disposed

    @property
    def transition(self) -> Transition | None:
        """The transition running now, if any (handlers see their own)."""
        tx = self._tx
        if tx is None and self._lazy is not None:
            tx = self._lazy_tx()
        return tx

    def _lazy_tx(self) -> Transition:
        """Build the running direct transition's `Transition`, once."""
        tx = self._tx
        if tx is None:
            lazy = self._lazy
            if lazy is None:
                raise RuntimeError("no transition is running")
            plan, args, mut = lazy
            me: Any = self
            tx = Transition(me, mut, plan, args, self._p)  # P is the same
            if self._lazy_applied:  # clock_before copied the new ticks
                before = tx.clock_before
                for name, delta in plan.changes:
                    before[name] -= delta
            self._tx = tx
        return tx

    def _lazy_args(self) -> dict[str, Any]:
        lazy = self._lazy
        if lazy is None:
            return self._lazy_tx()._args  # raises
        return lazy[1]

    # --------------------------------------------------------------- logging

    def _log(self, level: int, text: str) -> None:
        if self.log_id:
            text = f"[{self._id[:5]}] {text}"
        self.logger(LogLevel(level), text)

    def log(self, msg: str, *args: object) -> None:
        """Log an external message `[exter] msg` (formatted with `%`)."""
        if self._log_level >= _EXTERNAL:
            text = (msg % args) if args else msg
            self._log(_EXTERNAL, "[exter] " + text.replace("\n", " "))

    def _log_args(self, args: Mapping[str, Any]) -> str:
        return format_args(self.log_args_mapper, args) if args else ""

    # ----------------------------------------------------------- validation

    def _bad_name(self, name: object) -> StateNameError:
        if not isinstance(name, str):
            raise TypeError(f"state names are strings, got {name!r}")
        return StateNameError(name, self._id)

    def _parse(self, states: Iterable[str]) -> tuple[str, ...]:
        if isinstance(states, str):
            raise TypeError(
                f"expected a list of state names, got the string {states!r} "
                "(use the *1 method for one state)"
            )
        try:
            called = tuple(dict.fromkeys(states))
        except TypeError:
            raise TypeError(
                f"expected a list of state names, got {type(states).__name__}"
            ) from None
        index = self._index
        for name in called:
            if name not in index:
                raise self._bad_name(name)
        return called

    def _check1(self, state: str) -> None:
        if state not in self._index:
            raise self._bad_name(state)

    @staticmethod
    def _check_args(args: Mapping[str, Any] | None) -> dict[str, Any]:
        if args is None:
            return {}
        if type(args) is dict:
            return args
        if isinstance(args, dict):
            return args
        raise TypeError(f"args must be a dict or None, got {type(args).__name__}")

    # ---------------------------------------------------------- mutations

    def add(self, states: Iterable[str], args: dict[str, Any] | None = None) -> Result:
        """Activate `states`, keeping the active ones (unless relations say no)."""
        return self._mutate(_ADD, self._parse(states), args)

    def add1(self, state: str, args: dict[str, Any] | None = None) -> Result:
        """Activate one state."""
        if state not in self._index:
            raise self._bad_name(state)
        return self._mutate(_ADD, (state,), args)

    def remove(
        self, states: Iterable[str], args: dict[str, Any] | None = None
    ) -> Result:
        """Deactivate `states`."""
        return self._mutate(_REMOVE, self._parse(states), args)

    def remove1(self, state: str, args: dict[str, Any] | None = None) -> Result:
        """Deactivate one state."""
        if state not in self._index:
            raise self._bad_name(state)
        return self._mutate(_REMOVE, (state,), args)

    def set(self, states: Iterable[str], args: dict[str, Any] | None = None) -> Result:
        """Make `states` the active states, deactivating all others."""
        return self._mutate(_SET, self._parse(states), args)

    def toggle(
        self, states: Iterable[str], args: dict[str, Any] | None = None
    ) -> Result:
        """Remove `states` if all are active, else add them."""
        called = self._parse(states)
        if self._disposing:
            return _CANCELED
        ticks = self._ticks
        if all(ticks[s] & 1 for s in called):
            return self._mutate(_REMOVE, called, args)
        return self._mutate(_ADD, called, args)

    def toggle1(self, state: str, args: dict[str, Any] | None = None) -> Result:
        """Remove one state if active, else add it."""
        if not isinstance(state, str):
            raise TypeError(f"toggle1 takes one state name, got {state!r}")
        return self.toggle((state,), args)

    def can_add(
        self, states: Iterable[str], args: dict[str, Any] | None = None
    ) -> Result:
        """Dry-run an add: relations and negotiation only, nothing changes."""
        return self._check(_ADD, self._parse(states), args)

    def can_remove(
        self, states: Iterable[str], args: dict[str, Any] | None = None
    ) -> Result:
        """Dry-run a remove: relations and negotiation only, nothing changes."""
        return self._check(_REMOVE, self._parse(states), args)

    def can_add1(self, state: str, args: dict[str, Any] | None = None) -> Result:
        """Dry-run adding one state."""
        self._check1(state)
        return self._check(_ADD, (state,), args)

    def can_remove1(self, state: str, args: dict[str, Any] | None = None) -> Result:
        """Dry-run removing one state."""
        self._check1(state)
        return self._check(_REMOVE, (state,), args)

    def add_err(self, exc: BaseException, args: dict[str, Any] | None = None) -> Result:
        """Record `exc` as the machine's error and activate `Exception`."""
        return self.add_err_state(EXCEPTION, exc, args)

    def add_err_state(
        self, state: str, exc: BaseException, args: dict[str, Any] | None = None
    ) -> Result:
        """Record `exc` and activate `state` together with `Exception`."""
        self._check1(state)
        if exc is not None and not isinstance(exc, BaseException):
            raise TypeError(f"exc must be an exception, got {type(exc).__name__}")
        args = self._check_args(args)
        if self._disposing or exc is None or _is_cancellation(exc):
            return _CANCELED
        if len(self._queue) >= self.queue_limit:
            return _CANCELED
        self.err = exc
        if self.on_error is not None:
            self.on_error(self, exc)
        trace = ""
        if exc.__traceback__ is not None:
            trace = "".join(traceback.format_exception(exc))
        called = (state,) if state == EXCEPTION else (state, EXCEPTION)
        return self._mutate(_ADD, called, {**args, "err": exc, "err_trace": trace})

    def is_err(self) -> bool:
        """True while the Exception state is active."""
        return self._ticks[EXCEPTION] & 1 == 1

    def _mutate(
        self,
        mtype: MutationType,
        called: tuple[str, ...],
        args: Any,
        here: bool = False,
    ) -> Result:
        """Run a mutation now or queue it; `here`: the caller knows it runs
        in the machine's own thread."""
        if self._disposing:
            return _CANCELED
        if args is None:
            args = {}
        elif not isinstance(args, dict):
            raise TypeError(f"args must be a dict or None, got {type(args).__name__}")
        if self._loop_thread and not here and _get_ident() != self._loop_thread:
            return self._foreign_mutate(mtype, called, args)
        if self._breakpoints and mtype is not _SET:
            self._check_breakpoints(mtype, called)
        if self._processing:
            return self._enqueue(mtype, called, args)
        if self._queue:
            # leftovers can only exist after an error stopped processing
            self._queue.clear()
            self._n = 0
        if self._log_level >= _OPS:
            self._log(_OPS, f"[queue:{mtype}] {' '.join(called)}{self._log_args(args)}")
        if self._q_tracers or self._watch_queue:
            tracers = self._tracers
            mut = Mutation(mtype, called, args, False, False, self._p + 1)
            for t in tracers:
                t.mutation_queued(_api(self), mut)
            self._p += 1
            return self._process(mut)
        self._p += 1
        # the common case of _process, inlined
        self._processing = True
        try:
            result = self._transition(mtype, called, args, False, False, None)
            if self._queue:
                self._run_queue()
        except BaseException:
            self._queue.clear()
            self._n = 0
            self._lazy = None
            raise
        finally:
            self._processing = False
            self._tx = None
        if self._disposing:
            self._finish_dispose()
        elif self._watch_queue:
            self._subs_queue_end()
        return result

    def _run_queue(self) -> None:
        q = self._queue
        while q and not self._disposing:
            mut = q.pop(0)
            if mut.queue_tick:
                self._n -= 1
                self._p += 1
            self._run(mut)
            if self._watch_queue:
                self._subs_after_mutation()

    def _drain(self) -> None:
        """Process what waits in the queue (used after evals)."""
        q = self._queue
        if q:
            first = q.pop(0)
            if first.queue_tick:
                self._n -= 1
                self._p += 1
            self._process(first)
        elif self._disposing and not self._disposed:
            self._finish_dispose()

    def _enqueue(
        self, mtype: MutationType, called: tuple[str, ...], args: dict[str, Any]
    ) -> Result:
        q = self._queue
        if len(q) >= self.queue_limit:
            exc_called = EXCEPTION in called
            err = self._ticks[EXCEPTION] & 1
            exempt = exc_called and (err if mtype is _REMOVE else not err)
            if not (exempt and mtype is not _SET):
                return _CANCELED
        ticks = self._ticks
        if mtype is _REMOVE and not q and not any(ticks[s] & 1 for s in called):
            return _EXECUTED
        if not args and not any(s in self._cs.multi for s in called):
            cset = frozenset(called)
            for m in q:
                if (
                    m.type is mtype
                    and not m.args
                    and not m.is_check
                    and len(m.called) == len(called)
                    and frozenset(m.called) == cset
                ):
                    if self._log_level >= _OPS:
                        self._log(
                            _OPS,
                            f"[queue:skipped] Duplicate detected for [{mtype}] "
                            + " ".join(called),
                        )
                    return _EXECUTED
        self._n += 1
        mut = Mutation(mtype, called, args, False, False, self._p + self._n)
        q.append(mut)
        if self._log_level >= _OPS:
            self._log(_OPS, f"[queue:{mtype}] {' '.join(called)}{self._log_args(args)}")
            label = "item" if len(q) == 1 else "items"
            self._log(_OPS, f"[postpone] queue running ({len(q)} {label})")
        if self._tracers:
            for t in self._tracers:
                t.mutation_queued(_api(self), mut)
        return _QUEUED

    def _prepend(self, mut: Mutation) -> None:
        self._queue.insert(0, mut)
        if self._log_level >= _OPS:
            self._log(
                _OPS,
                f"[prepend:{mut.type}] {' '.join(mut.called)}{self._log_args(mut.args)}",
            )

    def _process(self, own: Mutation) -> Result:
        """Run `own` and then the queue, inline; return `own`'s result."""
        self._processing = True
        q = self._queue
        try:
            result = self._run(own)
            if self._watch_queue:
                self._subs_after_mutation()
            if q:
                self._run_queue()
        except BaseException:
            q.clear()
            self._n = 0
            self._lazy = None
            raise
        finally:
            self._processing = False
            self._tx = None
        if self._disposing:
            self._finish_dispose()
            return result
        if self._tracers:
            for t in self._tracers:
                t.queue_end(_api(self))
        if self._watch_queue:
            self._subs_queue_end()
        return result

    def _check(self, mtype: MutationType, called: tuple[str, ...], args: Any) -> Result:
        if self._disposing:
            return _CANCELED
        args = self._check_args(args)
        if self._processing:
            return _QUEUED
        return self._process(Mutation(mtype, called, args, is_check=True))

    # --------------------------------------------------------- transition

    def _plan(
        self, mtype: MutationType, called: tuple[str, ...], auto: bool, is_check: bool
    ) -> Plan:
        mkey = self._mkey
        key = (mtype, called, mkey, auto, is_check)
        plan = self._plans.get(key)
        if plan is None:
            active = self._active(mkey.mask)
            plan = resolve(self._cs, mtype, called, active, auto, is_check)
            self._cache_plan(key, plan)
        return plan

    def _cache_plan(self, key: tuple[Any, ...], plan: Plan) -> None:
        # the cache is bounded by count and by the estimated bytes of its
        # plans (a plan grows with the active and target states)
        cs = self._cs
        size = plan_bytes(plan)
        if (
            len(self._plans) >= _PLAN_CACHE_MAX
            or cs.plans_bytes + size > PLAN_CACHE_BYTES
        ):
            self._plans.clear()
            if self._hp_cache:
                self._hp_cache.clear()
            cs.plans_bytes = 0
        self._plans[key] = plan
        cs.plans_bytes += size

    def _active(self, mask: int) -> tuple[str, ...]:
        active = self._active_cache.get(mask)
        if active is None:
            names = self._cs.names
            active = tuple(n for i, n in enumerate(names) if mask >> i & 1)
            if len(self._active_cache) >= _PLAN_CACHE_MAX:
                self._active_cache.clear()
            self._active_cache[mask] = active
        return active

    def _handler_plan(self, plan: Plan) -> _HandlerPlan | None:
        cache = self._hp_cache
        if cache is None:
            return None
        hp: _HandlerPlan | None = cache.get(plan, _MISSING)
        if hp is _MISSING:
            everything = self._log_level >= _EVERYTHING
            hp = self._build_handler_plan(plan, everything)
            if len(cache) >= _PLAN_CACHE_MAX:
                cache.clear()
            cache[plan] = hp
        return hp

    def _methods(self, name: str) -> Methods:
        return tuple((b, b.methods[name]) for b in self._bindings if name in b.methods)

    def _build_handler_plan(self, plan: Plan, everything: bool) -> _HandlerPlan | None:
        neg: list[NegEntry] = []
        final: list[FinalEntry] = []
        m = self._methods

        def add_neg(kind: int, x: str, y: str, name: str) -> None:
            methods = m(name)
            if methods or everything:
                neg.append((kind, x, y, name, methods))

        for s in plan.exits:
            add_neg(_EXIT, s, "", s + "Exit")
        for s in plan.enters:
            add_neg(_ENTER, s, "", s + "Enter")
        before_set = plan.before_set
        if plan.mtype is not _REMOVE:
            for s in plan.target:
                if s in before_set:
                    add_neg(_SELF, s, s, s + s)
        if everything:
            for x in plan.before:
                for y in plan.target:
                    if x != y:
                        add_neg(_CROSS, x, y, x + y)
        else:
            # only the pairs some binding has a method for (in the order
            # of the full before x target walk above)
            target_set = frozenset(plan.target)
            pairs = {
                p
                for b in self._bindings
                for p in b.pairs
                if p[0] in before_set and p[1] in target_set
            }
            if pairs:
                bpos = {s: i for i, s in enumerate(plan.before)}
                tpos = {s: i for i, s in enumerate(plan.target)}
                for x, y in sorted(pairs, key=lambda p: (bpos[p[0]], tpos[p[1]])):
                    add_neg(_CROSS, x, y, x + y)
        add_neg(_ANY_ENTER, "", "", ANY_ENTER)

        def add_final(kind: int, x: str, name: str) -> None:
            methods = m(name)
            if methods or everything:
                final.append((kind, x, name, methods))

        for s in plan.exits:
            add_final(_END, s, s + "End")
        for s in plan.enters:
            add_final(_STATE, s, s + "State")
        add_final(_ANY_STATE, "", ANY_STATE)
        if not neg and not final:
            return None
        calls = [(e[3], e[4]) for e in neg] + [(e[2], e[3]) for e in final]
        sync = not any(n in b.async_names for n, methods in calls for b, _ in methods)
        return _HandlerPlan(tuple(neg), tuple(final), sync and self._direct())

    def _call(
        self,
        tx: Transition,
        binding: Binding,
        name: str,
        fn: Callable[..., Any],
        kind: int,
        state: str,
    ) -> Any:
        level = self._log_level
        if level >= _OPS:
            self._log(_OPS, f"[handler:{binding.number}] {name}")
        tracers = self._tx_tracers
        if tracers:
            for t in tracers:
                t.handler_start(tx, binding.id, name)
        if kind >= _END and kind != _ANY_STATE:
            event = Event(name, _api(self), tx, state, self._ticks[state])
        else:
            event = Event(name, _api(self), tx)
        try:
            timeout = self._handler_timeout
            if name in binding.async_names:
                self._start_async(fn, event, kind, state)
                ret = None
            elif timeout is None:
                ret = fn(event)
            else:
                start = _time.perf_counter()
                ret = fn(event)
                took = _time.perf_counter() - start
                if took > timeout:
                    raise HandlerTimeoutError(
                        f"handler {name} took {took:.3f}s, "
                        f"over the {timeout}s handler_timeout"
                    )
        except Exception as exc:
            if tracers:
                for t in tracers:
                    t.handler_end(tx, binding.id, name)
            raise _Panic(exc, kind, state, binding, name) from exc
        if tracers:
            for t in tracers:
                t.handler_end(tx, binding.id, name)
        if level >= _EVERYTHING:
            self._log(_EVERYTHING, f"[handler:end:{binding.number}] {name}")
        return ret

    # ------------------------------------------------ runtime-layer hooks

    def _subs_after_tx(
        self, args: dict[str, Any], plan: Plan, enters_done: int = -1
    ) -> None:
        """Process subscriptions after an accepted transition (runtime).

        `enters_done` counts the entered states whose handlers ran (all of
        them when -1).
        """

    def _subs_after_mutation(self) -> None:
        """Process queue-tick subscriptions after a mutation ran (runtime)."""

    def _subs_queue_end(self) -> None:
        """Process queue-end subscriptions (runtime)."""

    def _foreign_mutate(
        self, mtype: MutationType, called: tuple[str, ...], args: dict[str, Any]
    ) -> Result:
        """A mutation from a thread other than the loop's (runtime)."""
        raise RuntimeError("mutation from a foreign thread")

    def _start_async(
        self, fn: Callable[..., Any], event: Event, kind: int, state: str
    ) -> None:
        raise RuntimeError(
            f"async handler {event.name} needs the machine running: "
            "use `async with machine:`"
        )

    def _run(self, mut: Mutation) -> Result:
        """Run one queued (or prepended) mutation."""
        return self._transition(
            mut.type, mut.called, mut.args, mut.auto, mut.is_check, mut
        )

    def _transition(
        self,
        mtype: MutationType,
        called: tuple[str, ...],
        args: dict[str, Any],
        auto: bool,
        is_check: bool,
        mut: Mutation | None,
    ) -> Result:
        """Run one transition (docs/design/semantics.md §5.2).

        `mut` is None for a mutation that runs as soon as it is made (no
        tracer, not queued): its `Mutation`, with the queue tick P, is then
        built only if someone asks the `Transition` for it.
        """
        plan = self._plans.get((mtype, called, self._mkey, auto, is_check))
        if plan is None:
            plan = self._plan(mtype, called, auto, is_check)
        hp_cache = self._hp_cache
        if hp_cache is None or not plan.accepted:
            hp = None
        else:
            hp = hp_cache.get(plan, _MISSING)
            if hp is _MISSING:
                hp = self._handler_plan(plan)
            # `direct` implies no transition tracer (CoreMachine._direct)
            if hp is not None and hp.direct and not auto:
                return self._transition_direct(plan, hp, args, mut, is_check)
        tracers = self._tx_tracers
        tx: Transition | None = None
        t0 = 0.0  # a recorder's start time (no Transition built)
        if hp is not None or tracers:
            if hp is None and not self._tx_need:
                # recorders only: _record at the end, with the first plan
                plan0 = plan
                t0 = self._rec_t0 = _now()
                self._tx = None
            else:
                me: Any = self  # the full Machine, as in _api, without a call
                tx = Transition(me, mut, plan, args, self._p)
                self._tx = tx
        elif self._tx is not None:
            self._tx = None  # log sinks must not see the previous transition
        level = self._log_level
        if level >= _OPS:
            # logged once the transition exists, so a sink reading
            # `mach.transition` sees this one
            log_args = self._log_args(args)
            if auto:
                if level >= _DECISIONS:
                    self._log(
                        _DECISIONS, f"[{mtype}:auto] {' '.join(called)}{log_args}"
                    )
            else:
                self._log(_OPS, f"[{mtype}] {' '.join(called)}{log_args}")
            for lvl, text in plan.logs:
                if lvl <= level:
                    self._log(lvl, text)
        if tx is not None and tracers:
            for t in tracers:
                t.transition_init(tx)
        if not plan.accepted:
            if tx is not None:
                self._end_tx(tx)
            elif t0:
                self._record(plan0, plan, args, mut, False, t0)
            return _CANCELED
        if tx is not None and tracers:
            for t in tracers:
                t.transition_start(tx)

        # negotiation
        if hp is not None and hp.neg:
            assert tx is not None
            try:
                res = self._negotiate(tx, auto, plan, hp)
            except _Panic as p:
                return self._panic(tx, plan, p)
            if res is None:
                return _CANCELED
            plan = res
            if self._disposing:
                tx.is_accepted = False
                self._end_tx(tx)
                return _CANCELED
        elif auto:
            plan = self._re_resolve(plan, plan.target)
            if tx is not None:
                tx._plan = plan
                tx._target = None

        if is_check:
            if tx is not None:
                self._end_tx(tx)
            elif t0:
                self._record(plan0, plan, args, mut, True, t0)
            return _EXECUTED

        # apply
        changes = plan.changes
        if changes:
            ticks = self._ticks
            on = self._on
            for name, delta, flag in plan.apply:
                ticks[name] += delta
                on[name] = flag
            self._mkey = plan.after_key
            if level >= _CHANGES:
                self._log_state_line(auto, args, plan)
            if self._ctxs:
                self._expire_ctxs(changes)
        # final handlers
        if hp is not None:
            hp2 = self._handler_plan(plan) if auto else hp
            if hp2 is not None and hp2.final:
                assert tx is not None
                try:
                    self._finals(tx, hp2)
                except _Panic as p:
                    return self._panic(tx, plan, p)
                if self._disposing:
                    tx.is_accepted = False
                    self._end_tx(tx)
                    return _CANCELED

        if self._watch:
            self._subs_after_tx(args, plan)
        if changes and self._has_auto and not auto:
            self._queue_auto(mtype, called)

        if tx is not None:
            self._end_tx(tx)
        elif t0:  # self._record, inlined
            self._rec_t0 = 0.0
            fast = self._rec_fast
            if (
                fast is not None
                and plan is plan0
                and not args
                and (mut is None or not mut.auto)
                and (rid := fast[0](plan)) is not None
                and len(fast[2]) < fast[3]
            ):
                # a plan its recorder described: (plan id, start time, queue
                # tick) to the recorder's buffer (docs/design/architecture.md,
                # "Recorders")
                fast[1]((rid, t0, self._p if mut is None else mut.queue_tick))
            else:
                for rec in self._recs:
                    rec(self, plan0, plan, args, mut, True, t0)
        if mtype is _REMOVE:
            ticks = self._ticks
            for s in called:
                if ticks[s] & 1:
                    return _CANCELED
        return _EXECUTED

    def _transition_direct(
        self,
        plan: Plan,
        hp: _HandlerPlan,
        args: dict[str, Any],
        mut: Mutation | None,
        is_check: bool,
    ) -> Result:
        """`_transition` for an accepted, non-Auto plan whose handlers are
        called directly (docs/design/architecture.md, "Direct handler
        calls"): no tracer, no log line above CHANGES, no timeout, no async
        handler. The `Transition` is built only if someone asks for it, and
        one Event serves every handler that did not keep it."""
        self._lazy = (plan, args, mut)
        self._lazy_applied = False
        self._tx = None
        # negotiation
        calls = hp.direct_neg
        if calls:
            ev = self._spare or self._new_spare()
            ev._tx = None  # it may hold the previous transition
            ev._state = ""
            ev._ctx = None
            for fn, name, kind, x, binding in calls:
                ev.name = name
                try:
                    ret = fn(ev)
                except Exception as exc:
                    panic = _Panic(exc, kind, x, binding, name)
                    return self._direct_panic(ev, plan, panic)
                if _refs(ev) > 3:  # the handler kept its Event (3: ev, _spare, arg)
                    ev = self._keep_event(ev)
                if self._disposing:
                    self._end_lazy(False)
                    return _CANCELED
                if ret is False:
                    if self._log_level >= _OPS or self._tx is not None:
                        self._cancel_neg(self._lazy_tx(), name, kind == _SELF)
                    self._lazy = None
                    return _CANCELED
        if is_check:
            self._end_lazy(True)
            return _EXECUTED

        # apply
        changes = plan.changes
        ticks = self._ticks
        if changes:
            on = self._on
            for name, delta, flag in plan.apply:
                ticks[name] += delta
                on[name] = flag
            self._mkey = plan.after_key
            self._lazy_applied = True
            if self._log_level >= _CHANGES:
                self._log_state_line(False, args, plan)
            if self._ctxs:
                self._expire_ctxs(changes)
        # final handlers
        calls = hp.direct_final
        if calls:
            ev = self._spare or self._new_spare()
            ev._tx = None
            for fn, name, kind, x, binding in calls:
                ev.name = name
                ev._state = x
                ev._tick = ticks[x] if x else 0
                ev._ctx = None
                try:
                    fn(ev)
                except Exception as exc:
                    panic = _Panic(exc, kind, x, binding, name)
                    return self._direct_panic(ev, plan, panic)
                if _refs(ev) > 3:  # the handler kept its Event
                    ev = self._keep_event(ev)
                if self._disposing:
                    self._end_lazy(False)
                    return _CANCELED

        if self._watch:
            self._subs_after_tx(args, plan)
        if changes and self._has_auto:
            self._queue_auto(plan.mtype, plan.called)
        if self._tx is None:
            self._lazy = None
        else:
            self._end_lazy(True)
        if plan.mtype is _REMOVE:
            for s in plan.called:
                if ticks[s] & 1:
                    return _CANCELED
        return _EXECUTED

    def _queue_auto(self, mtype: MutationType, called: tuple[str, ...]) -> None:
        """After a non-Auto transition changed states: queue the Auto states
        that can activate, first in the queue (docs/design/semantics.md §6.3)."""
        if self._disposing or (
            mtype is _ADD and len(called) == 1 and called[0] in _HEALTH_STATES
        ):
            return
        cands = self._auto_candidates()
        if cands:
            if self._log_level >= _OPS:
                self._log(_OPS, "[auto] " + " ".join(cands))
            self._prepend(Mutation(_ADD, cands, {}, auto=True))

    def _end_tx(self, tx: Transition) -> None:
        tx.is_completed = True
        if self._tx_tracers:
            for t in self._tx_tracers:
                t.transition_end(tx)

    def _record(
        self,
        plan0: Plan,
        plan: Plan,
        args: dict[str, Any],
        mut: Mutation | None,
        ok: bool,
        t0: float,
    ) -> None:
        """A transition without a Transition ended: call the recorders."""
        self._rec_t0 = 0.0
        for rec in self._recs:
            rec(self, plan0, plan, args, mut, ok, t0)

    def _log_state_line(self, auto: bool, args: dict[str, Any], plan: Plan) -> None:
        index = self._index
        parts = [f"+{s}" for s in plan.enters]
        parts += [f"-{s}" for s in sorted(plan.exits, key=index.__getitem__)]
        if self._log_level >= _EVERYTHING:
            entered = set(plan.enters)
            parts += [s for s in plan.target if s not in entered]
        tag = "[auto_]" if auto else "[state]"
        self._log(_CHANGES, f"{tag} {' '.join(parts)}{self._log_args(args)}")

    def _re_resolve(self, plan: Plan, target: Sequence[str]) -> Plan:
        key = ("re", plan.called, plan.before, tuple(target))
        out = self._plans.get(key)
        if out is None:
            out = re_resolve(self._cs, plan, target)
            self._cache_plan(key, out)
        return out

    def _auto_candidates(self) -> tuple[str, ...]:
        mkey = self._mkey
        cached = self._auto_cache.get(mkey)
        if cached is None:
            cs = self._cs
            active = self._active(mkey.mask)
            out = []
            logs = []
            for s in cs.auto:
                if self._ticks[s] & 1:
                    continue
                blocker = next((a for a in active if s in cs.remove_sets[a]), None)
                if blocker is not None:
                    logs.append(f"[auto:rel:remove] {s} by {blocker}")
                    continue
                out.append(s)
            cached = (tuple(out), tuple(logs))
            if len(self._auto_cache) >= _PLAN_CACHE_MAX:
                self._auto_cache.clear()
            self._auto_cache[mkey] = cached
        if cached[1] and self._log_level >= _EVERYTHING:
            for text in cached[1]:
                self._log(_EVERYTHING, text)
        return cached[0]

    def _negotiate(
        self, tx: Transition, auto: bool, plan: Plan, hp: _HandlerPlan
    ) -> Plan | None:
        """Run negotiation handlers; return the (possibly re-resolved) plan,
        or None when canceled."""
        cs = self._cs
        target = tx.target_states
        dropped: set[str] = set()
        skip_self: frozenset[str] = frozenset()
        skip_cross: frozenset[str] = frozenset()
        phase = -1
        for kind, x, y, name, methods in hp.neg:
            if auto and kind != phase:
                if kind == _SELF:
                    skip_self = frozenset(dropped)
                elif kind == _CROSS:
                    skip_cross = frozenset(dropped)
                elif kind == _ANY_ENTER and not target:
                    return self._cancel_neg(tx, "", False)
                phase = kind
            if auto and dropped:
                if kind == _SELF and x in skip_self:
                    continue
                if kind == _CROSS and y in skip_cross:
                    continue
            if self._log_level >= _EVERYTHING:
                for b in self._bindings:
                    self._log(_EVERYTHING, f"[handle:{b.id}] {name}")
            for binding, fn in methods:
                ret = self._call(tx, binding, name, fn, kind, x)
                if self._disposing:
                    return plan
                if ret is False:
                    drop = ""
                    if auto:
                        if (
                            kind in (_ENTER, _SELF)
                            and x in cs.states
                            and cs.states[x].auto
                        ):
                            drop = x
                        elif kind == _CROSS and cs.states[y].auto:
                            drop = y
                    if not drop:
                        return self._cancel_neg(tx, name, kind == _SELF)
                    if drop in target:
                        target.remove(drop)
                    dropped.add(drop)
                    break
        if auto:
            if not target:
                return self._cancel_neg(tx, "", False)
            plan = self._re_resolve(plan, target)
            tx._plan = plan
            tx._target = None
        return plan

    def _cancel_neg(self, tx: Transition, name: str, is_self: bool) -> Plan | None:
        tx.is_accepted = False
        if self._log_level >= _OPS:
            tag = "[cancel:self]" if is_self else "[cancel]"
            by = f" by {name}" if name else ""
            self._log(_OPS, f"{tag} ({' '.join(tx.target_states)}){by}")
        self._end_tx(tx)
        return None

    # Direct handler calls (docs/design/architecture.md): the rare turns of
    # `_transition_direct`'s two handler loops.

    def _new_spare(self) -> Event:
        me: Any = self
        ev = self._spare = Event("", me, None)
        return ev

    def _keep_event(self, ev: Event) -> Event:
        """A handler kept `ev`: pin its Transition; a fresh spare serves on."""
        ev._tx = self._lazy_tx()
        return self._new_spare()

    def _direct_panic(self, ev: Event, plan: Plan, panic: _Panic) -> Result:
        """A directly called handler raised."""
        ev._tx = self._lazy_tx()  # the handler may have kept it
        self._spare = None
        return self._panic(self._unlazy(), plan, panic)

    def _unlazy(self) -> Transition:
        """The direct transition's Transition, no longer lazy (a panic)."""
        tx = self._lazy_tx()
        self._lazy = None
        return tx

    def _end_lazy(self, accepted: bool) -> None:
        tx = self._tx
        if tx is not None:
            if not accepted:
                tx.is_accepted = False
            tx.is_completed = True
        self._lazy = None

    def _direct(self) -> bool:
        """Whether sync handlers can be called without `_call`: no tracer,
        log line or timeout to look after. What it reads calls
        `_handlers_changed`, which drops the handler plans built with it."""
        return (
            not self._tx_tracers
            and self._log_level < _OPS
            and self._handler_timeout is None
        )

    def _finals(self, tx: Transition, hp: _HandlerPlan) -> None:
        everything = self._log_level >= _EVERYTHING
        for kind, x, name, methods in hp.final:
            if everything:
                for b in self._bindings:
                    self._log(_EVERYTHING, f"[handle:{b.id}] {name}")
            for binding, fn in methods:
                self._call(tx, binding, name, fn, kind, x)
                if self._disposing:
                    return

    def _panic(self, tx: Transition, plan: Plan, p: _Panic) -> Result:
        exc = p.exc
        mut = tx.mutation
        if not self.panic_to_exception:
            tx.is_accepted = False
            self._end_tx(tx)
            raise exc
        tx.is_accepted = False
        nested = EXCEPTION in mut.called
        if not nested:
            # docs/design/semantics.md §8.3 rule 1 comes first: tracers see the error at transition_end
            self.err = exc
        level = self._log_level
        if level >= _OPS:
            self._log(_OPS, f"[cancel] ({' '.join(tx.target_states)}) by recover")
        if p.kind == _STATE:
            finals = (*plan.exits, *plan.enters)
            idx = finals.index(p.state)
            ticks = self._ticks
            index = self._index
            undone = []
            mask = self._mkey.mask
            for s in finals[idx:]:
                if ticks[s] & 1:
                    ticks[s] += 1
                    self._on[s] = False
                    mask &= ~(1 << index[s])
                    undone.append((s, 1))
            self._mkey = self._cs.mask_key(mask)
            if level >= _OPS:
                active = " ".join(self._active(mask))
                self._log(_OPS, f"[recover] partial final states as ({active})")
            if undone and self._ctxs:
                self._expire_ctxs(undone)
        if p.kind >= _END:
            tx._clock_after = dict(self._ticks)
        if p.kind >= _END and self._watch:
            done = plan.enters.index(p.state) if p.kind == _STATE else len(plan.enters)
            self._subs_after_tx(mut.args, plan, done)
        self._end_tx(tx)
        fn = p.binding.methods.get(p.name)
        qualname = getattr(fn, "__qualname__", p.name)
        log_handler_error(self._id, f"handler {qualname}", exc)
        if self.on_error is not None:
            self.on_error(self, exc)
        if nested:
            # the error of an error handler: reported (log, on_error), but no
            # Exception is added for it, which could loop (§8.3 rule 6)
            return _CANCELED
        trace = f"in handler {qualname} (binding {p.binding.id})\n" + "".join(
            traceback.format_exception(exc)
        )
        args = {
            "err": exc,
            "err_trace": trace,
            "panic": {
                "called_states": list(mut.called),
                "states_before": list(plan.before),
                "transition": tx,
            },
        }
        self._prepend(Mutation(_ADD, (EXCEPTION,), args))
        return _CANCELED

    # ------------------------------------------------------------- checks

    def is_(self, states: Iterable[str]) -> bool:
        """True if all `states` are active."""
        if self._disposed:
            return False
        ticks = self._ticks
        return all(ticks[s] & 1 for s in self._parse(states))

    def is1(self, state: str) -> bool:
        """True if `state` is active."""
        try:
            return self._on[state]
        except KeyError:
            raise self._bad_name(state) from None

    def __contains__(self, state: str) -> bool:
        return self.is1(state)

    def not_(self, states: Iterable[str]) -> bool:
        """True if none of `states` is active."""
        if self._disposed:
            return False
        ticks = self._ticks
        return not any(ticks[s] & 1 for s in self._parse(states))

    def not1(self, state: str) -> bool:
        """True if `state` is inactive."""
        if self._disposed:
            return False
        return not self.is1(state)

    def any(self, *state_lists: Iterable[str]) -> bool:
        """True if all states of at least one of the lists are active."""
        if self._disposed:
            return False
        parsed = [self._parse(s) for s in state_lists]
        ticks = self._ticks
        return any(all(ticks[s] & 1 for s in lst) for lst in parsed)

    def any1(self, *states: str) -> bool:
        """True if at least one of `states` is active."""
        if self._disposed:
            return False
        ticks = self._ticks
        return any(ticks[s] & 1 for s in self._parse(states))

    def switch(self, *groups: Iterable[str]) -> str:
        """The first active state of `groups`, in order; `""` if none is.

        Handy for `match` over a group of exclusive states (Go's `Switch`):
        `match mach.switch(Groups.Playing): case "Playing": ...`.
        """
        if self._disposed:
            return ""
        parsed = [self._parse(g) for g in groups]
        ticks = self._ticks
        for group in parsed:
            for s in group:
                if ticks[s] & 1:
                    return s
        return ""

    def has(self, states: Iterable[str]) -> bool:
        """True if the schema has all `states`."""
        if self._disposed:
            return False
        if isinstance(states, str):
            raise TypeError(f"has takes a list of names, got the string {states!r}")
        return all(isinstance(s, str) and s in self._index for s in states)

    def has1(self, state: str) -> bool:
        """True if the schema has `state`."""
        if self._disposed:
            return False
        return isinstance(state, str) and state in self._index

    @property
    def active_states(self) -> list[str]:
        """Active states in state order."""
        if self._disposed:
            return []
        return list(self._active(self._mkey.mask))

    def tick(self, state: str) -> int:
        """The tick of `state`: odd when active, even when inactive."""
        try:
            return self._ticks[state]
        except KeyError:
            raise self._bad_name(state) from None

    def time(self, states: Iterable[str] | None = None) -> Time:
        """Ticks of `states` (default: all, in state order)."""
        if self._disposed:
            return ()
        ticks = self._ticks
        if states is None:
            return tuple(ticks.values())
        return tuple(ticks[s] for s in self._parse_keep_dups(states))

    def _parse_keep_dups(self, states: Iterable[str]) -> list[str]:
        if isinstance(states, str):
            raise TypeError(
                f"expected a list of state names, got the string {states!r}"
            )
        out = list(states)
        for s in out:
            if s not in self._index:
                raise self._bad_name(s)
        return out

    def clock(self, states: Iterable[str] | None = None) -> Clock:
        """Ticks of `states` (default: all) as a dict."""
        if self._disposed:
            return {}
        ticks = self._ticks
        if states is None:
            return dict(ticks)
        return {s: ticks[s] for s in self._parse(states)}

    def is_time(self, time: Sequence[int], states: Iterable[str] | None = None) -> bool:
        """True if the ticks of `states` equal `time`, index by index."""
        if self._disposed:
            return False
        names = self._cs.names if states is None else self._parse_keep_dups(states)
        ticks = self._ticks
        if len(time) > len(names):
            return False
        return all(ticks[names[i]] == t for i, t in enumerate(time))

    def is_clock(self, clock: Mapping[str, int]) -> bool:
        """True if every tick in `clock` equals the current one."""
        if self._disposed:
            return False
        ticks = self._ticks
        self._parse(list(clock))
        return all(ticks[s] == t for s, t in clock.items())

    # -------------------------------------------------------------- queue

    @property
    def queue_tick(self) -> int:
        """Tick of the last appended mutation (P + N)."""
        return self._p + self._n

    @property
    def queue_tick_processed(self) -> int:
        """Tick of the last mutation taken from the queue (P)."""
        return self._p

    @property
    def queue_len(self) -> int:
        """Mutations waiting in the queue."""
        return 0 if self._disposed else len(self._queue)

    @property
    def queue(self) -> list[Mutation]:
        """A copy of the waiting mutations."""
        return list(self._queue)

    def is_queued(
        self,
        mtype: MutationType,
        states: Iterable[str],
        *,
        without_args_only: bool = False,
        strict: bool = False,
        min_tick: int = 0,
        is_check: bool = False,
        position: Position = Position.ANY,
    ) -> tuple[bool, int, int]:
        """Find a waiting mutation: (found, index in the queue, queue tick)."""
        wanted = self._parse(states)
        items = list(enumerate(self._queue))
        if position is Position.FIRST:
            items = items[:1]
        elif position is Position.LAST:
            items = items[-1:]
        for i, m in items:
            if m.type is not mtype or m.is_check != is_check:
                continue
            if without_args_only and m.args:
                continue
            if strict and len(m.called) != len(wanted):
                continue
            if min_tick and m.queue_tick < min_tick:
                continue
            if all(s in m.called for s in wanted):
                return True, i, m.queue_tick
        return False, -1, 0

    def will_be(self, states: Iterable[str]) -> bool:
        """True if a waiting add will activate all `states`."""
        wanted = self._parse(states)
        return any(
            m.type is _ADD and not m.is_check and all(s in m.called for s in wanted)
            for m in self._queue
        )

    def will_be1(self, state: str) -> bool:
        """True if a waiting add will activate `state`."""
        return self.will_be((state,))

    def will_be_removed(self, states: Iterable[str]) -> bool:
        """True if a waiting remove will deactivate all `states`."""
        wanted = self._parse(states)
        return any(
            m.type is _REMOVE and not m.is_check and all(s in m.called for s in wanted)
            for m in self._queue
        )

    def will_be_removed1(self, state: str) -> bool:
        """True if a waiting remove will deactivate `state`."""
        return self.will_be_removed((state,))

    # --------------------------------------------------------------- eval

    def eval(
        self, fn: Callable[[], object], *, source: str = "", ctx: CtxBase | None = None
    ) -> bool:
        """Run `fn` between transitions; mutations it makes are queued.

        Returns False when it could not run: disposed machine, expired `ctx`,
        or a call from inside a handler (which also adds an Exception).
        """
        if not callable(fn):
            raise TypeError(f"eval takes a callable, got {type(fn).__name__}")
        if self._disposing or (ctx is not None and ctx.expired):
            return False
        if self._in_eval:
            return False
        if self._processing:
            where = f" from {source}" if source else ""
            self.add_err(NestedEvalError(f"eval called directly in handler{where}"))
            return False
        self._in_eval = True
        self._processing = True
        try:
            fn()
        finally:
            self._in_eval = False
            self._processing = False
            self._drain()
        return True

    # -------------------------------------------------------------- handlers

    def bind_handlers(self, obj: object, id: str | None = None) -> str:
        """Bind the handler methods of `obj`; return the binding id."""
        if id is not None and not isinstance(id, str):
            raise TypeError(f"binding id must be a str, got {type(id).__name__}")
        binding_id = id or new_binding_id()
        if any(b.id == binding_id for b in self._bindings):
            raise ValueError(f"binding id {binding_id!r} is already bound")
        methods, async_names = scan_handlers(obj, self._index, self._id)
        binding = Binding(self._bind_count, binding_id, obj, methods, async_names)
        binding.pairs = handler_pairs(methods, self._index)
        self._bind_count += 1
        self._bindings = (*self._bindings, binding)
        self._bind_gen += 1
        self._handlers_changed()
        if self._log_level >= _OPS:
            self._log(_OPS, f"[handlers] bind {binding.number}:{binding_id}")
        first = not self._ever_bound
        self._ever_bound = True
        if first and self.is_err() and not self._disposing:
            args: dict[str, Any] = {"err": self.err, "err_trace": ""}
            self._mutate(_ADD, (EXCEPTION,), args)
        return binding_id

    def detach_handlers(self, binding_id: str) -> None:
        """Unbind the handler object bound under `binding_id`."""
        for i, b in enumerate(self._bindings):
            if b.id == binding_id:
                self._bindings = self._bindings[:i] + self._bindings[i + 1 :]
                self._bind_gen += 1
                self._handlers_changed()
                if self._log_level >= _OPS:
                    self._log(_OPS, f"[handlers] detach {b.number}:{binding_id}")
                return
        raise ValueError(f"no handlers bound as {binding_id!r}")

    @property
    def binding_ids(self) -> list[str]:
        """Ids of the bound handler objects, in binding order."""
        return [b.id for b in self._bindings]

    # --------------------------------------------------------------- tracers

    def bind_tracer(self, tracer: Tracer) -> None:
        """Attach a tracer; it sees every transition from now on."""
        if not isinstance(tracer, Tracer):
            raise TypeError(f"expected an am.Tracer, got {type(tracer).__name__}")
        if tracer in self._tracers:
            raise ValueError("this tracer is already bound")
        self._tracers = (*self._tracers, tracer)
        self._tracers_changed()
        tracer.machine_init(_api(self))

    def detach_tracer(self, tracer: Tracer) -> None:
        """Detach a bound tracer."""
        if tracer not in self._tracers:
            raise ValueError("this tracer is not bound")
        self._tracers = tuple(t for t in self._tracers if t is not tracer)
        self._tracers_changed()

    def _tracers_changed(self) -> None:
        tracers = self._tracers
        self._tx_tracers = tuple(t for t in tracers if _overrides(t, _TX_HOOKS))
        self._tx_need = any(t._record is None for t in self._tx_tracers)
        self._recs = tuple(t._record for t in tracers if t._record is not None)
        self._rec_fast = None
        self._q_tracers = tuple(t for t in tracers if _overrides(t, _Q_HOOKS))
        self._handlers_changed()

    @property
    def tracers(self) -> tuple[Tracer, ...]:
        """The bound tracers."""
        return self._tracers

    # ----------------------------------------------------------- breakpoints

    def add_breakpoint(
        self, added: Iterable[str], removed: Iterable[str], strict: bool = False
    ) -> None:
        """Call `breakpoint()` when an add/remove of these states is made."""
        bp = _Breakpoint(
            tuple(self._parse_keep_dups(added or ())),
            tuple(self._parse_keep_dups(removed or ())),
            strict,
        )
        self._breakpoints = (*self._breakpoints, bp)

    def _check_breakpoints(self, mtype: MutationType, called: tuple[str, ...]) -> None:
        added = called if mtype is _ADD else ()
        removed = called if mtype is _REMOVE else ()
        ticks = self._ticks
        for bp in self._breakpoints:
            if added and added != bp.added:
                continue
            if removed and removed != bp.removed:
                continue
            if bp.strict:
                if bp.added and all(ticks[s] & 1 for s in bp.added):
                    continue
                if bp.removed and not any(ticks[s] & 1 for s in bp.removed):
                    continue
            if self._log_level >= _CHANGES:
                text = "[breakpoint] Machine.breakpoint"
                if self.log_stack_trace:
                    text += "\n" + "".join(traceback.format_stack()[:-2])
                self._log(_CHANGES, text)
            self.breakpoint(list(added), list(removed))

    def breakpoint(self, added: list[str], removed: list[str]) -> None:
        """Called when a breakpoint matches; override it, or set a debugger
        breakpoint here."""

    # ------------------------------------------------------------- contexts

    _ctx_class: type[CtxBase] = CtxBase

    def new_state_ctx(self, state: str) -> CtxBase:
        """A context bound to `state`'s current tick (docs/design/semantics.md §2.3)."""
        if self._disposed:
            return self._ctx_class(self, state, 0, True)
        self._check1(state)
        ctxs = self._ctxs
        if ctxs is None:
            ctxs = self._ctxs = {}
        ctx: CtxBase | None = ctxs.get(state)
        if ctx is not None:
            return ctx
        tick = self._ticks[state]
        ctx = self._ctx_class(self, state, tick, False)
        ctxs[state] = ctx
        if self._log_level >= _OPS:
            self._log(_OPS, f"[ctx:new] {state}")
        return ctx

    def _apply_remote_ticks(
        self, ticks: Iterable[tuple[int, int]]
    ) -> tuple[tuple[str, int], ...]:
        """Set ticks pushed by another machine: `(state index, tick)` pairs.

        Internal to `asyncmachine.rpc` (the network machine mirrors a remote
        clock): no relations, handlers, queue or tracers run; contexts of
        changed states expire and waiters wake as after a transition.
        Returns the changed `(state, tick)` pairs. The caller validates the
        indexes and ticks.
        """
        if self._disposing:
            return ()
        if self._processing:
            raise RuntimeError("a remote clock cannot be applied during a transition")
        names = self._cs.names
        own = self._ticks
        on = self._on
        mask = self._mkey.mask
        changes: list[tuple[str, int]] = []
        for i, tick in ticks:
            name = names[i]
            if own[name] != tick:
                own[name] = tick
                on[name] = flag = bool(tick & 1)
                mask = mask | (1 << i) if flag else mask & ~(1 << i)
                changes.append((name, tick))
        if not changes:
            return ()
        self._mkey = self._cs.mask_key(mask)
        if self._log_level >= _CHANGES:
            parts = [f"{'+' if t & 1 else '-'}{s}" for s, t in changes]
            self._log(_CHANGES, f"[remote] {' '.join(parts)}")
        out = tuple(changes)
        if self._ctxs:
            self._expire_ctxs(out)
        if self._watch:
            plan = Plan()
            plan.changes = out
            plan.enters = tuple(s for s, t in out if t & 1)
            self._subs_after_tx({}, plan, 0)
        return out

    def _expire_ctxs(self, changes: Iterable[tuple[str, int]]) -> None:
        ctxs = self._ctxs
        if ctxs is None:
            return
        for name, _ in changes:
            ctx = ctxs.pop(name, None)
            if ctx is not None:
                if self._log_level >= _OPS:
                    self._log(_OPS, f"[ctx:match] {name}")
                ctx._expire()

    # -------------------------------------------------------------- dispose

    def on_dispose(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Call `fn` when the machine is disposed (at once if it already is).

        Returns a function that unregisters `fn`.
        """
        if self._disposed:
            fn()
            return _noop
        if self._on_dispose is None:
            self._on_dispose = []
        self._on_dispose.append(fn)

        def unregister() -> None:
            fns = self._on_dispose
            if fns is not None and fn in fns:
                fns.remove(fn)

        return unregister

    def dispose(self) -> None:
        """Stop the machine: cancel contexts, wake waiters, drop the queue."""
        if self._disposing:
            return
        if not self._processing and "Start" in self._index and self._ticks["Start"] & 1:
            self.remove1("Start")
        self._disposing = True
        if self._log_level >= _DECISIONS:
            self._log(_DECISIONS, "[dispose] disposing")
        if not self._processing:
            self._finish_dispose()

    def _finish_dispose(self) -> None:
        if self._disposed:
            return
        self._queue.clear()
        self._n = 0
        ctxs = list(self._ctxs.values()) if self._ctxs else []
        self._ctxs = None
        for ctx in ctxs:
            ctx._expire()
        self._ticks = _ZeroTicks()
        self._on = _Off()
        self._mkey = self._cs.mask_key(0)
        self._disposed = True
        callbacks = self._on_dispose
        self._on_dispose = None
        for fn in callbacks or ():
            fn()
        for t in self._tracers:
            t.machine_dispose(self._id)

    # ------------------------------------------------------------- strings

    def __str__(self) -> str:
        if self._disposed:
            return ""
        ticks = self._ticks
        return (
            "("
            + " ".join(f"{s}:{ticks[s]}" for s in self._active(self._mkey.mask))
            + ")"
        )

    def __repr__(self) -> str:
        return f"<Machine {self._id} {self}>"

    def string_all(self) -> str:
        """All states with ticks: `(A:1 B:3) [C:0 D:2 Exception:0]`."""
        if self._disposed:
            return ""
        ticks = self._ticks
        active = [f"{s}:{t}" for s, t in ticks.items() if t & 1]
        inactive = [f"{s}:{t}" for s, t in ticks.items() if not t & 1]
        return f"({' '.join(active)}) [{' '.join(inactive)}]"

    def inspect(self, states: Iterable[str] | None = None) -> str:
        """A multi-line description of states, ticks and relations."""
        if self._disposed:
            return ""
        names = self._cs.names if states is None else self._parse(states)
        ticks = self._ticks
        out = []
        for name in names:
            st = self._cs.states[name]
            tick = ticks[name]
            out.append(f"{tick & 1} {name}\n")
            out.append(f"    |Tick     {tick}\n")
            if st.auto:
                out.append("    |Auto     true\n")
            if st.multi:
                out.append("    |Multi    true\n")
            for label, rel in (
                ("Add", st.add),
                ("Require", st.require),
                ("Remove", st.remove),
                ("After", st.after),
            ):
                if rel:
                    out.append(f"    |{label:<9}{' '.join(rel)}\n")
        return "".join(out)

    # -------------------------------------------------------- export/import

    @property
    def machine_tick(self) -> int:
        """How many imports this machine's state went through (0: none)."""
        return _export.machine_tick(self)

    def export(self) -> _export.Serialized:
        """Snapshot id, parent id, state names, clocks and queue tick."""
        return _export.export(self)

    @classmethod
    def import_(
        cls,
        data: _export.Serialized | Mapping[str, Any],
        schema: Mapping[str, State],
        **kwargs: Any,
    ) -> Self:
        """A new machine with `data`'s id, clocks and queue tick restored."""
        return _export.import_new(cls, data, schema, kwargs)


_TX_HOOKS = (
    "transition_init",
    "transition_start",
    "transition_end",
    "handler_start",
    "handler_end",
)


_Q_HOOKS = ("mutation_queued", "queue_end")


def _overrides(tracer: Tracer, hooks: tuple[str, ...]) -> bool:
    """Whether `tracer` overrides one of `hooks` (those of _TX_HOOKS need a
    Transition object)."""
    own = getattr(tracer, "__dict__", {})
    cls = type(tracer)
    return any(
        name in own or getattr(cls, name) is not getattr(Tracer, name) for name in hooks
    )
