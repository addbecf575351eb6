"""Ports of asyncmachine-go's pkg/telemetry tests and behaviour.

Go's `TestLog` (otel_test.go) binds a structured logger at `LogDecisions` to
the `rel` test schema and checks the machine id and two lines in the output;
here the structured logger is `bind_logging` with a `JsonFormatter`. The
level mapping and the id-less messages follow Go's `BindLokiLogger` and
`BindOtelLogger`. The rest covers how the logger stays near-free while the
machine logs nothing (it is a tracer only while it logs).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

import asyncmachine as am
from asyncmachine.telemetry import JsonFormatter, StructuredLogger, bind_logging
from deadline import bound_async_tests

# internal/testing/states/ss_rel.go
REL: am.Schema = {
    "A": am.State(auto=True, require=["C"]),
    "B": am.State(multi=True, add=["C"]),
    "C": am.State(after=["D"]),
    "D": am.State(add=["C", "B"]),
}


class Out:
    """A logger writing JSON lines to a buffer."""

    def __init__(self, name: str) -> None:
        self.buf = io.StringIO()
        self.handler = logging.StreamHandler(self.buf)
        self.handler.setFormatter(JsonFormatter())
        self.log = logging.getLogger(name)
        self.log.setLevel(logging.DEBUG)
        self.log.propagate = False
        self.log.addHandler(self.handler)

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.buf.getvalue().splitlines()]

    def messages(self) -> list[str]:
        return [str(r["message"]) for r in self.records()]


@pytest.fixture
def out(request: pytest.FixtureRequest) -> Iterator[Out]:
    o = Out(f"test.go_port.telemetry.{request.node.name}")
    yield o
    o.log.removeHandler(o.handler)


async def test_log(out: Out) -> None:
    """otel_test.go TestLog."""
    mach = am.Machine(REL, id="t-TestLog")
    mach.log_level = am.LogLevel.DECISIONS
    bind_logging(mach, out.log)
    async with mach:
        mach.add1("C")
        mach.remove1("A")
    text = out.buf.getvalue()
    assert '"machine_id": "t-TestLog"' in text
    assert "[queue:add] C" in text
    assert "[auto_] +A" in text
    # as in Go, the id prefix is left out of the messages: it is a field
    assert "[queue:add] C" in out.messages()
    auto = next(r for r in out.records() if r["message"] == "[auto_] +A")
    assert auto["mutation"] == "add" and auto["called_states"] == ["A"]
    assert auto["states"] == ["A", "C"] and auto["level"] == "INFO"


def test_levels_as_go_loki_and_otel_loggers(out: Out) -> None:
    """BindLokiLogger: changes and ops are info, decisions and everything
    debug, `[error` lines error."""

    class H(am.ExceptionHandler):
        def DState(self, e: am.Event) -> None:
            raise ValueError("boom")

    mach = am.Machine(REL, id="lvl", handlers=H(), log_stack_trace=False)
    bind_logging(mach, out.log, log_level=am.LogLevel.EVERYTHING)
    mach.log("ext %d", 1)
    mach.add1("D")
    by_level: dict[str, str] = {}
    for r in out.records():
        by_level.setdefault(str(r["message"]).split(" ")[0], str(r["level"]))
    assert by_level["[exter]"] == "INFO"  # EXTERNAL
    assert by_level["[state]"] == "INFO"  # CHANGES
    assert by_level["[queue:add]"] == "INFO"  # OPS
    assert by_level["[handler:0]"] == "INFO"  # OPS
    assert by_level["[handler:end:0]"] == "DEBUG"  # EVERYTHING
    assert by_level["[error:add]"] == "ERROR"


# ------------------------------------------- a tracer only while it logs


class Counter(am.Tracer):
    def __init__(self) -> None:
        self.ends = 0

    def transition_end(self, transition: am.Transition) -> None:
        self.ends += 1


def test_logging_off_binds_no_tracer(out: Out) -> None:
    mach = am.Machine(REL, id="off", log_level=am.LogLevel.NOTHING)
    sl = bind_logging(mach, out.log, log_level=am.LogLevel.NOTHING)
    assert mach.logger is sl
    # structurally free: no tracer, so the core builds no transition
    assert mach.tracers == ()
    mach.add1("C")
    assert mach.transition is None
    assert out.records() == []
    assert mach.log_id is False


def test_logging_switched_on_binds_and_off_detaches(out: Out) -> None:
    mach = am.Machine(REL, id="sw", log_level=am.LogLevel.NOTHING)
    sl = bind_logging(mach, out.log)
    assert sl not in mach.tracers
    mach.log_level = am.LogLevel.OPS
    mach.add1("C")
    assert mach.tracers == (sl,)
    # the first line binds the logger; the transition's lines carry its id
    recs = out.records()
    assert recs[0]["message"] == "[queue:add] C" and recs[0]["tx_id"] == ""
    state = next(r for r in recs if r["message"] == "[state] +C")
    assert state["tx_id"] and state["mutation"] == "add"
    assert state["called_states"] == ["C"]
    # logging off again: the next transition detaches it
    mach.log_level = am.LogLevel.NOTHING
    mach.add1("D")
    assert mach.tracers == ()
    n = len(recs)
    mach.remove1("D")
    assert len(out.records()) == n
    # and on again
    mach.log_level = am.LogLevel.CHANGES
    mach.add1("D")
    mach.add1("B")
    assert mach.tracers == (sl,)
    last = out.records()[-1]
    assert last["message"].startswith("[state] +B")  # type: ignore[union-attr]
    assert last["tx_id"] and last["called_states"] == ["B"]


def test_bound_mid_transition_picks_up_the_transition(out: Out) -> None:
    seen: list[str] = []

    class H:
        def CState(self, e: am.Event) -> None:
            seen.append(e.transition.id)

    mach = am.Machine(REL, id="mid", handlers=H())
    sl = bind_logging(mach, out.log, log_level=am.LogLevel.NOTHING)
    mach.log_level = am.LogLevel.CHANGES
    mach.add1("C")
    assert sl in mach.tracers
    rec = out.records()[0]
    assert rec["message"] == "[state] +C"
    # the transition was already built (handlers bound): its fields are there
    assert rec["tx_id"] == seen[0] and rec["mutation"] == "add"
    assert sl.fields()["tx_id"] == ""


def test_leaving_does_not_skip_the_next_tracer(out: Out) -> None:
    mach = am.Machine(REL, id="two")
    bind_logging(mach, out.log, log_level=am.LogLevel.CHANGES)
    counter = Counter()
    mach.bind_tracer(counter)
    mach.log_level = am.LogLevel.NOTHING
    mach.add1("C")
    mach.add1("D")
    # the logger left at the first transition end; the tracer after it
    # still saw every transition
    assert mach.tracers == (counter,)
    assert counter.ends == 3  # C, D and the auto A


def test_logger_level_filters_before_binding(out: Out) -> None:
    out.log.setLevel(logging.ERROR)
    mach = am.Machine(
        REL, id="flt", handlers=am.ExceptionHandler(), log_stack_trace=False
    )
    sl = bind_logging(mach, out.log, log_level=am.LogLevel.NOTHING)
    mach.log_level = am.LogLevel.CHANGES
    mach.add1("C")
    # nothing emitted yet: not bound
    assert sl not in mach.tracers and out.records() == []
    mach.add_err(RuntimeError("bad"))
    assert sl in mach.tracers
    assert [r["message"] for r in out.records()] == ["[error] bad"]


def test_submachines_inherit_from_a_logging_parent(out: Out) -> None:
    parent = am.Machine(REL, id="p", log_level=am.LogLevel.NOTHING)
    bind_logging(parent, out.log)
    quiet = am.Machine(REL, id="q", parent=parent)
    # the parent logs nothing, so its logger is no tracer to inherit
    assert not isinstance(quiet.logger, StructuredLogger)
    parent.log_level = am.LogLevel.CHANGES
    parent.add1("C")
    child = am.Machine(REL, id="c", parent=parent, log_level=am.LogLevel.CHANGES)
    assert isinstance(child.logger, StructuredLogger)
    assert child.logger.logger is out.log and child.log_id is False
    child.add1("B")
    last = out.records()[-1]
    assert last["machine_id"] == "c" and last["parent_id"] == "p"


bound_async_tests(globals(), 10)
