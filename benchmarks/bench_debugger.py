"""Benchmark the am-dbg debug tracer and collector (docs/debugger.md).

1. toggle: A and B remove each other; alternate ``add1("A")`` / ``add1("B")``
   on a machine without a tracer (the peer), then with `bind_dbg` to a
   collector in a subprocess (steps on; log lines on at LogLevel.CHANGES,
   against a peer logging at the same level into a null sink). Prints the
   ratio bound / unbound.
2. fan-in: 100 machines x 100 transitions/s for 10 s into one collector
   subprocess; prints the transitions received, the drops and the
   collector's CPU time.

Usage::

    python benchmarks/bench_debugger.py           # full run (about 20 s)
    python benchmarks/bench_debugger.py --quick   # smoke run, a few seconds
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncmachine as am
from asyncmachine.debugger import bind_dbg, close_senders, read_session, sender_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def _wait(proc: subprocess.Popen[bytes]) -> float:
    """Wait for the collector; its CPU seconds (user + system)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def _toggle(level: am.LogLevel) -> am.Machine:
    m = am.Machine(
        {"A": am.State(remove=["B"]), "B": am.State(remove=["A"])}, log_level=level
    )
    m.logger = lambda lv, text: None
    return m


def _ns_per_op(m: am.Machine, n: int) -> float:
    a, b = m.add1, m.add1
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n // 2):
            a("A")
            b("B")
        best = min(best, (time.perf_counter() - t0) / n * 1e9)
    return best


def bench_toggle(n: int) -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "s.amdbg"
        proc = _collector(port, out, 3600)
        try:
            for level in (am.LogLevel.NOTHING, am.LogLevel.CHANGES):
                base = _ns_per_op(_toggle(level), n)
                m = _toggle(level)
                bind_dbg(m, f"127.0.0.1:{port}")
                bound = _ns_per_op(m, n)
                sender = sender_for(f"127.0.0.1:{port}")
                assert sender is not None
                sender.flush(30)
                print(
                    f"toggle, log level {level.name:8}: unbound {base:7.0f} ns/op, "
                    f"bound {bound:7.0f} ns/op, ratio {bound / base:5.2f}x, "
                    f"dropped {sender.dropped}"
                )
        finally:
            close_senders()
            proc.terminate()
            _wait(proc)


def bench_fan_in(machines: int, rate: float, duration: float) -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "s.amdbg"
        proc = _collector(port, out, duration + 3)
        try:
            ms = [_toggle(am.LogLevel.NOTHING) for _ in range(machines)]
            for m in ms:
                bind_dbg(m, f"127.0.0.1:{port}")
            interval = 1 / rate
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
            dropped = sender.dropped
            close_senders()
        finally:
            cpu = _wait(proc)
        sess = read_session(out)
        got = sum(len(m.transitions) for m in sess.machines.values())
        print(
            f"fan-in: {machines} machines x {rate:.0f} tx/s x {now:.1f} s: "
            f"sent {sent}, collected {got}, dropped {dropped}, "
            f"collector CPU {cpu:.2f} s ({cpu / now * 100:.0f}% of one core)"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few-second smoke run")
    args = p.parse_args()
    if args.quick:
        bench_toggle(20_000)
        bench_fan_in(20, 50, 1.0)
    else:
        bench_toggle(200_000)
        bench_fan_in(100, 100, 10.0)


if __name__ == "__main__":
    main()
