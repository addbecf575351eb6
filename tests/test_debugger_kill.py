"""The debugger against a real collector process: `am-dbg serve` killed with
SIGKILL mid-stream and started again on the same port, while the machines
keep running (docs/debugger.md, "When the collector dies"); and the sender's
settings and backoff.

The collector saves its session file every `SAVE_EVERY` seconds; the test
polls that file (bounded by a deadline) to see what the collector has.
"""

from __future__ import annotations

import contextlib
import functools
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import psutil
import pytest

import asyncmachine as am
from asyncmachine.debugger import (
    DebugTracer,
    Sender,
    Session,
    apply_message,
    bind_dbg,
    close_senders,
    read_session,
    sender_for,
)
from deadline import bound_async_tests

S = am.State
# generous: the bound of a wait that only a bug makes long
T = 30
SAVE_EVERY = 0.05
MAX_BACKOFF = 0.1
MIN_BACKOFF = 0.05  # the sender's first wait (_tracer.Sender._loop)


def _port() -> int:
    """A free port below Linux's and macOS's ephemeral ranges: while the
    collector is down, no outgoing connection can take it (the sender's own
    reconnects included, which could then connect to themselves)."""
    while True:
        port = random.randrange(20_000, 32_768)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


async def _start(port: int, out: Path) -> anyio.abc.Process:
    """`am-dbg serve` on 127.0.0.1:port, saving to `out`, once it listens."""
    proc = await anyio.open_process(
        [
            sys.executable,
            "-m",
            "asyncmachine.debugger._cli",
            "serve",
            "--listen-addr",
            f"127.0.0.1:{port}",
            "--output-file",
            str(out),
            "--save-every",
            str(SAVE_EVERY),
        ],
        stdin=subprocess.DEVNULL,
        stderr=None,
    )
    assert proc.stdout is not None
    buf = b""
    try:
        with anyio.fail_after(T):
            while b"listening on" not in buf:
                buf += await proc.stdout.receive()
    except BaseException:
        await _stop(proc)
        raise
    return proc


async def _stop(proc: anyio.abc.Process) -> None:
    with anyio.CancelScope(shield=True):
        if proc.returncode is None:
            proc.kill()
        await proc.aclose()


async def _stop_cleanly(proc: anyio.abc.Process, sig: signal.Signals) -> None:
    """Stop `am-dbg serve` with `sig`: exit code 0, reaped."""
    proc.send_signal(sig)
    with anyio.fail_after(T):
        assert await proc.wait() == 0
    _reaped(proc.pid)


def _schema(n: int) -> am.Schema:
    # S0 ticks at each add (multi); the others toggle in turn
    return {"S0": S(multi=True), **{f"S{i}": S() for i in range(1, n)}}


def _step(m: am.Machine, i: int) -> None:
    assert m.add1("S0") is am.Result.EXECUTED
    n = sum(name[1:].isdigit() for name in m.schema)  # Exception aside
    state = f"S{1 + i % (n - 1)}"
    toggle = m.remove1 if m.is1(state) else m.add1
    assert toggle(state) is am.Result.EXECUTED


async def _saved(out: Path, pred: Callable[[Session], bool]) -> Session:
    """The collector's session file, once `pred` holds for it."""
    with anyio.fail_after(T):
        while True:
            sess: Session | None = None
            with contextlib.suppress(OSError, ValueError):  # not saved yet
                sess = read_session(out)
            if sess is not None and pred(sess):
                return sess
            await anyio.sleep(SAVE_EVERY / 2)


async def _until(pred: Callable[[], bool]) -> None:
    """Poll the sender thread's counters (plain ints) until `pred` holds."""
    with anyio.fail_after(T):
        while not pred():  # noqa: ASYNC110 (no event to wait on)
            await anyio.sleep(0.005)


def _count(sess: Session, mid: str) -> int:
    rec = sess.machines.get(mid)
    return len(rec.transitions) if rec is not None else 0


def _check_clocks(sess: Session, own: dict[str, Session]) -> None:
    """Each transition the collector has carries the machine's own clock."""
    for mid, mine in own.items():
        want = {t.id: t.clocks for t in mine.machines[mid].transitions}
        got = sess.machines[mid].transitions
        assert got
        assert [t.clocks for t in got] == [want[t.id] for t in got]


def _history(sess: Session) -> dict[str, tuple[Any, int]]:
    # a session's transitions and drop counts (not `connected`: the last save
    # follows the collector closing its connections)
    return {mid: (m.transitions, m.dropped) for mid, m in sess.machines.items()}


def _reaped(pid: int) -> None:
    """No child process (a zombie included) of this id is left."""
    assert pid not in {p.pid for p in psutil.Process().children()}


async def test_collector_process_killed_and_restarted(tmp_path: Path) -> None:
    port = _port()
    addr = f"127.0.0.1:{port}"
    out1, out2 = tmp_path / "first.amdbg", tmp_path / "second.amdbg"
    procs: list[anyio.abc.Process] = []
    try:
        procs.append(await _start(port, out1))
        async with (
            am.Machine(_schema(3), id="k0") as m0,
            am.Machine(_schema(4), id="k1") as m1,
            # more than 32 states: clock deltas (docs/debugger.md, "Cost")
            am.Machine(_schema(40), id="k2") as m2,
        ):
            machs = [m0, m1, m2]
            own: dict[str, Session] = {}
            for m in machs:
                own[m.id] = Session()
                m.bind_tracer(DebugTracer(functools.partial(apply_message, own[m.id])))
                assert bind_dbg(m, addr) is not None
            sender = sender_for(addr)
            assert isinstance(sender, Sender)
            sender.max_backoff = MAX_BACKOFF
            sender.max_queue = 100

            # the first collector gets every transition
            for i in range(5):
                for m in machs:
                    _step(m, i)
            first = await _saved(
                out1, lambda s: all(_count(s, m.id) == 10 for m in machs)
            )
            _check_clocks(first, own)

            rounds = 0
            stop = anyio.Event()

            async def churn() -> None:
                nonlocal rounds
                while not stop.is_set():
                    for m in machs:
                        _step(m, rounds)
                    rounds += 1
                    await anyio.sleep(0.001)  # a pace, not a wait for anything

            async with anyio.create_task_group() as tg:
                tg.start_soon(churn)
                # mid-stream: the collector has some of the churn
                await _saved(out1, lambda s: all(_count(s, m.id) > 20 for m in machs))
                proc = procs[0]
                proc.send_signal(signal.SIGKILL)
                assert await proc.wait() == -signal.SIGKILL
                _reaped(proc.pid)
                ticks = [m.tick("S0") for m in machs]
                dropped = sender.dropped

                # the machines keep running; the sender notices and counts drops
                assert await anyio.to_thread.run_sync(sender.disconnected.wait, T)
                down = time.monotonic()
                attempts = sender.attempts
                at = rounds
                await _until(lambda: sender.dropped > dropped and rounds > at + 50)
                assert sender.connects == 1
                assert all(m.tick("S0") > t for m, t in zip(machs, ticks, strict=True))
                assert sender.dropped == sum(sender.dropped_by.values())

                # a new collector on the same port: the sender reconnects
                procs.append(await _start(port, out2))
                await _until(lambda: sender.connects == 2)
                tries = sender.attempts - attempts
                elapsed = time.monotonic() - down
                # paced by the backoff (0.05 s, then MAX_BACKOFF), not spinning
                assert 1 <= tries <= 3 + (elapsed - MIN_BACKOFF) / MAX_BACKOFF
                # the churn goes on arriving
                await _saved(out2, lambda s: all(_count(s, m.id) > 10 for m in machs))
                stop.set()

            # the next transitions arrive with the machines' own clocks
            assert await anyio.to_thread.run_sync(sender.flush, T)
            clocks: dict[str, list[list[int]]] = {m.id: [] for m in machs}
            for i in range(3):
                for m in machs:
                    _step(m, i)
                    clocks[m.id].append(list(m.time()))
            last = {m.id: own[m.id].machines[m.id].transitions[-1].id for m in machs}
            second = await _saved(
                out2,
                lambda s: all(
                    _count(s, mid) and s.machines[mid].transitions[-1].id == tid
                    for mid, tid in last.items()
                ),
            )
            _check_clocks(second, own)
            for m in machs:
                rec = second.machines[m.id]
                assert rec.states == list(m.state_names)
                assert [t.clocks for t in rec.transitions[-5::2]] == clocks[m.id]
                assert rec.transitions[-1].clocks == list(m.time())
                # the drop counts reached the new collector
                assert rec.dropped == sender.dropped_by.get(m.id, 0)
            assert sender.dropped > dropped
            assert sender.connects == 2

            # SIGTERM stops the collector cleanly: the session is saved
            await _stop_cleanly(procs[1], signal.SIGTERM)
            assert _history(read_session(out2)) == _history(second)
    finally:
        close_senders()
        for proc in procs:
            await _stop(proc)


async def test_collector_process_killed_while_the_machines_idle(
    tmp_path: Path,
) -> None:
    # nothing to send when the collector dies: the sender notices by itself
    # or at its next batch, which it keeps; the first transition after the
    # restart is neither lost nor a clock delta without its base
    port = _port()
    addr = f"127.0.0.1:{port}"
    out1, out2 = tmp_path / "first.amdbg", tmp_path / "second.amdbg"
    procs: list[anyio.abc.Process] = []
    try:
        procs.append(await _start(port, out1))
        async with (
            am.Machine(_schema(3), id="i0") as m0,
            am.Machine(_schema(40), id="i1") as m1,
        ):
            machs = [m0, m1]
            own: dict[str, Session] = {}
            for m in machs:
                own[m.id] = Session()
                m.bind_tracer(DebugTracer(functools.partial(apply_message, own[m.id])))
                assert bind_dbg(m, addr) is not None
            sender = sender_for(addr)
            assert isinstance(sender, Sender)
            sender.max_backoff = MAX_BACKOFF
            for i in range(3):
                for m in machs:
                    _step(m, i)
            await _saved(out1, lambda s: all(_count(s, m.id) == 6 for m in machs))
            assert await anyio.to_thread.run_sync(sender.flush, T)

            proc = procs[0]
            proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
            _reaped(proc.pid)
            # before the sender notices: its batch is kept, not lost
            _step(m0, 3)
            assert await anyio.to_thread.run_sync(sender.disconnected.wait, T)
            procs.append(await _start(port, out2))
            await _until(lambda: sender.connects == 2)

            clocks = {}
            for m in machs:
                _step(m, 4)
                clocks[m.id] = list(m.time())
            want = {m0.id: 4, m1.id: 2}
            second = await _saved(
                out2, lambda s: all(_count(s, mid) == n for mid, n in want.items())
            )
            _check_clocks(second, own)
            for m in machs:
                assert second.machines[m.id].transitions[-1].clocks == clocks[m.id]
            assert sender.dropped == 0

            # Ctrl+C (SIGINT) stops the collector cleanly too: the session is saved
            await _stop_cleanly(procs[1], signal.SIGINT)
            assert _history(read_session(out2)) == _history(second)
    finally:
        close_senders()
        for proc in procs:
            await _stop(proc)


bound_async_tests(globals(), 2 * T)


def test_sender_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="max_queue"):
        Sender("127.0.0.1:1", max_queue=0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_backoff"):
            Sender("127.0.0.1:1", max_backoff=bad)
    snd = Sender("127.0.0.1:1", max_backoff=0.5)
    try:
        with pytest.raises(ValueError, match="max_backoff"):
            snd.max_backoff = 0
        snd.max_backoff = 0.25
        assert snd.max_backoff == 0.25
    finally:
        snd.close()


def test_sender_backs_off_from_a_collector_that_closes_at_once() -> None:
    # a listener that takes each connection and closes it (a collector that
    # rejects the stream): the queued message goes back to the queue each
    # time, and the sender waits its backoff before the next try
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    accepted = 0
    done = threading.Event()

    def serve() -> None:
        nonlocal accepted
        while True:
            conn, _ = srv.accept()
            conn.close()
            if done.is_set():
                return
            accepted += 1

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    start = time.monotonic()
    snd = Sender(f"127.0.0.1:{port}", max_backoff=MAX_BACKOFF)
    try:
        snd.send({"t": "l", "m": "x", "l": 1, "x": "a log line", "ts": 0.0})
        deadline = start + T
        while snd.attempts < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        elapsed = time.monotonic() - start
        assert 6 <= snd.attempts <= 3 + elapsed / MIN_BACKOFF
        assert accepted >= 1
    finally:
        snd.close()
        done.set()
        socket.create_connection(("127.0.0.1", port)).close()  # wakes accept()
        th.join(T)
        srv.close()
