"""Structured logging: stdlib records with machine, transition and state fields."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

import asyncmachine as am
from asyncmachine.helpers import arg, args_class, pass_args
from asyncmachine.telemetry import (
    AM_FIELDS,
    DEFAULT_LEVELS,
    JsonFormatter,
    StructuredLogger,
    bind_logging,
)
from deadline import bound_async_tests

SCHEMA = {
    "A": am.State(remove=["B"]),
    "B": am.State(remove=["A"]),
    "C": am.State(require=["A"]),
}


@args_class(key="tele.log.Req")
class Req:
    req: str = arg(log="req_id")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def by_text(self, needle: str) -> logging.LogRecord:
        found = [r for r in self.records if needle in r.getMessage()]
        assert len(found) == 1, (needle, [r.getMessage() for r in self.records])
        return found[0]


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, Records]]:
    log = logging.getLogger("test.telemetry.logging")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    handler = Records()
    log.addHandler(handler)
    yield log, handler
    log.removeHandler(handler)


async def test_records_carry_machine_and_transition(
    logger: tuple[logging.Logger, Records],
) -> None:
    log, rec = logger
    mach = am.Machine(SCHEMA, id="m1")
    sl = bind_logging(mach, log, log_level=am.LogLevel.OPS)
    assert mach.logger is sl and sl in mach.tracers
    assert repr(sl) == "<StructuredLogger test.telemetry.logging machine=m1>"
    async with mach:
        mach.add1("A", {"path": "/x", **pass_args(Req("r-7"))})
        mach.log("hello %s", "world")
    state = rec.by_text("[state] +A")
    assert state.levelno == logging.INFO
    fields = {k: getattr(state, k) for k in AM_FIELDS}
    assert fields["tx_id"]
    assert fields == {
        "machine_id": "m1",
        "parent_id": "",
        "am_level": int(am.LogLevel.CHANGES),
        "tx_id": fields["tx_id"],
        "mutation": "add",
        "called_states": ["A"],
        "states": ["A"],
        "am_args": {"path": "/x", "req_id": "r-7"},
    }
    # OPS lines are INFO; the queue line comes before the transition exists
    queued = rec.by_text("[queue:add] A")
    assert queued.levelno == logging.INFO
    assert queued.getMessage() == "[queue:add] A (path=/x req_id=r-7)"
    assert queued.tx_id == ""  # type: ignore[attr-defined]
    assert queued.states == []  # type: ignore[attr-defined]
    ext = rec.by_text("hello world")
    assert ext.levelno == logging.INFO
    assert ext.tx_id == ""  # type: ignore[attr-defined]
    assert ext.states == ["A"]  # type: ignore[attr-defined]


def test_errors_are_error_records(logger: tuple[logging.Logger, Records]) -> None:
    log, rec = logger

    class H(am.ExceptionHandler):
        def AState(self, e: am.Event) -> None:
            raise ValueError("boom")

    mach = am.Machine(SCHEMA, id="m", handlers=H(), log_stack_trace=False)
    bind_logging(mach, log, log_level=am.LogLevel.CHANGES)
    mach.add1("A")
    err = rec.by_text("[error:add] A (boom)")
    assert err.levelno == logging.ERROR
    assert err.mutation == "add"  # type: ignore[attr-defined]
    assert err.called_states == ["Exception"]  # type: ignore[attr-defined]
    # with the id prefix too
    mach.log_id = True
    mach.add_err(RuntimeError("plain"))
    assert rec.by_text("[error] plain").levelno == logging.ERROR


def test_levels_and_filtering(logger: tuple[logging.Logger, Records]) -> None:
    log, rec = logger
    log.setLevel(logging.INFO)
    mach = am.Machine(SCHEMA, id="m")
    sl = bind_logging(
        mach,
        log,
        levels={am.LogLevel.CHANGES: logging.WARNING},
        log_level=am.LogLevel.DECISIONS,
    )
    assert sl.levels[am.LogLevel.OPS] == DEFAULT_LEVELS[am.LogLevel.OPS]
    mach.add1("A")
    # DECISIONS lines (DEBUG) are filtered by the logger's level before any work
    assert [r.getMessage() for r in rec.records] == [
        "[queue:add] A",
        "[add] A",
        "[state] +A",
    ]
    assert [r.levelno for r in rec.records] == [logging.INFO] * 2 + [logging.WARNING]


def test_default_logger_and_submachines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncmachine")
    parent = am.Machine(SCHEMA, id="parent")
    bind_logging(parent, log_level=am.LogLevel.CHANGES)
    child = am.Machine(SCHEMA, id="child", parent=parent, log_level=am.LogLevel.CHANGES)
    assert isinstance(child.logger, StructuredLogger)
    assert child.logger is not parent.logger
    child.add1("A")
    parent.add1("B")
    got = [(r.name, r.machine_id, r.parent_id, r.getMessage()) for r in caplog.records]  # type: ignore[attr-defined]
    assert got == [
        ("asyncmachine", "child", "parent", "[state] +A"),
        ("asyncmachine", "parent", "", "[state] +B"),
    ]
    # no inheritance: the child keeps the default sink
    quiet = am.Machine(SCHEMA, id="top")
    bind_logging(quiet, "asyncmachine.other", inherit=False)
    sub = am.Machine(SCHEMA, id="sub", parent=quiet)
    assert not isinstance(sub.logger, StructuredLogger)


def test_logger_serves_its_first_machine(
    logger: tuple[logging.Logger, Records],
) -> None:
    log, rec = logger
    sl = StructuredLogger(log)
    assert sl.fields()["machine_id"] == ""
    m1 = am.Machine(SCHEMA, id="one", tracers=[sl], logger=sl, log_level=2)
    m2 = am.Machine(SCHEMA, id="two", tracers=[sl])
    m2.add1("A")
    m1.add1("B")
    assert [r.machine_id for r in rec.records] == ["one"]  # type: ignore[attr-defined]
    m1.dispose()
    assert sl.fields()["tx_id"] == ""


def test_json_formatter(logger: tuple[logging.Logger, Records]) -> None:
    log, rec = logger
    mach = am.Machine(SCHEMA, id="j")
    bind_logging(mach, log, log_level=am.LogLevel.CHANGES)
    mach.add1("A", pass_args(Req("r-1")))
    line = JsonFormatter().format(rec.records[0])
    data = json.loads(line)
    assert data["message"] == "[state] +A (req_id=r-1)"
    assert data["level"] == "INFO"
    assert data["logger"] == "test.telemetry.logging"
    assert data["time"].endswith("+00:00")
    for key in AM_FIELDS:
        assert key in data, key
    assert data["am_args"] == {"req_id": "r-1"}
    assert data["states"] == ["A"]

    only = json.loads(
        JsonFormatter(extra=False, keys=["machine_id", "nope"]).format(rec.records[0])
    )
    assert set(only) == {"time", "level", "logger", "message", "machine_id"}

    try:
        raise KeyError("k")
    except KeyError:
        log.exception("failed %s", object())
    data = json.loads(JsonFormatter().format(rec.records[-1]))
    assert "KeyError" in data["exc_info"]
    assert data["message"].startswith("failed <object")


bound_async_tests(globals(), 10)
