"""The core's fast path for a lone debug tracer bound to a Sender: short
records in a per-machine buffer, plan descriptions, log lines in order
(docs/debugger.md, "Cost")."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from attrs import astuple

import asyncmachine as am
from asyncmachine import _export
from asyncmachine.debugger import (
    Collector,
    DebugTracer,
    MachineRecord,
    Sender,
    Session,
    TransitionRecord,
    _collector,
    apply_message,
    bind_dbg,
    close_senders,
)

S = am.State


def _schema(extra: int) -> dict[str, am.State]:
    schema = {
        "A": S(remove=["B"]),
        "B": S(remove=["A"]),
        "Au": S(auto=True, require=["A"]),
        "Boom": S(),
        "C": S(),
        "D": S(),
        "M": S(multi=True),
    }
    # more than 32 states: the tracer's whole clocks become deltas too
    schema.update({f"X{i}": S() for i in range(extra)})
    return schema


class _Handlers:
    def BoomState(self, e: am.Event) -> None:
        raise ValueError("boom")

    def DEnter(self, e: am.Event) -> bool:
        return False


def _drive(m: am.Machine) -> None:
    for i in range(4):
        m.add1("A")  # + Au, an Auto state: its own transition
        m.add1("B")
        m.add1("C")
        m.remove1("C")
        m.add1("M")
        m.add1("M", {"n": i})  # args: no short record
        m.can_add1("B")  # a check
        assert m.add1("D") is am.Result.CANCELED  # a handler cancels
        m.remove1("C")  # not active: canceled at once
    m.add(["C", "Boom"])  # a panicking final handler rolls Boom back
    m.remove1("Exception")
    for _ in range(5):
        m.add1("A")
        m.add1("B")


def _text(line: str) -> str:
    # without the machine id in front
    return line.split("] ", 1)[1]


def _fields(t: TransitionRecord) -> tuple[Any, ...]:
    # everything but the id and the times, which differ between twins
    return (
        t.clocks,
        t.called,
        t.mutation,
        t.accepted,
        t.is_auto,
        t.is_check,
        t.is_queued,
        t.steps,
        [(e.level, _text(e.text)) for e in t.logs],
        [(e.level, _text(e.text)) for e in t.pre_logs],
        t.args,
        t.queue_tick,
        t.machine_tick,
    )


def _count(col: Collector, mid: str) -> int:
    return len(col.session.machines.get(mid, MachineRecord("", [])).transitions)


async def _until(col: Collector, pred: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not pred():
            ev = anyio.Event()
            col.on_change = lambda s, ev=ev: ev.set()
            if pred():
                break
            await ev.wait()


def _twin(mid: str, extra: int, level: am.LogLevel, own: Session | None) -> am.Machine:
    m = am.Machine(_schema(extra), id=mid, log_level=level, handlers=[_Handlers()])
    m.logger = lambda lv, text: None
    if own is not None:
        m.bind_tracer(DebugTracer(lambda msg: apply_message(own, msg)))
    return m


@pytest.mark.parametrize("extra", [0, 40])
@pytest.mark.parametrize("level", [am.LogLevel.NOTHING, am.LogLevel.CHANGES])
async def test_short_records_equal_a_twins_history(
    monkeypatch: pytest.MonkeyPatch, extra: int, level: am.LogLevel
) -> None:
    # a twin machine with a tracer that is not a Sender's (every record
    # through the tracer, whole clocks) makes the same transitions
    shorts: list[Any] = []
    real = _collector.expand_short

    def spy(raw: Any, plans: Any, tick: int) -> tuple[Any, ...]:
        shorts.append(raw)
        return real(raw, plans, tick)

    monkeypatch.setattr(_collector, "expand_short", spy)
    own = Session()
    async with Collector("127.0.0.1:0") as col:
        addr = f"127.0.0.1:{col.port}"
        try:
            ref = _twin("ref", extra, level, own)
            fast = _twin("fast", extra, level, None)
            assert bind_dbg(fast, addr) is not None
            ref.log("before anything")
            fast.log("before anything")
            _drive(ref)
            _drive(fast)
            assert fast._rec_fast is not None  # the core records itself
            # an import moves every tick outside a transition
            data = ref.export()
            imp_ref = _twin("imp-ref", extra, level, own)
            imp_fast = _twin("imp-fast", extra, level, None)
            assert bind_dbg(imp_fast, addr) is not None
            for m in (imp_ref, imp_fast):
                m.can_add1("A")
                fields = astuple(data)[1:]
                _export.import_into(m, _export.Serialized(m.id, *fields))
                assert m._rec_fast is None
                m.log("imported")
                for _ in range(3):
                    m.add1("A")
                    m.add1("B")
            want = {
                "fast": own.machines["ref"].transitions,
                "imp-fast": own.machines["imp-ref"].transitions,
            }
            await _until(
                col,
                lambda: all(_count(col, mid) == len(w) for mid, w in want.items()),
            )
        finally:
            close_senders()
    assert col.errors == 0
    for mid, w in want.items():
        got = col.session.machines[mid].transitions
        assert [_fields(t) for t in got] == [_fields(t) for t in w]
        assert len({t.id for t in got}) == len(got)
    assert list(fast.time()) == col.session.machines["fast"].transitions[-1].clocks
    # most toggles were short records
    assert len(shorts) >= 10
    logs = [e.text for t in col.session.machines["fast"].transitions for e in t.logs]
    if level >= am.LogLevel.CHANGES:
        assert "[fast] [state] +B -A -Au" in logs


def test_a_second_recorder_turns_the_fast_path_off() -> None:
    sender = Sender("127.0.0.1:1", max_backoff=0.05)  # nothing listens there
    try:
        m = am.Machine({"A": S(remove=["B"]), "B": S(remove=["A"])}, id="two")
        m.bind_tracer(DebugTracer(sender.send))
        m.add1("A")
        assert m._rec_fast is not None
        other = DebugTracer(lambda msg: None)
        m.bind_tracer(other)
        assert m._rec_fast is None
        m.add1("B")
        m.add1("A")
        assert m._rec_fast is None
        m.detach_tracer(other)
        m.add1("B")
        assert m._rec_fast is not None
    finally:
        sender.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_full_buffer_drops_and_counts_then_recovers() -> None:
    port = _closed_port()
    sender = Sender(f"127.0.0.1:{port}", max_queue=10, max_backoff=0.05)
    try:
        m = am.Machine(
            {"A": S(remove=["B"]), "B": S(remove=["A"])},
            id="full",
            log_level=am.LogLevel.CHANGES,
        )
        m.logger = lambda lv, text: None
        tracer = DebugTracer(sender.send)
        m.bind_tracer(tracer)
        for _ in range(50):
            m.add1("A")
            m.add1("B")
        ms = tracer._m["full"]
        assert len(ms.buf) <= 6 * sender.max_queue
        # the buffer holds the first records; every later one is dropped,
        # counted per machine, and its log line too
        assert sender.dropped == sum(sender.dropped_by.values())
        assert sender.dropped_by["full"] >= 80
        assert sender.dropped_logs >= 80
        async with Collector(f"127.0.0.1:{port}") as col:
            assert await anyio.to_thread.run_sync(sender.connected.wait, 10)
            assert await anyio.to_thread.run_sync(sender.flush, 10)
            for _ in range(3):
                m.add1("A")
                m.add1("B")
            await _until(
                col,
                lambda: (
                    bool(_count(col, "full"))
                    and col.session.machines["full"].transitions[-1].clocks
                    == list(m.time())
                ),
            )
            rec = col.session.machines["full"]
            assert col.errors == 0
            assert rec.dropped == sender.dropped_by["full"]
            # each record's clocks agree with what it did
            for t in rec.transitions:
                on = {s for s, c in zip(rec.states, t.clocks, strict=True) if c % 2}
                assert on == set(t.called)
    finally:
        sender.close()


def _unsent(mid: str, toggles: int) -> tuple[Sender, am.Machine, DebugTracer]:
    # a toggle machine bound to a Sender that cannot connect: its records
    # stay in its buffer
    sender = Sender(f"127.0.0.1:{_closed_port()}", max_backoff=0.05)
    m = am.Machine({"A": S(remove=["B"]), "B": S(remove=["A"])}, id=mid)
    tracer = DebugTracer(sender.send)
    m.bind_tracer(tracer)
    for _ in range(toggles):
        m.add1("A")
        m.add1("B")
    return sender, m, tracer


def test_an_unsent_batch_goes_back_before_later_records() -> None:
    sender, m, tracer = _unsent("rq", 5)
    try:
        ms = tracer._m["rq"]
        first = list(ms.buf)
        with socket.socket() as dummy:  # not connected: _take never reads it
            batch = sender._take(dummy)
        assert ("rq", first) in batch
        assert not ms.buf
        assert not ms.live  # the next record is a whole clock
        m.add1("A")
        later = list(ms.buf)
        assert later[0] is None and type(later[1][11]) is tuple
        sender._requeue(batch)
        assert ms.buf == first + later
        assert any(type(x) is dict and x.get("t") == "m" for x in sender._q)
    finally:
        sender.close()


def test_disposal_sends_the_buffered_records_first() -> None:
    sender, m, tracer = _unsent("gone", 3)
    try:
        buffered = list(tracer._m["gone"].buf)
        clock = list(m.time())
        m.dispose()
        assert "gone" not in tracer._m
        q = list(sender._q)
        i = q.index(("gone", buffered))
        assert q[i + 1] == {"t": "d", "m": "gone"}
        session = Session()
        for msg in q:
            if type(msg) is tuple:
                apply_message(session, {"t": "Y", "m": msg[0], "r": msg[1]})
            else:
                apply_message(session, msg)
        assert session.machines["gone"].transitions[-1].clocks == clock
        assert len(session.machines["gone"].transitions) == 6
    finally:
        sender.close()


def test_short_records_refused_without_their_plan() -> None:
    session = Session()
    apply_message(
        session,
        {
            "t": "m",
            "id": "x",
            "states": ["A"],
            "schema": {},
            "groups": {},
            "parent": "",
            "tags": [],
        },
    )
    with pytest.raises(ValueError, match="undescribed plan"):
        apply_message(session, {"t": "Y", "m": "x", "r": [3, 1.0, 1]})
    with pytest.raises(ValueError, match="in threes"):
        apply_message(session, {"t": "Y", "m": "x", "r": [3, 1.0]})
