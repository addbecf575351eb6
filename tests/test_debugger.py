"""The debugger: transition steps, the debug stream, the collector, session
files and the headless views (docs/debugger.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import asyncmachine as am
from asyncmachine.debugger import (
    Collector,
    DebugTracer,
    MachineRecord,
    Sender,
    Session,
    Step,
    StepType,
    TransitionRecord,
    _cli,
    apply_message,
    bind_dbg,
    close_senders,
    list_clients,
    mermaid,
    parse_addr,
    read_session,
    tx_string,
    write_session,
)

S = am.State
T = StepType


def _traced(schema: dict[str, am.State], **kw: Any) -> tuple[am.Machine, Session]:
    session = Session()
    mach = am.Machine(schema, id="m", **kw)
    mach.bind_tracer(DebugTracer(lambda msg: apply_message(session, msg)))
    return mach, session


def _steps(session: Session) -> list[tuple[str, str, str, str]]:
    tx = session.machines["m"].transitions[-1]
    return [(s.type.name, s.state, s.source, s.data) for s in tx.steps]


# ------------------------------------------------------------------ steps


def test_steps_add_chain() -> None:
    m, sess = _traced({"A": S(add=["B"]), "B": S(add=["C"]), "C": S()})
    m.add1("A")
    assert _steps(sess) == [
        ("REQUESTED", "A", "", ""),
        ("IMPLIED", "B", "A", ""),
        ("IMPLIED", "C", "B", ""),
        # enter order: the implied states' handlers run first
        ("SET", "C", "", ""),
        ("SET", "A", "", ""),
        ("SET", "B", "", ""),
    ]


def test_steps_remove_relation() -> None:
    m, sess = _traced({"A": S(), "B": S(remove=["A"])})
    m.add1("A")
    m.add1("B")
    assert _steps(sess) == [
        ("REQUESTED", "B", "", ""),
        ("REMOVED", "A", "B", ""),
        ("REMOVE", "A", "", ""),
        ("SET", "B", "", ""),
    ]
    m.remove1("B")
    assert _steps(sess) == [("REQUESTED", "B", "", ""), ("REMOVE", "B", "", "")]


def test_steps_require_blocking() -> None:
    m, sess = _traced({"A": S(require=["B"]), "B": S(), "C": S()})
    assert m.add(["A", "C"]) is am.Result.CANCELED
    assert _steps(sess) == [
        ("REQUESTED", "A", "", ""),
        ("REQUESTED", "C", "", ""),
        ("BLOCKED", "A", "B", ""),
        ("CANCEL", "A", "", "rejected"),
    ]
    assert not sess.machines["m"].transitions[-1].accepted


def test_steps_after_ordering() -> None:
    m, sess = _traced({"A": S(after=["B"]), "B": S()})
    m.add(["A", "B"])
    assert _steps(sess) == [
        ("REQUESTED", "A", "", ""),
        ("REQUESTED", "B", "", ""),
        ("AFTER", "A", "B", ""),
        ("SET", "B", "", ""),
        ("SET", "A", "", ""),
    ]


def test_steps_negotiation_cancel_and_handlers() -> None:
    class H:
        def AEnter(self, e: am.Event) -> bool:
            return False

        def BState(self, e: am.Event) -> None:
            pass

    m, sess = _traced({"A": S(), "B": S()}, handlers=[H()])
    assert m.add1("A") is am.Result.CANCELED
    assert _steps(sess) == [
        ("REQUESTED", "A", "", ""),
        ("HANDLER", "A", "", "AEnter"),
        ("CANCEL", "A", "", "AEnter"),
    ]
    m.add1("B")
    assert _steps(sess) == [
        ("REQUESTED", "B", "", ""),
        ("SET", "B", "", ""),
        ("HANDLER", "B", "", "BState"),
    ] or _steps(sess) == [
        ("REQUESTED", "B", "", ""),
        ("HANDLER", "B", "", "BState"),
        ("SET", "B", "", ""),
    ]


def test_steps_cached_with_the_plan() -> None:
    m, sess = _traced({"A": S(add=["B"]), "B": S()})
    m.add1("A")
    m.remove(["A", "B"])
    m.add1("A")
    txs = sess.machines["m"].transitions
    assert txs[0].steps == txs[2].steps
    # the same plan object served both transitions, with its steps
    assert any(p.steps is not None for p in m._plans.values())


def test_log_lines_attached() -> None:
    m, sess = _traced({"A": S(), "B": S()}, log_level=am.LogLevel.OPS)
    m.logger = lambda level, text: None
    # re-bind so the tracer wraps the new sink
    tr = DebugTracer(lambda msg: apply_message(sess, msg))
    sess2 = Session()
    tr.emit = lambda msg: apply_message(sess2, msg)
    m.bind_tracer(tr)
    m.log("between")
    m.add1("A")
    tx = sess2.machines["m"].transitions[-1]
    assert tx.pre_logs[0].text == "[m] [exter] between"
    assert "[m] [add] A" in [e.text for e in tx.logs]
    assert all(e.level <= am.LogLevel.OPS for e in tx.logs)


def test_args_with_log_tags() -> None:
    @am.args_class
    class Args:
        user: str = am.arg(log="user")
        secret: str = ""

    m, sess = _traced({"A": S()})
    m.add1("A", am.pass_args(Args(user="ann", secret="x")))
    assert sess.machines["m"].transitions[-1].args == {"user": "ann"}


def test_steps_cost_nothing_unasked() -> None:
    m = am.Machine({"Unasked1": S(add=["Unasked2"]), "Unasked2": S()})
    m.add1("Unasked1")
    assert m._plans
    assert all(p.steps is None for p in m._plans.values())


# ------------------------------------------------------------------ model


def test_session_memory_cap_drops_oldest() -> None:
    sess = Session(max_memory=2000)
    sess.add_machine(MachineRecord(id="a", states=["A"]))
    for i in range(20):
        sess.add_transition("a", TransitionRecord(str(i), [i], ["A"], "add", True))
    txs = sess.transitions("a")
    assert sess.memory <= 2000
    assert sess.dropped == 20 - len(txs) > 0
    assert sess.machines["a"].dropped_cap == sess.dropped
    assert txs[-1].id == "19"
    assert [int(t.id) for t in txs] == list(range(20 - len(txs), 20))


def test_bad_messages_refused() -> None:
    sess = Session()
    with pytest.raises(ValueError, match="unknown machine"):
        apply_message(sess, {"t": "x", "m": "nope", "x": {}})
    with pytest.raises(ValueError, match="version"):
        apply_message(sess, {"t": "h", "v": 999})
    with pytest.raises(ValueError, match="unknown debug message"):
        apply_message(sess, {"t": "?"})
    with pytest.raises(ValueError, match="host:port"):
        parse_addr("nope")
    assert parse_addr("1") == ("localhost", 6831)


def test_bind_dbg_without_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AM_DBG_ADDR", raising=False)
    assert bind_dbg(am.Machine({"A": S()})) is None


# --------------------------------------------------------- session files


def _sample() -> Session:
    m, sess = _traced(
        {"A": S(add=["B"]), "B": S(), "C": S(require=["A"])},
        log_level=am.LogLevel.OPS,
    )
    m.logger = lambda level, text: None
    m.add1("A")
    m.add1("C")
    m.remove1("A")
    return sess


def test_session_round_trip(tmp_path: Path) -> None:
    sess = _sample()
    sess.machines["m"].dropped = 3
    path = tmp_path / "s.amdbg"
    write_session(path, sess)
    back = read_session(path)
    assert back.machines == sess.machines
    assert back.machines["m"].transitions[0].steps[0] == Step(T.REQUESTED, "A")


def test_session_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.amdbg"
    bad.write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an am-dbg session"):
        read_session(bad)
    good = tmp_path / "good.amdbg"
    write_session(good, _sample())
    data = bytearray(good.read_bytes())
    data[6] = 9
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="version 9"):
        read_session(bad)
    bad.write_bytes(good.read_bytes()[:20])
    with pytest.raises(ValueError, match="damaged"):
        read_session(bad)


# ------------------------------------------------------------ views + cli


def test_tx_string_go_format() -> None:
    sess = _sample()
    tx = sess.machines["m"].transitions[0]
    text = tx_string("m", tx)
    lines = text.splitlines()
    assert lines[0] == f"mach://m/{tx.id}"
    assert lines[1].endswith("Z") and lines[2] == ""
    assert lines[3:] == [
        "[add] A",
        "- called **A**",
        "- **A** add **B**",
        "- activate **B**",
        "- activate **A**",
    ]
    blocked = Step(T.BLOCKED, "C", "A")
    assert tx_string(
        "m", TransitionRecord("x", [], ["C"], "add", False, steps=[blocked])
    ).endswith("- **C** require **A**\n")


def test_mermaid_and_clients() -> None:
    sess = _sample()
    mach = sess.machines["m"]
    out = mermaid(mach, mach.transitions[0])
    assert out.startswith("flowchart LR\n")
    assert "s0 -->|add| s1" in out
    assert 's0["A (activate)"]' in out
    assert "class s0 active" in out
    assert list_clients(sess).startswith("m states=4 transitions=3 dropped=0")


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.amdbg"
    write_session(path, _sample())
    assert _cli.main(["clients", str(path)]) == 0
    assert capsys.readouterr().out.startswith("m states=4")
    assert _cli.main(["tx", str(path), "m", "--index", "0"]) == 0
    assert "- **A** add **B**" in capsys.readouterr().out
    assert _cli.main(["mermaid", str(path), "m", "--index", "-1"]) == 0
    assert capsys.readouterr().out.startswith("flowchart LR")
    assert _cli.main(["tx", str(path), "nope"]) == 1
    assert "no machine 'nope'" in capsys.readouterr().err
    assert _cli.main(["clients", str(tmp_path / "missing")]) == 1


def test_cli_without_tui(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib

    real = importlib.import_module

    def fake(name: str, *a: Any) -> Any:
        if name == "asyncmachine.debugger.tui":
            raise ImportError(name)
        return real(name, *a)

    monkeypatch.setattr(_cli.importlib, "import_module", fake)
    assert _cli.main([]) == 2
    assert "TUI is not available" in capsys.readouterr().err


# --------------------------------------------------------------- network


async def _until(col: Collector, pred: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not pred():
            ev = anyio.Event()
            col.on_change = lambda s, ev=ev: ev.set()
            if pred():
                break
            await ev.wait()


async def _wait_thread_event(ev: threading.Event) -> None:
    assert await anyio.to_thread.run_sync(ev.wait, 10)


class _Gate:
    """Cancels every other transition to C."""

    def __init__(self) -> None:
        self.n = 0

    def CEnter(self, e: am.Event) -> bool:
        self.n += 1
        return self.n % 2 == 0


async def test_collector_matches_each_machines_history() -> None:
    async with Collector("127.0.0.1:0") as col:
        addr = f"127.0.0.1:{col.port}"
        machs = []
        local: dict[str, Session] = {}
        clocks: dict[str, list[tuple[int, ...]]] = {}
        try:
            for i in range(3):
                m = am.Machine(
                    {"A": S(add=["B"]), "B": S(), "C": S(remove=["A"])},
                    id=f"m{i}",
                    log_level=am.LogLevel.OPS,
                )
                m.logger = lambda level, text: None
                m.bind_handlers(_Gate())
                own = Session()
                m.bind_tracer(DebugTracer(lambda msg, own=own: apply_message(own, msg)))
                assert bind_dbg(m, addr) is not None
                machs.append(m)
                local[m.id] = own
                clocks[m.id] = []
            results: dict[str, list[bool]] = {m.id: [] for m in machs}
            for _ in range(5):
                for m in machs:
                    for method, state in (
                        (m.add1, "A"),
                        (m.add1, "C"),
                        (m.remove1, "C"),
                    ):
                        res = method(state)
                        results[m.id].append(res is not am.Result.CANCELED)
                        clocks[m.id].append(m.time())
            await _until(
                col,
                lambda: all(
                    len(
                        col.session.machines.get(
                            m.id, MachineRecord("", [])
                        ).transitions
                    )
                    == 15
                    for m in machs
                ),
            )
        finally:
            close_senders()
        for m in machs:
            rec = col.session.machines[m.id]
            own = local[m.id].machines[m.id]
            assert rec.states == list(m.state_names)
            assert [tuple(t.clocks) for t in rec.transitions] == clocks[m.id]
            assert [t.steps for t in rec.transitions] == [
                t.steps for t in own.transitions
            ]
            assert [[e.text for e in t.logs] for t in rec.transitions] == [
                [e.text for e in t.logs] for t in own.transitions
            ]
            assert [t.accepted for t in rec.transitions] == results[m.id]
            # transitions that ran are never queued-mutation records
            assert not any(t.is_queued for t in rec.transitions)
            assert False in results[m.id]  # the gate canceled some
            canceled = next(t for t in rec.transitions if not t.accepted)
            assert canceled.steps[-2:] == [
                Step(T.HANDLER, "C", "", "CEnter"),
                Step(T.CANCEL, "C", "", "CEnter"),
            ]
            assert rec.transitions[0].logs[0].text.endswith("[add] A")
            assert rec.dropped == 0


async def test_collector_restart_mid_stream() -> None:
    col = Collector("127.0.0.1:0")
    sender: Sender | None = None
    try:
        async with col:
            port = col.port
            sender = Sender(f"127.0.0.1:{port}", max_queue=5, max_backoff=0.05)
            m = am.Machine({"A": S(multi=True)}, id="rm")
            m.bind_tracer(DebugTracer(sender.send))
            m.add1("A")
            await _until(
                col,
                lambda: (
                    "rm" in col.session.machines
                    and len(col.session.machines["rm"].transitions) == 1
                ),
            )
        # collector gone: the machine keeps running, the sender drops and counts
        m.add1("A")
        await _wait_thread_event(sender.disconnected)
        for _ in range(20):
            m.add1("A")
        assert m.tick("A") == 43  # multi: 1, then +2 per add
        # the machine's buffer holds 2 * max_queue entries (records and plan
        # descriptions): the rest is dropped
        assert sender.dropped >= 10
        col2 = Collector(f"127.0.0.1:{port}")
        async with col2:
            await _wait_thread_event(sender.connected)
            # the backlog (a full queue) goes first; then room for the next
            assert await anyio.to_thread.run_sync(sender.flush, 10)
            m.add1("A")
            want = [m.tick("A"), 0]
            await _until(
                col2,
                lambda: (
                    "rm" in col2.session.machines
                    and bool(col2.session.machines["rm"].transitions)
                    and col2.session.machines["rm"].transitions[-1].clocks == want
                ),
            )
            rec = col2.session.machines["rm"]
            assert rec.dropped == sender.dropped_by["rm"] == sender.dropped
            assert rec.transitions[-1].clocks == [m.tick("A"), 0]
    finally:
        if sender is not None:
            sender.close()


async def test_network_machine_reports_its_clock_pushes() -> None:
    from asyncmachine import rpc

    schema = am.schema_merge(
        rpc.SOURCE_SCHEMA,
        {"Alpha": S(), "Beta": S(require=["Alpha"]), "Tick": S(multi=True)},
    )
    async with Collector("127.0.0.1:0") as col:
        addr = f"127.0.0.1:{col.port}"
        try:
            async with (
                am.Machine(schema, id="src") as src,
                rpc.Server(src) as server,
                rpc.Client(
                    "127.0.0.1", server.port, schema, id="c1", max_backoff=0.05
                ) as client,
            ):
                net = client.net_mach
                await net.when_connected()
                tracer = bind_dbg(net, addr, groups={"AB": ["Alpha", "Beta"]})
                assert tracer is not None
                seen: list[tuple[int, ...]] = []
                for call in (
                    lambda: net.add1("Alpha"),
                    lambda: net.add(["Beta", "Tick"]),
                    lambda: net.add1("Tick"),
                    lambda: net.remove1("Alpha"),
                ):
                    assert await call() is am.Result.EXECUTED
                    seen.append(tuple(net.time()))
                await _until(
                    col,
                    lambda: (
                        net.id in col.session.machines
                        and len(col.session.machines[net.id].transitions) == 4
                    ),
                )
                rec = col.session.machines[net.id]
                assert rec.states == list(net.state_names)
                assert rec.groups == {"AB": ["Alpha", "Beta"]}
                assert [tuple(t.clocks) for t in rec.transitions] == seen
                assert seen[-1] == tuple(src.time())
                last = rec.transitions[-1]
                assert last.mutation == "set" and last.called == net.active_states
                assert [(s.type, s.state) for s in last.steps] == [
                    (T.REMOVE, "Alpha"),
                    (T.REMOVE, "Beta"),
                ]
                assert rec.transitions[1].steps[-2:] == [
                    Step(T.SET, "Beta"),
                    Step(T.SET, "Tick"),
                ]
        finally:
            close_senders()


def test_groups_in_the_machine_record() -> None:
    from asyncmachine.states import ConnectedGroups, ConnectedStates

    schema = {s: S() for s in ConnectedGroups.Connected}
    session = Session()
    mach = am.Machine(schema, id="g")
    tracer = DebugTracer(
        lambda msg: apply_message(session, msg), groups=ConnectedGroups
    )
    mach.bind_tracer(tracer)
    assert session.machines["g"].groups == {
        "Connected": list(ConnectedGroups.Connected)
    }
    # a group naming a state the machine lacks is left out
    other = am.Machine({ConnectedStates.Connected: S()}, id="h")
    other.bind_tracer(tracer)
    assert session.machines["h"].groups == {}
    # one tracer, two machines (and a child): each transition lands on its own
    child = am.Machine({"C": S()}, id="child", parent=other)
    mach.add1(ConnectedStates.Connecting)
    other.add1(ConnectedStates.Connected)
    child.add1("C")
    assert session.machines["child"].parent_id == "h"
    for mid, state in (("g", "Connecting"), ("h", "Connected"), ("child", "C")):
        (tx,) = session.machines[mid].transitions
        assert tx.called == [state] and tx.accepted
    with pytest.raises(TypeError, match="groups must be"):
        DebugTracer(print, groups=["A"])
    with pytest.raises(TypeError, match="group 'x'"):
        DebugTracer(print, groups={"x": "AB"})


async def test_clock_deltas_of_a_big_machine_survive_a_restart() -> None:
    # more than _DELTA_MIN states: a Sender gets clock deltas
    schema = {f"S{i}": S(remove=[f"S{i + 1}"] if i < 39 else []) for i in range(40)}
    schema["S0"] = S(multi=True, remove=["S1"])

    class Gate:
        def S5Enter(self, e: am.Event) -> bool:
            return False

    m = am.Machine(schema, id="big")
    m.bind_handlers(Gate())
    own = Session()
    m.bind_tracer(DebugTracer(lambda msg: apply_message(own, msg)))

    def run(n: int) -> None:
        for i in range(n):
            m.add1(f"S{i % 8}")
            m.can_add1("S3")
            m.remove1(f"S{(i + 3) % 8}")

    def check(col: Collector) -> None:
        want = {t.id: t.clocks for t in own.machines["big"].transitions}
        got = col.session.machines["big"].transitions
        assert got
        assert all(t.clocks == want[t.id] for t in got)

    col = Collector("127.0.0.1:0")
    sender: Sender | None = None
    try:
        async with col:
            port = col.port
            sender = Sender(f"127.0.0.1:{port}", max_queue=8, max_backoff=0.05)
            m.bind_tracer(DebugTracer(sender.send))
            run(2)
            await _until(
                col,
                lambda: (
                    "big" in col.session.machines
                    and len(col.session.machines["big"].transitions)
                    == len(own.machines["big"].transitions)
                ),
            )
            check(col)
        run(1)  # the collector is gone: this batch waits (its deltas dropped)
        await _wait_thread_event(sender.disconnected)
        run(8)  # a full buffer (2 * max_queue entries): deltas dropped
        assert sender.dropped >= 3
        col2 = Collector(f"127.0.0.1:{port}")
        async with col2:
            await _wait_thread_event(sender.connected)
            assert await anyio.to_thread.run_sync(sender.flush, 10)
            dropped = sender.dropped
            for _ in range(3):  # within the queue's room
                run(1)
                assert await anyio.to_thread.run_sync(sender.flush, 10)
            assert sender.dropped == dropped
            last = own.machines["big"].transitions[-1].id
            await _until(
                col2,
                lambda: (
                    "big" in col2.session.machines
                    and bool(col2.session.machines["big"].transitions)
                    and col2.session.machines["big"].transitions[-1].id == last
                ),
            )
            check(col2)
            assert col2.errors == 0
            assert m.tick("S5") == 0  # the gate: canceled transitions too
    finally:
        if sender is not None:
            sender.close()


async def test_relative_clock_deltas_match_the_machines_clocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # transitions without a Transition send their plan's deltas (docs/debugger.md,
    # "Cost"); a panic's rollback, a canceled negotiation, Auto states, checks
    # and an import must still leave the collector with the machine's clocks
    from attrs import astuple as attrs_astuple

    from asyncmachine import _export
    from asyncmachine.debugger import _collector

    used: list[bytes] = []
    real = _collector.apply_deltas

    def spy(clocks: list[int], blob: bytes) -> None:
        used.append(blob)
        real(clocks, blob)

    monkeypatch.setattr(_collector, "apply_deltas", spy)
    schema = {
        "A": S(remove=["B"]),
        "B": S(remove=["A"]),
        "Au": S(auto=True, require=["A"]),
        "Boom": S(),
        "C": S(),
        "D": S(),
        "M": S(multi=True),
    }

    class H:
        def BoomState(self, e: am.Event) -> None:
            raise ValueError("boom")

        def DEnter(self, e: am.Event) -> bool:
            return False

    async with Collector("127.0.0.1:0") as col:
        addr = f"127.0.0.1:{col.port}"
        try:
            m = am.Machine(schema, id="rel", handlers=[H()])
            own = Session()  # not a Sender: whole clocks, read from the machine
            m.bind_tracer(DebugTracer(lambda msg: apply_message(own, msg)))
            assert bind_dbg(m, addr) is not None
            m.add1("A")  # + Au, an Auto state (a re-resolved plan)
            m.add1("B")
            m.add(["C", "Boom"])  # a panicking final handler: Boom rolled back
            assert m.is_err() and m.is1("C") and not m.is1("Boom")
            m.remove1("Exception")
            m.add1("A")
            assert m.add1("D") is am.Result.CANCELED  # canceled negotiation
            m.can_add1("B")  # a check
            m.add1("M")
            m.add1("M")
            m.remove(["C", "M"])
            # a fresh machine: one record, then an import moves every tick
            m2 = am.Machine(schema, id="imp")
            m2.bind_tracer(DebugTracer(lambda msg: apply_message(own, msg)))
            assert bind_dbg(m2, addr) is not None
            m2.can_add1("A")
            data = m.export()
            _export.import_into(m2, _export.Serialized("imp", *attrs_astuple(data)[1:]))
            m2.add1("B")
            m2.add1("C")
            want = {
                mid: [(t.id, t.clocks) for t in own.machines[mid].transitions]
                for mid in ("rel", "imp")
            }
            await _until(
                col,
                lambda: all(
                    len(
                        col.session.machines.get(mid, MachineRecord("", [])).transitions
                    )
                    == len(want[mid])
                    for mid in want
                ),
            )
        finally:
            close_senders()
    for mid in want:
        got = [(t.id, t.clocks) for t in col.session.machines[mid].transitions]
        assert got == want[mid]
    assert want["rel"][-1][1] == list(m.time())
    assert want["imp"][-1][1] == list(m2.time())
    assert any(blob != b"\x90" for blob in used)  # deltas were sent and applied
    rel = col.session.machines["rel"].transitions
    assert [t.is_auto for t in rel[:2]] == [False, True]
    assert not rel[2].accepted or not rel[3].accepted  # the panic's transition
