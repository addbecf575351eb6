"""am-dbg's Textual UI: opening a big session, and frame time under live load.

1. A session file of N transitions (100,000; `--quick`: 10,000): time to
   first paint (read_session + mount + first frame) and peak Python memory
   (tracemalloc), against the peer `read_session` alone (the UI's own cost is
   the ratio above 1).
2. 100 machines, each sending 100 transitions a second over loopback TCP
   (real machines with `bind_dbg`, in a child process) to the app's in-process
   collector, while the app redraws at its fixed rate (10 fps) in tail mode:
   p50/p99 of the frame time (one `refresh_views`) against the 50 ms budget,
   and how many transitions arrived. `--quick`: 20 machines for 1 s, else
   100 machines for 20 s.

Run: python benchmarks/bench_dbg_ui.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from textual._compositor import Compositor

import asyncmachine as am
from asyncmachine.debugger import (
    Collector,
    MachineRecord,
    Session,
    Step,
    StepType,
    TransitionRecord,
    bind_dbg,
    close_senders,
    read_session,
    write_session,
)
from asyncmachine.debugger.tui import DebuggerApp

STATES = [f"S{i}" for i in range(12)]


def _tx(i: int) -> TransitionRecord:
    return TransitionRecord(
        id=f"{i:016x}",
        clocks=[(i + k) // 3 for k in range(len(STATES))],
        called=[STATES[i % 12]],
        mutation="add",
        accepted=i % 7 != 0,
        steps=[Step(StepType.REQUESTED, STATES[i % 12]), Step(StepType.SET, "S1")],
        time=1_700_000_000 + i / 1000,
    )


def big_session(n: int) -> Session:
    s = Session()
    s.add_machine(MachineRecord("big", list(STATES)))
    for i in range(n):
        s.add_transition("big", _tx(i))
    return s


async def first_paint(path: Path) -> float:
    t0 = time.perf_counter()
    app = DebuggerApp(read_session(path))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "tx " in str(app.query_one("#bar").render())
        return time.perf_counter() - t0


def _feed(addr: str, machines: int, seconds: float) -> int:
    """`machines` machines, 100 transitions/s each, for `seconds`."""
    schema = {s: am.State(multi=True) for s in STATES}
    ms = []
    for i in range(machines):
        m = am.Machine(schema, id=f"m{i}")
        bind_dbg(m, addr)
        ms.append(m)
    sent = 0
    start = time.perf_counter()
    tick = 0
    while time.perf_counter() - start < seconds:
        # one transition per machine every 10 ms
        for m in ms:
            m.add1(STATES[tick % 12])
        sent += len(ms)
        tick += 1
        delay = start + tick * 0.01 - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    for m in ms:
        m.dispose()
    close_senders()  # sends what is queued
    return sent


class Live:
    """What one live run measured."""

    def __init__(self) -> None:
        self.frames: list[float] = []  # refresh_views durations
        self.starts: list[float] = []  # when each refresh started
        self.paints: list[float] = []  # Textual's paints (render_update)
        self.totals: list[float] = []  # a refresh and the paints after it
        self.t0 = float("inf")  # when the feed started (earlier paints: mount)
        self.sent = 0
        self.got = 0


async def live(machines: int, seconds: float) -> Live:
    res = Live()
    frames, paints = res.frames, res.paints
    app = DebuggerApp(collector=Collector("127.0.0.1:0"), gc_freeze=True)
    orig = app.refresh_views

    def timed() -> None:
        t = time.perf_counter()
        orig()
        if t > res.t0:
            res.starts.append(t)
            frames.append(time.perf_counter() - t)
            res.totals.append(frames[-1])

    app.refresh_views = timed  # type: ignore[method-assign]
    # Textual's paint of the changed regions, after each refresh
    orig_paint = Compositor.render_update

    def paint(self: Compositor, *a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return orig_paint(self, *a, **kw)
        finally:
            if t > res.t0:
                paints.append(time.perf_counter() - t)
                if res.totals:  # the paint belongs to the last refresh
                    res.totals[-1] += paints[-1]

    Compositor.render_update = paint  # type: ignore[method-assign]
    try:
        await _live_run(app, res, machines, seconds)
    finally:
        Compositor.render_update = orig_paint  # type: ignore[method-assign]
    return res


async def _live_run(app: DebuggerApp, res: Live, machines: int, seconds: float) -> None:
    async with app.run_test(size=(160, 50)) as pilot:
        col = app.collector
        assert col is not None
        await col.listening.wait()
        await pilot.pause()
        res.t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--feed",
            f"127.0.0.1:{col.port}",
            str(machines),
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        res.sent = int(out.decode().strip())

        # the child has exited: every machine sent its disconnect last
        def fed() -> bool:
            ms = app.session.machines.values()
            return len(ms) == machines and not any(m.connected for m in ms)

        done = asyncio.Event()
        col.on_change = lambda s: done.set() if fed() else None
        if not fed():
            await asyncio.wait_for(done.wait(), 30)
        res.got = sum(len(m.transitions) for m in app.session.machines.values())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="CI smoke sizes")
    p.add_argument("--feed", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.feed:
        addr, machines, seconds = args.feed
        print(_feed(addr, int(machines), float(seconds)))
        return
    n = 10_000 if args.quick else 100_000
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.amdbg"
        write_session(path, big_session(n))
        t = time.perf_counter()
        read_session(path)
        peer = time.perf_counter() - t
        paint = asyncio.run(first_paint(path))
        tracemalloc.start()  # a second run: tracemalloc slows what it traces
        asyncio.run(first_paint(path))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(
        f"open {n} transitions: first paint {paint * 1000:.0f} ms "
        f"(read_session peer {peer * 1000:.0f} ms, ratio {paint / peer:.1f}), "
        f"peak memory {peak / 2**20:.0f} MiB (tracemalloc)"
    )
    machines, seconds = (20, 1.0) if args.quick else (100, 20.0)
    res = asyncio.run(live(machines, seconds))

    def p(xs: list[float], k: int) -> float:
        q = statistics.quantiles(xs, n=100) if len(xs) > 1 else xs * 99
        return q[k - 1] * 1000

    span = res.starts[-1] - res.starts[0] if len(res.starts) > 1 else 1.0
    fps = (len(res.starts) - 1) / span if span else 0.0
    total = p(res.totals, 99)
    print(
        f"live {machines} machines x 100 tx/s for {seconds:.0f} s over TCP: "
        f"{res.sent} sent, {res.got} shown; {len(res.frames)} frames at "
        f"{fps:.1f} fps (target 10); refresh p50 {p(res.frames, 50):.2f} ms "
        f"p99 {p(res.frames, 99):.2f} ms, paint p50 {p(res.paints, 50):.2f} ms "
        f"p99 {p(res.paints, 99):.2f} ms; frame (refresh + paint) "
        f"p50 {p(res.totals, 50):.1f} ms p99 {total:.1f} ms "
        f"(budget 50 ms: {'ok' if total < 50 else 'OVER'})"
    )


if __name__ == "__main__":
    main()
