"""Benchmark the am-dbg debug tracer and collector (docs/debugger.md).

1. toggle: A and B remove each other; alternate ``add1("A")`` / ``add1("B")``
   on a machine without a tracer (the peer) and on one with `bind_dbg`
   (steps on; log lines on at LogLevel.CHANGES, against a peer logging at
   the same level into a null sink), in alternating rounds, best of each.
   Two receivers in a subprocess: a sink that reads and discards the
   stream (the collector keeps up by construction: the cost on the
   machine's side alone), and the real collector (`am-dbg serve`; drops
   show when it cannot keep up with a tight loop). Prints bound / unbound.
2. fan-in: 100 machines x 100 transitions/s for 10 s into one collector
   subprocess; prints the transitions received, the drops and the
   collector's CPU time.
3. ``--breakdown``: where a bound toggle's CPU goes, in one process, in
   alternating rounds (best of each): unbound; a no-op transition tracer
   (the core builds a `Transition`); a no-op recorder (the core's share of
   the debug tracer, `Tracer._record`, log lines off); the debug tracer's
   hooks into a queue nobody sends; and the whole, with the sender thread,
   to a sink.
4. ``--base DIR``: the unbound toggle (no tracer) of this checkout against
   the one of another checkout's ``src`` (e.g. a ``git worktree`` of the
   commit before the debugger), in alternating subprocesses, best of each.

Usage::

    python benchmarks/bench_debugger.py           # full run (about 40 s)
    python benchmarks/bench_debugger.py --quick   # smoke run, a few seconds
    python benchmarks/bench_debugger.py --breakdown --rounds 5
    python benchmarks/bench_debugger.py --base /tmp/base --rounds 5
"""

from __future__ import annotations

import argparse
import collections
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncmachine as am
from asyncmachine.debugger import (
    DebugTracer,
    Sender,
    bind_dbg,
    close_senders,
    read_session,
    sender_for,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SINK = """
import socket, sys, threading
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
def drain(c):
    while c.recv(1 << 20):
        pass
while True:
    c, _ = s.accept()
    threading.Thread(target=drain, args=(c,), daemon=True).start()
"""


def _sink() -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen([sys.executable, "-c", _SINK], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _collector(port: int, out: Path, duration: float) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "asyncmachine.debugger._cli",
            "serve",
            "--listen-addr",
            f"127.0.0.1:{port}",
            "--output-file",
            str(out),
            "--duration",
            str(duration),
            "--save-every",
            str(duration),
        ],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # "listening on ..."
    return proc


def _cpu_now(pid: int) -> float:
    """A live process's CPU seconds (user + system), from /proc (0 if none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait(proc: subprocess.Popen[bytes]) -> float:
    """Wait for the collector; its CPU seconds (user + system)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def _toggle(level: am.LogLevel, others: int = 0) -> am.Machine:
    schema = {"A": am.State(remove=["B"]), "B": am.State(remove=["A"])}
    schema.update({f"X{i}": am.State() for i in range(others)})
    m = am.Machine(schema, log_level=level)
    m.logger = lambda lv, text: None
    return m


def _ns_per_op(
    m: am.Machine,
    n: int,
    sender: Sender | None = None,
    drain: Callable[[], None] | None = None,
) -> tuple[float, float]:
    """Wall and process-CPU ns per op (CPU: every thread, until sent);
    `drain` is called after every 1,000 ops."""
    a, b = m.add1, m.add1
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n // 1000):
        for _ in range(500):
            a("A")
            b("B")
        if drain is not None:
            drain()
    wall = time.perf_counter() - t0
    if sender is not None:
        sender.flush(60)
    cpu = time.process_time() - c0
    return wall / n * 1e9, cpu / n * 1e9


def _rounds(
    m_un: am.Machine, m_b: am.Machine, n: int, rounds: int, sender: Sender
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Best (wall, CPU) of unbound and bound, in alternating rounds."""
    base = bound = (float("inf"), float("inf"))
    for _ in range(rounds):
        w, c = _ns_per_op(m_un, n)
        base = (min(base[0], w), min(base[1], c))
        w, c = _ns_per_op(m_b, n, sender)
        bound = (min(bound[0], w), min(bound[1], c))
    return base, bound


def bench_toggle(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        sink, sink_port = _sink()
        port = _free_port()
        col = _collector(port, Path(d) / "s.amdbg", 3600)
        # the sink keeps up on average, but this container stalls now
        # and then: a deep queue rides the stalls out (nothing dropped,
        # all sending counted); the collector gets bind_dbg's default
        deep = Sender(f"127.0.0.1:{sink_port}", max_queue=2_000_000)
        try:
            for name, p in (("sink", sink_port), ("collector", port)):
                addr = f"127.0.0.1:{p}"
                for level, others in (
                    (am.LogLevel.NOTHING, 0),
                    (am.LogLevel.CHANGES, 0),
                    (am.LogLevel.NOTHING, 1000),
                ):
                    if others and name != "sink":
                        continue
                    m = _toggle(level, others)
                    if name == "sink":
                        sender: Sender | None = deep
                        m.bind_tracer(DebugTracer(deep.send))
                    else:
                        bind_dbg(m, addr)
                        sender = sender_for(addr)
                    assert sender is not None
                    sender.connected.wait(10)
                    dropped0, sent0 = sender.dropped, sender.sent
                    base, bound = _rounds(_toggle(level, others), m, n, rounds, sender)
                    sender.flush(60)
                    print(
                        f"toggle{f' +{others} states' if others else ''} -> "
                        f"{name:9}, log level {level.name:8}: "
                        f"wall {base[0]:6.0f} / {bound[0]:6.0f} ns/op "
                        f"({bound[0] / base[0]:4.2f}x), "
                        f"CPU {base[1]:6.0f} / {bound[1]:6.0f} ns/op "
                        f"({bound[1] / base[1]:4.2f}x) unbound / bound; "
                        f"sent {sender.sent - sent0}, "
                        f"dropped {sender.dropped - dropped0}"
                    )
        finally:
            deep.close()
            close_senders()
            sink.kill()
            sink.wait()
            col.terminate()
            _wait(col)


class _NoopTracer(am.Tracer):
    def transition_end(self, transition: am.Transition) -> None:
        pass


class _NoopRecorder(DebugTracer):
    def _record(self, *args: Any, **kwargs: Any) -> None:
        pass


class _Discard(collections.deque[Any]):
    """A sender queue that keeps nothing (and never wakes a thread)."""

    def append(self, item: Any) -> None:
        pass


IDLE = ("no-op recorder", "debug hooks")


def bench_breakdown(n: int, rounds: int) -> None:
    sink, sink_port = _sink()
    deep = Sender(f"127.0.0.1:{sink_port}", max_queue=2_000_000)
    # a Sender with no thread running, whose queue keeps nothing and whose
    # machines' buffers are emptied in the loop (drain_idle)
    idle = Sender.__new__(Sender)
    idle._q, idle.max_queue, idle._idle, idle._skip = _Discard(), 1 << 40, False, set()
    idle._machines, idle._lock = {}, threading.Lock()
    idle._gen, idle._ms = 0, {}

    def drain_idle() -> None:
        for ms in idle._ms.values():
            del ms.buf[:]

    try:
        deep.connected.wait(10)
        for level in (am.LogLevel.NOTHING, am.LogLevel.CHANGES):
            kinds: dict[str, Callable[[am.Machine], Sender | None]] = {
                "unbound": lambda m: None,
                "no-op tx tracer": lambda m: m.bind_tracer(_NoopTracer()),
                "no-op recorder": lambda m: m.bind_tracer(
                    _NoopRecorder(idle.send, logs=False)
                ),
                "debug hooks": lambda m: m.bind_tracer(DebugTracer(idle.send)),
                "+ sender": lambda m: (m.bind_tracer(DebugTracer(deep.send)), deep)[1],
            }
            best = dict.fromkeys(kinds, float("inf"))
            for _ in range(rounds):
                for name, bind in kinds.items():
                    m = _toggle(level)
                    sender = bind(m)
                    drain = drain_idle if name in IDLE else None
                    cpu = _ns_per_op(m, n, sender, drain)[1]
                    best[name] = min(best[name], cpu)
            base = best["unbound"]
            print(
                f"breakdown, log level {level.name:8} (CPU ns/op): "
                + ", ".join(f"{k} {v:.0f} ({v / base:.2f}x)" for k, v in best.items())
            )
    finally:
        deep.close()
        sink.kill()
        sink.wait()


_UNBOUND = """
import sys, time
import asyncmachine as am
m = am.Machine({"A": am.State(remove=["B"]), "B": am.State(remove=["A"])})
a = m.add1
n = int(sys.argv[1])
best = cpu = float("inf")
for _ in range(3):
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n // 2):
        a("A")
        a("B")
    best = min(best, (time.perf_counter() - t0) / n * 1e9)
    cpu = min(cpu, (time.process_time() - c0) / n * 1e9)
print(am.__file__, best, cpu)
"""


def bench_vs_base(base_dir: str, n: int, rounds: int) -> None:
    """The unbound toggle here and in `base_dir`'s src, alternating."""
    src = str(Path(base_dir) / "src")
    here = str(Path(__file__).resolve().parents[1] / "src")
    best = {"here": float("inf"), "base": float("inf")}
    cpu = dict(best)
    for _ in range(rounds):
        for name, path in (("base", src), ("here", here)):
            env = dict(os.environ, PYTHONPATH=path)
            out = subprocess.run(
                [sys.executable, "-c", _UNBOUND, str(n)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            assert out[0].startswith(path), out
            best[name] = min(best[name], float(out[1]))
            cpu[name] = min(cpu[name], float(out[2]))
    print(
        f"unbound toggle: here {best['here']:.0f} ns/op, base ({base_dir}) "
        f"{best['base']:.0f} ns/op, ratio {best['here'] / best['base']:.3f}x; "
        f"CPU {cpu['here']:.0f} / {cpu['base']:.0f} ns/op, "
        f"ratio {cpu['here'] / cpu['base']:.3f}x"
    )


def bench_fan_in(machines: int, rate: float, duration: float) -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "s.amdbg"
        proc = _collector(port, out, duration + 3)
        try:
            ms = [_toggle(am.LogLevel.NOTHING) for _ in range(machines)]
            for m in ms:
                bind_dbg(m, f"127.0.0.1:{port}")
            first = sender_for(f"127.0.0.1:{port}")
            assert first is not None
            first.connected.wait(10)
            interval = 1 / rate
            cpu0 = _cpu_now(proc.pid)
            t0 = time.perf_counter()
            sent = 0
            tick = 0
            while (now := time.perf_counter() - t0) < duration:
                state = "A" if tick % 2 == 0 else "B"
                for m in ms:
                    m.add1(state)
                sent += len(ms)
                tick += 1
                wait = tick * interval - (time.perf_counter() - t0)
                if wait > 0:
                    time.sleep(wait)
            sender = sender_for(f"127.0.0.1:{port}")
            assert sender is not None
            sender.flush(30)
            time.sleep(0.5)  # the collector applies the last batch
            collecting = _cpu_now(proc.pid) - cpu0
            dropped = sender.dropped
            close_senders()
        finally:
            cpu = _wait(proc)
        sess = read_session(out)
        got = sum(len(m.transitions) for m in sess.machines.values())
        print(
            f"fan-in: {machines} machines x {rate:.0f} tx/s x {now:.1f} s: "
            f"sent {sent}, collected {got}, dropped {dropped}; collector CPU "
            f"while collecting {collecting:.2f} s "
            f"({collecting / now * 100:.0f}% of one core, "
            f"{collecting / max(got, 1) * 1e6:.0f} us/transition), "
            f"{cpu:.2f} s in all (start-up and saving the session included)"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few-second smoke run")
    p.add_argument("--base", help="compare the unbound toggle with DIR/src only")
    p.add_argument("--breakdown", action="store_true", help="where the CPU goes")
    p.add_argument("--rounds", type=int, help="alternating rounds (best of)")
    args = p.parse_args()
    if args.base:
        bench_vs_base(args.base, 200_000, args.rounds or 5)
    elif args.breakdown:
        bench_breakdown(20_000 if args.quick else 100_000, args.rounds or 5)
    elif args.quick:
        bench_toggle(10_000, args.rounds or 2)
        bench_fan_in(20, 50, 1.0)
    else:
        bench_toggle(100_000, args.rounds or 5)
        bench_fan_in(100, 100, 10.0)


if __name__ == "__main__":
    main()
