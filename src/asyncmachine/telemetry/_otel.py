"""OpenTelemetry traces of machines, transitions and state activations."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable
from contextvars import Token
from typing import TYPE_CHECKING, Final, TypedDict, Unpack, final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.util.types import AttributeValue

from .. import __version__
from .._tracer import Tracer
from .._types import EXCEPTION
from ._common import (
    HEALTH_STATES,
    env_flag,
    is_error,
    is_health,
    logged_args,
    tx_result,
)

if TYPE_CHECKING:
    from .._runtime import Machine
    from .._transition import Transition

__all__ = [
    "OtelOptions",
    "OtelTracer",
    "StateFilter",
    "bind_otel",
    "bind_otel_env",
    "otel_env_filter",
]

StateFilter = Callable[[str, str], bool]
"""`(machine_id, state) -> bool`: whether a state gets activation spans."""

ENV_TRACE: Final = "AM_OTEL_TRACE"
ENV_TRACE_TXS: Final = "AM_OTEL_TRACE_TXS"
ENV_TRACE_ARGS: Final = "AM_OTEL_TRACE_ARGS"
ENV_TRACE_NOAUTO: Final = "AM_OTEL_TRACE_NOAUTO"
ENV_ALLOW_STATES: Final = "AM_OTEL_TRACE_ALLOW_STATES"
ENV_ALLOW_STATES_RE: Final = "AM_OTEL_TRACE_ALLOW_STATES_RE"
ENV_SKIP_STATES: Final = "AM_OTEL_TRACE_SKIP_STATES"
ENV_SKIP_STATES_RE: Final = "AM_OTEL_TRACE_SKIP_STATES_RE"
ENV_TRACE_ID: Final = "AM_OTEL_TRACE_ID"
ENV_SPAN_ID: Final = "AM_OTEL_SPAN_ID"

_ERROR: Final = StatusCode.ERROR


class _Mach:
    """What the tracer keeps per traced machine."""

    __slots__ = (
        "ctx",
        "exc_outer",
        "id",
        "multi",
        "span",
        "states",
        "tokens",
        "tx_span",
    )

    def __init__(self, machine_id: str, span: Span, multi: frozenset[str]) -> None:
        self.id = machine_id
        self.span = span
        self.ctx: Context = trace.set_span_in_context(span)
        self.multi = multi
        # open activation spans: state -> (span, tick it opened or last re-entered at)
        self.states: dict[str, tuple[Span, int]] = {}
        self.tx_span: Span | None = None
        self.tokens: list[Token[Context]] = []
        self.exc_outer: BaseException | None = None


@final
class OtelTracer(Tracer):
    """An `am.Tracer` that turns machines into OpenTelemetry spans.

    Each machine gets a span named `mach` (its id in the `am.machine.id`
    attribute: span names stay of low cardinality) that lasts until it is
    disposed;
    a machine created with `parent=` nests under its parent's span. Every
    transition gets a child span (`[add] Foo`) with the called and target
    states, the result, the mutation type, the queue tick and the logged
    args as attributes (auto transitions that relations reject outright, which
    are tried after most changes, get none), and every state activation a
    child span (`Foo`)
    from activation to deactivation. Errors (the `Exception` state, handlers
    that raise) are recorded on the spans. Machines whose span is not
    recorded (a no-op provider, sampled out) are not traced further: the
    tracer detaches itself from them, so they run as fast as untraced ones.

    Depends on `opentelemetry-api` only; configure an SDK provider in the
    application (or pass `tracer`). One tracer can trace many machines.
    """

    def __init__(
        self,
        tracer: trace.Tracer | None = None,
        *,
        transitions: bool = True,
        args: bool = True,
        skip_auto: bool = False,
        include_health: bool = False,
        state_filter: StateFilter | None = None,
        inherit: bool = True,
        handler_context: bool = True,
        context: Context | None = None,
    ) -> None:
        """Trace machines with `tracer` (default: the global provider's).

        `transitions=False` leaves out the transition spans, `args=False`
        their args attributes, `skip_auto` the spans of auto transitions.
        Healthcheck / Heartbeat transitions and states are skipped unless
        `include_health`. `state_filter(machine_id, state)` picks the states
        that get activation spans. With `inherit` (default) machines created
        with a traced parent are traced too. With `handler_context` the
        transition span is the current span while a handler runs, so spans
        made there nest under it. `context` parents the spans of top-level
        machines (default: the context current when a machine is bound).
        """
        if tracer is None:
            tracer = trace.get_tracer("asyncmachine", __version__)
        self.tracer: trace.Tracer = tracer
        """The OpenTelemetry tracer that makes the spans."""
        self.transitions = transitions
        self.args = args
        self.skip_auto = skip_auto
        self.include_health = include_health
        self.state_filter = state_filter
        self.handler_context = handler_context
        self._inherit = inherit
        self._context = context
        self._machs: dict[str, _Mach] = {}
        self._closed = False

    # ----------------------------------------------------------- public

    @property
    def machine_ids(self) -> list[str]:
        """Ids of the machines traced now (bound and not disposed)."""
        return list(self._machs)

    def unbind(self, machine: Machine) -> None:
        """Detach from `machine` and end its open spans."""
        machine.detach_tracer(self)
        self.machine_dispose(machine.id)

    def close(self) -> None:
        """End every open span, newest machines first, and stop tracing.

        Disposing a machine ends its spans already; call this at shutdown
        for machines that are never disposed, before flushing the provider.
        """
        self._closed = True
        for machine_id in reversed(list(self._machs)):
            self.machine_dispose(machine_id)

    # ------------------------------------------------------------ hooks

    def inheritable(self) -> bool:
        """Whether machines created with a traced parent are traced too."""
        return self._inherit

    def machine_init(self, machine: Machine) -> None:
        """Open the machine's span (and spans of states already active).

        When that span is not recorded (a no-op provider, sampled out) or
        the tracer is closed, the tracer detaches itself from the machine.
        """
        if self._closed:
            machine.detach_tracer(self)
            return
        mid = machine.id
        old = self._machs.pop(mid, None)
        if old is not None:
            self._end_mach(old)
        parent = self._machs.get(machine.parent_id) if machine.parent_id else None
        ctx = parent.ctx if parent is not None else self._context
        attrs: dict[str, AttributeValue] = {"am.machine.id": mid}
        if machine.parent_id:
            attrs["am.machine.parent_id"] = machine.parent_id
        if machine.tags:
            attrs["am.machine.tags"] = machine.tags
        # a span name of low cardinality: the id is an attribute
        span = self.tracer.start_span("mach", context=ctx, attributes=attrs)
        if not span.is_recording():
            # nothing of this machine would be recorded: cost it nothing
            machine.detach_tracer(self)
            return
        schema = machine.schema
        rec = _Mach(mid, span, frozenset(s for s in schema if schema[s].multi))
        self._machs[mid] = rec
        for state in machine.active_states:
            if self._traced(mid, state):
                self._open_state(rec, state, machine.tick(state), "")

    def machine_dispose(self, machine_id: str) -> None:
        """End the machine's open transition, state and machine spans."""
        rec = self._machs.pop(machine_id, None)
        if rec is not None:
            self._end_mach(rec)

    def transition_init(self, transition: Transition) -> None:
        """Open the transition's span."""
        rec = self._machs.get(transition.machine.id)
        if rec is None:
            return
        if rec.tx_span is not None:
            # a transition left by an exception that skipped transition_end
            self._end_tx(rec, "transition abandoned")
        mut = transition.mutation
        if (
            not self.transitions
            or mut.is_check
            or (mut.auto and (self.skip_auto or not transition.is_accepted))
            or (not self.include_health and is_health(transition))
        ):
            return
        label = f"[{mut.type}:auto]" if mut.auto else f"[{mut.type}]"
        attrs: dict[str, AttributeValue] = {
            "am.machine.id": rec.id,
            "am.tx.id": transition.id,
            "am.tx.mutation": str(mut.type),
            "am.tx.called": mut.called,
            "am.tx.auto": mut.auto,
            "am.tx.queue_tick": mut.queue_tick,
        }
        if self.args and mut.args:
            for key, value in logged_args(transition.machine, mut.args).items():
                attrs["am.args." + key] = value
        links = None
        current = trace.get_current_span().get_span_context()
        if current.is_valid:
            links = [Link(current)]
        rec.tx_span = self.tracer.start_span(
            f"{label} {' '.join(mut.called)}",
            context=rec.ctx,
            attributes=attrs,
            links=links,
        )

    def transition_end(self, transition: Transition) -> None:
        """Open and close state spans, then end the transition's span."""
        rec = self._machs.get(transition.machine.id)
        if rec is None:
            return
        if transition.mutation.is_check:
            return
        added, removed = self._sync_states(rec, transition)
        span = rec.tx_span
        if span is None:
            return
        rec.tx_span = None
        attrs: dict[str, AttributeValue] = {
            "am.tx.accepted": transition.is_accepted,
            "am.tx.result": str(tx_result(transition)),
            "am.tx.target": transition.target_states,
        }
        if added:
            attrs["am.tx.added"] = added
        if removed:
            attrs["am.tx.removed"] = removed
        span.set_attributes(attrs)
        if is_error(transition):
            self._record_error(span, transition)
        span.end()

    def handler_start(
        self, transition: Transition, binding_id: str, handler: str
    ) -> None:
        """Make the transition's span current while the handler runs."""
        rec = self._machs.get(transition.machine.id)
        if rec is None or rec.tx_span is None:
            return
        rec.exc_outer = sys.exc_info()[1]
        if self.handler_context:
            rec.tokens.append(
                otel_context.attach(trace.set_span_in_context(rec.tx_span))
            )

    def handler_end(
        self, transition: Transition, binding_id: str, handler: str
    ) -> None:
        """Add an event for the handler; record the error if it raised."""
        rec = self._machs.get(transition.machine.id)
        if rec is None or rec.tx_span is None:
            return
        span = rec.tx_span
        if rec.tokens:
            otel_context.detach(rec.tokens.pop())
        span.add_event(handler, {"am.binding_id": binding_id})
        # called from the core's `except` block when the handler raised
        exc = sys.exc_info()[1]
        if exc is not None and exc is not rec.exc_outer:
            span.record_exception(exc, {"am.handler": handler})
            span.set_status(Status(_ERROR, f"{handler}: {exc!r}"))

    # ---------------------------------------------------------- internals

    def _traced(self, machine_id: str, state: str) -> bool:
        if not self.include_health and state in HEALTH_STATES:
            return False
        f = self.state_filter
        return f is None or f(machine_id, state)

    def _open_state(self, rec: _Mach, state: str, tick: int, tx_id: str) -> Span:
        attrs: dict[str, AttributeValue] = {
            "am.machine.id": rec.id,
            "am.state": state,
            "am.state.tick": tick,
        }
        if tx_id:
            attrs["am.tx.id"] = tx_id
        name = f"{state} [M]" if state in rec.multi else state
        span = self.tracer.start_span(name, context=rec.ctx, attributes=attrs)
        rec.states[state] = (span, tick)
        return span

    def _sync_states(self, rec: _Mach, tx: Transition) -> tuple[list[str], list[str]]:
        """Activation spans follow the machine's ticks after `tx`."""
        before = tx.clock_before
        mach = tx.machine
        now = mach.clock()
        added: list[str] = []
        removed: list[str] = []
        if now == before:
            return added, removed
        err = is_error(tx)
        for state, tick in now.items():
            if tick == before[state]:
                continue
            if not self._traced(rec.id, state):
                continue
            opened = rec.states.get(state)
            if tick & 1:
                added.append(state)
                if opened is None:
                    span = self._open_state(rec, state, tick, tx.id)
                else:
                    span = opened[0]
                    rec.states[state] = (span, tick)
                    span.add_event(
                        "reactivated", {"am.state.tick": tick, "am.tx.id": tx.id}
                    )
                if err and state == EXCEPTION:
                    self._record_error(span, tx)
            else:
                removed.append(state)
                if opened is not None:
                    del rec.states[state]
                    opened[0].set_attribute("am.state.tick_end", tick)
                    opened[0].end()
        return added, removed

    @staticmethod
    def _record_error(span: Span, tx: Transition) -> None:
        args = tx.mutation.args
        err = args.get("err")
        if isinstance(err, BaseException):
            span.record_exception(err)
            span.set_status(Status(_ERROR, repr(err)))
        else:
            span.set_status(Status(_ERROR, "Exception state activated"))
        panic = args.get("panic")
        if isinstance(panic, dict):
            failed = panic.get("transition")
            if failed is not None:
                span.set_attribute("am.error.tx_id", failed.id)

    @staticmethod
    def _end_tx(rec: _Mach, why: str) -> None:
        while rec.tokens:
            otel_context.detach(rec.tokens.pop())
        if rec.tx_span is not None:
            rec.tx_span.set_status(Status(_ERROR, why))
            rec.tx_span.end()
            rec.tx_span = None

    def _end_mach(self, rec: _Mach) -> None:
        self._end_tx(rec, "machine disposed")
        for span, _ in rec.states.values():
            span.end()
        rec.states.clear()
        rec.span.end()

    def __repr__(self) -> str:
        return f"<OtelTracer machines={len(self._machs)}>"


class OtelOptions(TypedDict, total=False):
    """The keyword options of `OtelTracer` (defaults there)."""

    transitions: bool
    args: bool
    skip_auto: bool
    include_health: bool
    state_filter: StateFilter | None
    inherit: bool
    handler_context: bool
    context: Context | None


def bind_otel(
    mach: Machine,
    tracer: trace.Tracer | None = None,
    **options: Unpack[OtelOptions],
) -> OtelTracer:
    """Trace `mach` (and, by default, its submachines) with OpenTelemetry.

    `tracer` is an OpenTelemetry tracer (default: the global provider's);
    the keyword options are `OtelTracer`'s. Returns the bound tracer;
    `mach.detach_tracer(t)` stops it, `t.close()` ends its open spans.
    """
    ot = OtelTracer(tracer, **options)
    mach.bind_tracer(ot)
    return ot


def _split(raw: str) -> list[str]:
    return [p.strip() for p in raw.split(",") if p.strip()]


def _matches(patterns: Iterable[str], machine_id: str, state: str) -> bool:
    for p in patterns:
        mid, sep, name = p.rpartition(":")
        if sep and mid == machine_id and name == state:
            return True
        if not sep and p == state:
            return True
    return False


def otel_env_filter() -> StateFilter | None:
    """A state filter from the `AM_OTEL_TRACE_{ALLOW,SKIP}_STATES[_RE]` vars.

    Lists are comma-separated `State` or `machine_id:State` items; the
    regexes are searched in `machine_id:State`. Skips win over allows; with
    no allow given every state not skipped is traced. None when none is set.
    """
    allow = _split(os.environ.get(ENV_ALLOW_STATES, ""))
    skip = _split(os.environ.get(ENV_SKIP_STATES, ""))
    allow_re_s = os.environ.get(ENV_ALLOW_STATES_RE, "")
    skip_re_s = os.environ.get(ENV_SKIP_STATES_RE, "")
    if not (allow or skip or allow_re_s or skip_re_s):
        return None
    try:
        allow_re = re.compile(allow_re_s) if allow_re_s else None
        skip_re = re.compile(skip_re_s) if skip_re_s else None
    except re.error as exc:
        raise ValueError(
            f"bad regexp in the AM_OTEL_TRACE_*_RE variables: {exc}"
        ) from None

    def state_filter(machine_id: str, state: str) -> bool:
        if _matches(skip, machine_id, state):
            return False
        if skip_re is not None and skip_re.search(f"{machine_id}:{state}"):
            return False
        if not allow and allow_re is None:
            return True
        if _matches(allow, machine_id, state):
            return True
        return allow_re is not None and bool(allow_re.search(f"{machine_id}:{state}"))

    return state_filter


def _env_context() -> Context | None:
    """A remote parent from `AM_OTEL_TRACE_ID` / `AM_OTEL_SPAN_ID` (hex)."""
    trace_hex = os.environ.get(ENV_TRACE_ID, "")
    span_hex = os.environ.get(ENV_SPAN_ID, "")
    if not trace_hex or not span_hex:
        return None
    try:
        trace_id = int(trace_hex, 16)
        span_id = int(span_hex, 16)
    except ValueError:
        raise ValueError(
            f"{ENV_TRACE_ID} and {ENV_SPAN_ID} must be hex ids, "
            f"got {trace_hex!r} and {span_hex!r}"
        ) from None
    parent = SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    if not parent.is_valid:
        raise ValueError(f"{ENV_TRACE_ID} / {ENV_SPAN_ID} are not a valid span id")
    return trace.set_span_in_context(NonRecordingSpan(parent))


def bind_otel_env(
    mach: Machine, tracer: trace.Tracer | None = None
) -> OtelTracer | None:
    """Trace `mach` when `AM_OTEL_TRACE` is set; otherwise do nothing.

    The environment configures the tracer as in asyncmachine-go:
    `AM_OTEL_TRACE_TXS` adds transition spans, `AM_OTEL_TRACE_ARGS` their
    args, `AM_OTEL_TRACE_NOAUTO` skips auto transitions,
    `AM_OTEL_TRACE_{ALLOW,SKIP}_STATES[_RE]` filter states and
    `AM_OTEL_TRACE_ID` + `AM_OTEL_SPAN_ID` give a remote parent span. The
    spans go to `tracer` or the global provider (set it up in the app, e.g.
    with `opentelemetry-instrument`). A machine that already has an
    `OtelTracer` (inherited from its parent) keeps it, which is returned.
    """
    if not env_flag(ENV_TRACE):
        return None
    for t in mach.tracers:
        if isinstance(t, OtelTracer):
            return t
    ot = OtelTracer(
        tracer,
        transitions=env_flag(ENV_TRACE_TXS),
        args=env_flag(ENV_TRACE_ARGS),
        skip_auto=env_flag(ENV_TRACE_NOAUTO),
        state_filter=otel_env_filter(),
        context=_env_context(),
    )
    mach.bind_tracer(ot)
    return ot
