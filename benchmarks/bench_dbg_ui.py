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
   100 machines for 5 s.

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


async def live(machines: int, seconds: float) -> tuple[list[float], int, int]:
    frames: list[float] = []
    app = DebuggerApp(collector=Collector("127.0.0.1:0"))
    orig = app.refresh_views

    def timed() -> None:
        t = time.perf_counter()
        orig()
        frames.append(time.perf_counter() - t)

    app.refresh_views = timed  # type: ignore[method-assign]
    async with app.run_test(size=(160, 50)):
        col = app.collector
        assert col is not None
        await col.listening.wait()
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
        sent = int(out.decode().strip())

        # the child has exited: every machine sent its disconnect last
        def fed() -> bool:
            ms = app.session.machines.values()
            return len(ms) == machines and not any(m.connected for m in ms)

        done = asyncio.Event()
        col.on_change = lambda s: done.set() if fed() else None
        if not fed():
            await asyncio.wait_for(done.wait(), 30)
        got = sum(len(m.transitions) for m in app.session.machines.values())
    return frames, sent, got


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
    machines, seconds = (20, 1.0) if args.quick else (100, 5.0)
    frames, sent, got = asyncio.run(live(machines, seconds))
    q = statistics.quantiles(frames, n=100) if len(frames) > 1 else frames * 99
    print(
        f"live {machines} machines x 100 tx/s for {seconds:.0f} s over TCP: "
        f"{sent} sent, {got} shown, {len(frames)} frames, "
        f"p50 {q[49] * 1000:.2f} ms, p99 {q[98] * 1000:.2f} ms "
        f"(budget 50 ms: {'ok' if q[98] < 0.05 else 'OVER'})"
    )


if __name__ == "__main__":
    main()
