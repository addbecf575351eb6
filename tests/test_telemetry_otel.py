"""OpenTelemetry tracing: span names, nesting, attributes, errors, disposal."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode

import asyncmachine as am
from asyncmachine import telemetry
from asyncmachine.helpers import arg, args_class, pass_args
from asyncmachine.telemetry import (
    OtelTracer,
    bind_env,
    bind_otel,
    bind_otel_env,
    otel_env_filter,
)
from asyncmachine.telemetry._common import tx_result
from deadline import bound_async_tests

SCHEMA = {
    "A": am.State(remove=["B"]),
    "B": am.State(remove=["A"]),
    "C": am.State(require=["A"]),
    "D": am.State(auto=True, require=["C"]),
    "Ev": am.State(multi=True),
    "Healthcheck": am.State(),
}


class Spans:
    """A tracer with its in-memory exporter."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test")

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def names(self) -> list[str]:
        """Span names, machine spans labelled `mach:<am.machine.id>`."""
        return [label(s) for s in self.finished()]

    def one(self, name: str) -> ReadableSpan:
        found = [s for s in self.finished() if label(s) == name]
        assert len(found) == 1, (name, self.names())
        return found[0]


def label(span: ReadableSpan) -> str:
    """The span's name; a machine span's (`mach`) gets its id appended."""
    if span.name == "mach":
        assert span.attributes is not None
        return f"mach:{span.attributes['am.machine.id']}"
    return span.name


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def sid(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


@pytest.fixture
def spans() -> Iterator[Spans]:
    s = Spans()
    yield s
    s.provider.shutdown()


@args_class(key="tele.User")
class UserArgs:
    user: str = arg(log="user")
    secret: str = arg(default="")


async def test_machine_transition_and_state_spans(spans: Spans) -> None:
    mach = am.Machine(SCHEMA, id="m1", tags=["web"])
    ot = bind_otel(mach, spans.tracer)
    assert ot.machine_ids == ["m1"]
    async with mach:
        mach.add1("A", {"path": "/tmp/x", **pass_args(UserArgs("ann", "pw"))})
        # the auto state D is tried after each change; rejected by its
        # relations (it requires C) it makes no span
        mach.add1("C")
        assert spans.names() == ["[add] A", "[add] C", "[add:auto] D"]
        mach.add1("B")  # removes A, C and D
        names = spans.names()
        assert names[3:] == ["A", "C", "D", "[add] B"]
    # disposal ends B's activation and the machine span
    assert spans.names()[-2:] == ["B", "mach:m1"]
    assert ot.machine_ids == []

    mach_span = spans.one("mach:m1")
    assert mach_span.parent is None
    # span names are of low cardinality: no id in any of them
    assert mach_span.name == "mach"
    assert not [s.name for s in spans.finished() if "m1" in s.name]
    assert mach_span.attributes == {"am.machine.id": "m1", "am.machine.tags": ("web",)}
    for span in spans.finished():
        if span is not mach_span:
            assert parent_of(span) == sid(mach_span), span.name

    tx = spans.one("[add] A")
    attrs = dict(tx.attributes or {})
    assert attrs.pop("am.tx.id") == spans.one("A").attributes["am.tx.id"]  # type: ignore[index]
    assert attrs == {
        "am.machine.id": "m1",
        "am.tx.mutation": "add",
        "am.tx.called": ("A",),
        "am.tx.auto": False,
        "am.tx.queue_tick": 2,
        "am.args.path": "/tmp/x",
        "am.args.user": "ann",
        "am.tx.accepted": True,
        "am.tx.result": "executed",
        "am.tx.target": ("A",),
        "am.tx.added": ("A",),
    }
    b = spans.one("[add] B").attributes or {}
    assert b["am.tx.removed"] == ("A", "C", "D")
    assert b["am.tx.added"] == ("B",)
    added = spans.one("[add:auto] D").attributes or {}
    assert added["am.tx.result"] == "executed"
    assert added["am.tx.auto"] is True

    # a state span lasts from activation to deactivation
    a = spans.one("A")
    assert a.attributes == {
        "am.machine.id": "m1",
        "am.state": "A",
        "am.state.tick": 1,
        "am.tx.id": tx.attributes["am.tx.id"],  # type: ignore[index]
        "am.state.tick_end": 2,
    }
    assert a.start_time is not None and a.end_time is not None
    assert tx.start_time is not None and tx.end_time is not None
    assert tx.start_time <= a.start_time <= tx.end_time
    b_tx = spans.one("[add] B")
    assert b_tx.start_time is not None and b_tx.end_time is not None
    assert b_tx.start_time <= a.end_time <= b_tx.end_time


async def test_canceled_and_rejected_transitions(spans: Spans) -> None:
    mach = am.Machine(SCHEMA, id="m")
    bind_otel(mach, spans.tracer)
    async with mach:
        assert mach.add1("C") is am.Result.CANCELED  # requires A
        assert mach.can_add(["A"]) is am.Result.EXECUTED
        mach.add(["A"])
        assert mach.remove1("Ev") is am.Result.EXECUTED
    c = spans.one("[add] C").attributes or {}
    assert c["am.tx.accepted"] is False
    assert c["am.tx.result"] == "canceled"
    assert spans.one("[add] C").status.status_code is StatusCode.UNSET
    # dry runs make no spans
    assert [n for n in spans.names() if n.startswith("[")] == [
        "[add] C",
        "[add] A",
        "[remove] Ev",
    ]


def test_remove_kept_by_relation_is_canceled(spans: Spans) -> None:
    mach = am.Machine({"A": am.State(), "B": am.State(add=["A"])}, id="r")
    bind_otel(mach, spans.tracer)

    class KeepA:
        def AExit(self, e: am.Event) -> bool:
            return False

    mach.add1("A")
    mach.bind_handlers(KeepA())
    assert mach.remove1("A") is am.Result.CANCELED
    mach.dispose()
    attrs = spans.one("[remove] A").attributes or {}
    assert attrs["am.tx.result"] == "canceled"
    assert attrs["am.tx.accepted"] is False
    # the handler shows as an event
    events = spans.one("[remove] A").events
    assert [e.name for e in events] == ["AExit"]


async def test_multi_state_reactivation_is_an_event(spans: Spans) -> None:
    mach = am.Machine(SCHEMA, id="m")
    bind_otel(mach, spans.tracer)
    async with mach:
        mach.add1("Ev")
        mach.add1("Ev")
        mach.add1("Ev")
    ev = spans.one("Ev [M]")
    assert [e.name for e in ev.events] == ["reactivated", "reactivated"]
    assert [e.attributes["am.state.tick"] for e in ev.events] == [3, 5]  # type: ignore[index]
    # still active at disposal: no end tick
    assert "am.state.tick_end" not in (ev.attributes or {})


async def test_handler_error_recorded(spans: Spans) -> None:
    class H:
        def BState(self, e: am.Event) -> None:
            raise ValueError("boom")

    mach = am.Machine(SCHEMA, id="m", handlers=H())
    bind_otel(mach, spans.tracer)
    async with mach:
        mach.add1("B")
        assert mach.is_err()
    failed = spans.one("[add] B")
    assert failed.status.status_code is StatusCode.ERROR
    assert "boom" in (failed.status.description or "")
    assert [e.name for e in failed.events] == ["BState", "exception"]
    assert failed.events[1].attributes["exception.type"] == "ValueError"  # type: ignore[index]
    assert failed.events[1].attributes["am.handler"] == "BState"  # type: ignore[index]

    err_tx = spans.one("[add] Exception")
    assert err_tx.status.status_code is StatusCode.ERROR
    assert err_tx.attributes["am.error.tx_id"] == failed.attributes["am.tx.id"]  # type: ignore[index]
    assert [e.name for e in err_tx.events] == ["exception"]
    exc_state = spans.one("Exception [M]")
    assert exc_state.status.status_code is StatusCode.ERROR
    assert [e.name for e in exc_state.events] == ["exception"]


def test_add_err_without_error_object(spans: Spans) -> None:
    mach = am.Machine(SCHEMA, id="m")
    bind_otel(mach, spans.tracer)
    mach.add1("Exception", {"reason": "x"})
    mach.add_err(RuntimeError("second"))
    mach.dispose()
    first, second = (s for s in spans.finished() if s.name == "[add] Exception")
    assert first.status.description == "Exception state activated"
    assert second.status.description == "RuntimeError('second')"
    state = spans.one("Exception [M]")
    assert [e.name for e in state.events] == ["reactivated", "exception"]


async def test_submachines_nest_under_their_parent(spans: Spans) -> None:
    parent = am.Machine(SCHEMA, id="parent")
    bind_otel(parent, spans.tracer)
    child = am.Machine({"X": am.State()}, id="child", parent=parent)
    grandchild = am.Machine({"Y": am.State()}, id="grand", parent=child)
    loner = am.Machine({"Z": am.State()}, id="loner", parent=parent, tracers=[])
    async with parent, child, grandchild:
        child.add1("X")
        grandchild.add1("Y")
    loner.dispose()
    p, c, g = spans.one("mach:parent"), spans.one("mach:child"), spans.one("mach:grand")
    assert parent_of(c) == sid(p)
    assert parent_of(g) == sid(c)
    assert c.attributes["am.machine.parent_id"] == "parent"  # type: ignore[index]
    assert parent_of(spans.one("[add] X")) == sid(c)
    assert parent_of(spans.one("Y")) == sid(g)
    # without inheritance the children stay untraced
    spans2 = Spans()
    top = am.Machine(SCHEMA, id="top")
    bind_otel(top, spans2.tracer, inherit=False)
    sub = am.Machine(SCHEMA, id="sub", parent=top)
    sub.add1("A")
    assert sub.tracers == ()
    top.dispose()
    sub.dispose()
    assert spans2.names() == ["mach:top"]


async def test_spans_close_when_cancelled(spans: Spans) -> None:
    mach = am.Machine(SCHEMA, id="m")
    ot = bind_otel(mach, spans.tracer)
    started = anyio.Event()

    async def run() -> None:
        async with mach:
            mach.add1("A")
            started.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await started.wait()
        assert spans.names() == ["[add] A"]
        tg.cancel_scope.cancel()
    assert mach.disposed
    assert spans.names() == ["[add] A", "A", "mach:m"]
    assert ot.machine_ids == []


def test_dispose_inside_a_handler_closes_spans(spans: Spans) -> None:
    class H:
        def AState(self, e: am.Event) -> None:
            e.machine.dispose()

    mach = am.Machine(SCHEMA, id="m", handlers=H())
    bind_otel(mach, spans.tracer)
    mach.add1("A")
    assert mach.disposed
    assert sorted(spans.names()) == ["A", "[add] A", "mach:m"]
    tx = spans.one("[add] A")
    assert tx.attributes["am.tx.accepted"] is False  # type: ignore[index]


def test_close_ends_spans_of_live_machines(spans: Spans) -> None:
    ot = OtelTracer(spans.tracer)
    m1 = am.Machine(SCHEMA, id="one", tracers=[ot])
    m2 = am.Machine(SCHEMA, id="two", tracers=[ot])
    m1.add1("A")
    m2.add1("B")
    assert repr(ot) == "<OtelTracer machines=2>"
    ot.close()
    assert spans.names() == ["[add] A", "[add] B", "B", "mach:two", "A", "mach:one"]
    # a closed tracer traces nothing new, and leaves new machines at once
    m3 = am.Machine(SCHEMA, id="three", tracers=[ot])
    assert m3.tracers == ()
    m3.add1("A")
    m1.add1("C")
    m1.dispose()
    assert len(spans.names()) == 6


def test_bound_late_and_unbound(spans: Spans) -> None:
    mach = am.Machine(SCHEMA, id="m")
    mach.add(["A", "Healthcheck"])
    ot = bind_otel(mach, spans.tracer)
    assert spans.names() == []
    ot.unbind(mach)
    assert mach.tracers == ()
    # the health state gets no span
    assert spans.names() == ["A", "mach:m"]
    mach.add1("B")
    assert len(spans.names()) == 2


def test_same_id_rebinds(spans: Spans) -> None:
    ot = OtelTracer(spans.tracer)
    first = am.Machine(SCHEMA, id="same", tracers=[ot])
    first.add1("A")
    am.Machine(SCHEMA, id="same", tracers=[ot])
    assert spans.names() == ["[add] A", "A", "mach:same"]
    assert ot.machine_ids == ["same"]


def test_handler_spans_nest_and_cross_machine_links(spans: Spans) -> None:
    other = am.Machine({"X": am.State()}, id="other")
    bind_otel(other, spans.tracer)
    user_tracer = spans.provider.get_tracer("user")

    class H:
        def AState(self, e: am.Event) -> None:
            with user_tracer.start_as_current_span("work"):
                other.add1("X")

    mach = am.Machine(SCHEMA, id="m", handlers=H())
    bind_otel(mach, spans.tracer)
    mach.add1("A")
    other.dispose()
    assert trace.get_current_span() is trace.INVALID_SPAN
    work = spans.one("work")
    tx = spans.one("[add] A")
    assert parent_of(work) == sid(tx)
    x = spans.one("[add] X")
    assert parent_of(x) == sid(spans.one("mach:other"))
    assert [link.context.span_id for link in x.links] == [sid(work)]

    # without handler_context the handler sees no transition span
    seen: list[Any] = []

    class H2:
        def AState(self, e: am.Event) -> None:
            seen.append(trace.get_current_span())

    m2 = am.Machine(SCHEMA, id="m2", handlers=H2())
    bind_otel(m2, spans.tracer, handler_context=False)
    m2.add1("A")
    assert seen == [trace.INVALID_SPAN]


class Escape(BaseException):
    """Escapes the core's handler error handling."""


def test_abandoned_transition_is_ended(spans: Spans) -> None:
    class H:
        def AEnter(self, e: am.Event) -> bool:
            raise Escape

    mach = am.Machine(SCHEMA, id="m", handlers=H())
    bind_otel(mach, spans.tracer)
    with pytest.raises(Escape):
        mach.add1("A")
    assert spans.names() == []
    mach.add1("B")
    abandoned = spans.one("[add] A")
    assert abandoned.status.description == "transition abandoned"
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_options(spans: Spans) -> None:
    mach = am.Machine(SCHEMA, id="m")
    bind_otel(
        mach,
        spans.tracer,
        transitions=False,
        state_filter=lambda mid, state: state != "C",
    )
    mach.add(["A", "Healthcheck"])
    mach.add1("C")
    mach.dispose()
    assert spans.names() == ["A", "D", "mach:m"]

    s2 = Spans()
    m2 = am.Machine(SCHEMA, id="m2")
    bind_otel(m2, s2.tracer, args=False, skip_auto=True, include_health=True)
    m2.add1("Healthcheck", {"path": "/x"})
    m2.add(["A", "C"])
    m2.dispose()
    assert s2.names() == [
        "[add] Healthcheck",
        "[add] A C",
        "Healthcheck",
        "A",
        "C",
        "D",
        "mach:m2",
    ]
    assert "am.args.path" not in (s2.one("[add] Healthcheck").attributes or {})


def test_non_recording_provider_costs_nothing() -> None:
    for provider in (trace.NoOpTracerProvider(), TracerProvider(sampler=ALWAYS_OFF)):
        ot = OtelTracer(provider.get_tracer("x"))
        mach = am.Machine(SCHEMA, id="m", tracers=[ot])
        child = am.Machine(SCHEMA, id="c", parent=mach)
        # the tracer left both: the core runs its tracer-free path
        assert mach.tracers == () and child.tracers == ()
        assert bind_otel(mach, provider.get_tracer("y")) not in mach.tracers
        mach.add1("A")
        assert mach.transition is None
        assert ot.machine_ids == []
        mach.dispose()
    # the default tracer comes from the global provider
    assert isinstance(OtelTracer().tracer, trace.Tracer)


# -------------------------------------------------------------- environment


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "AM_OTEL_TRACE",
        "AM_OTEL_TRACE_TXS",
        "AM_OTEL_TRACE_ARGS",
        "AM_OTEL_TRACE_NOAUTO",
        "AM_OTEL_TRACE_ALLOW_STATES",
        "AM_OTEL_TRACE_ALLOW_STATES_RE",
        "AM_OTEL_TRACE_SKIP_STATES",
        "AM_OTEL_TRACE_SKIP_STATES_RE",
        "AM_OTEL_TRACE_ID",
        "AM_OTEL_SPAN_ID",
        "AM_PROM_ADDR",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_env_off_binds_nothing(clean_env: pytest.MonkeyPatch, spans: Spans) -> None:
    calls: list[str] = []

    class Spy(am.Tracer):
        def transition_init(self, transition: am.Transition) -> None:
            calls.append("init")

    mach = am.Machine(SCHEMA, id="m")
    assert bind_otel_env(mach, spans.tracer) is None
    assert bind_env(mach) == []
    clean_env.setenv("AM_OTEL_TRACE", "0")
    assert bind_otel_env(mach, spans.tracer) is None
    # structurally free: no tracer bound, so the core builds no transition
    # objects and calls no hook
    assert mach.tracers == ()
    mach.add1("A")
    assert mach.transition is None
    assert calls == []
    assert spans.names() == []


def test_env_on(clean_env: pytest.MonkeyPatch, spans: Spans) -> None:
    clean_env.setenv("AM_OTEL_TRACE", "1")
    mach = am.Machine(SCHEMA, id="m")
    ot = bind_otel_env(mach, spans.tracer)
    assert isinstance(ot, OtelTracer)
    assert ot.transitions is False and ot.args is False and ot.skip_auto is False
    child = am.Machine(SCHEMA, id="child", parent=mach)
    assert bind_otel_env(child, spans.tracer) is ot
    mach.add1("A")
    mach.dispose()
    assert spans.names() == ["A", "mach:m"]

    clean_env.setenv("AM_OTEL_TRACE_TXS", "1")
    clean_env.setenv("AM_OTEL_TRACE_ARGS", "yes")
    clean_env.setenv("AM_OTEL_TRACE_NOAUTO", "true")
    clean_env.setenv("AM_OTEL_TRACE_ID", "0af7651916cd43dd8448eb211c80319c")
    clean_env.setenv("AM_OTEL_SPAN_ID", "b7ad6b7169203331")
    s2 = Spans()
    m2 = am.Machine(SCHEMA, id="m2")
    ot2 = bind_otel_env(m2, s2.tracer)
    assert ot2 is not None and ot2.transitions and ot2.args and ot2.skip_auto
    m2.add(["A", "C"], {"id": "7"})
    m2.dispose()
    assert s2.names() == ["[add] A C", "A", "C", "D", "mach:m2"]
    root = s2.one("mach:m2")
    assert root.parent is not None and root.parent.is_remote
    assert root.parent.span_id == 0xB7AD6B7169203331
    assert root.context is not None
    assert root.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert s2.one("[add] A C").attributes["am.args.id"] == "7"  # type: ignore[index]

    # bind_env uses the global provider
    plain = am.Tracer()
    m3 = am.Machine(SCHEMA, id="m3", tracers=[plain])
    (bound,) = bind_env(m3)
    # no global provider is configured: the tracer records nothing and leaves
    assert isinstance(bound, OtelTracer) and m3.tracers == (plain,)


def test_env_bad_ids(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AM_OTEL_TRACE", "1")
    clean_env.setenv("AM_OTEL_TRACE_ID", "xyz")
    clean_env.setenv("AM_OTEL_SPAN_ID", "b7ad6b7169203331")
    mach = am.Machine(SCHEMA, id="m")
    with pytest.raises(ValueError, match="AM_OTEL_TRACE_ID"):
        bind_otel_env(mach)
    clean_env.setenv("AM_OTEL_TRACE_ID", "0")
    with pytest.raises(ValueError, match="not a valid span id"):
        bind_otel_env(mach)
    assert mach.tracers == ()


def test_env_state_filter(clean_env: pytest.MonkeyPatch) -> None:
    assert otel_env_filter() is None
    clean_env.setenv("AM_OTEL_TRACE_SKIP_STATES", "B, m1:C")
    f = otel_env_filter()
    assert f is not None
    assert [f("m1", s) for s in "ABC"] == [True, False, False]
    assert f("m2", "C") is True

    clean_env.setenv("AM_OTEL_TRACE_SKIP_STATES_RE", "^m2:")
    f = otel_env_filter()
    assert f is not None and f("m2", "A") is False and f("m1", "A") is True

    clean_env.delenv("AM_OTEL_TRACE_SKIP_STATES_RE")
    clean_env.setenv("AM_OTEL_TRACE_ALLOW_STATES", "A,m2:D")
    f = otel_env_filter()
    assert f is not None
    assert [f("m2", s) for s in "ABCD"] == [True, False, False, True]
    assert f("m1", "D") is False

    clean_env.setenv("AM_OTEL_TRACE_ALLOW_STATES_RE", "Ev$")
    f = otel_env_filter()
    assert f is not None and f("x", "Ev") is True and f("x", "E") is False

    clean_env.setenv("AM_OTEL_TRACE_ALLOW_STATES_RE", "(")
    with pytest.raises(ValueError, match="bad regexp"):
        otel_env_filter()


# ------------------------------------------------------------------ details


def test_tx_result_of_a_remove_that_keeps_its_state() -> None:
    results: list[am.Result] = []

    class Peek(am.Tracer):
        def transition_init(self, transition: am.Transition) -> None:
            # at init the called state is still active
            if transition.mutation.type is am.MutationType.REMOVE:
                results.append(tx_result(transition))

    mach = am.Machine(SCHEMA)
    mach.add1("A")
    mach.bind_tracer(Peek())
    mach.remove1("A")
    assert results == [am.Result.CANCELED]


def test_untraced_handlers_and_panic_without_transition(spans: Spans) -> None:
    class H:
        def AState(self, e: am.Event) -> None:
            pass

    mach = am.Machine(SCHEMA, id="m", handlers=H())
    bind_otel(mach, spans.tracer, transitions=False)
    mach.add1("A")
    mach.add1("Exception", {"err": ValueError("x"), "panic": {}})
    mach.dispose()
    exc = spans.one("Exception [M]")
    assert exc.status.status_code is StatusCode.ERROR
    assert "am.error.tx_id" not in (exc.attributes or {})


def test_lazy_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AttributeError, match="nope"):
        telemetry.nope
    assert "OtelTracer" in dir(telemetry)
    assert repr(telemetry.StructuredLogger).startswith(
        "<class 'asyncmachine.telemetry.StructuredLogger"
    )
    monkeypatch.delitem(telemetry.__dict__, "bind_otel")
    monkeypatch.setitem(sys.modules, "asyncmachine.telemetry._otel", None)
    with pytest.raises(ImportError, match=r"asyncmachine\[otel\]"):
        telemetry.bind_otel


bound_async_tests(globals(), 10)
