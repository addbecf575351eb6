"""am-dbg's Textual UI: opening a big session, and frame time under live load.

1. A session of N transitions (100,000; `--quick`: 10,000) saved to JSON:
   time to first paint (load + mount + first frame) and peak Python memory
   (tracemalloc), against the peer `json.loads` of the same file.
2. 100 machines each receiving 100 transitions a second (`--quick`: 1 s of
   it, else 5 s) while the app redraws at its fixed rate: p50/p99 of the
   frame time (one `refresh_views`), against the 50 ms budget.

Run: python benchmarks/bench_dbg_ui.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from asyncmachine.debugger.tui import DebuggerApp, MachineRecord, Session, TxRecord

STATES = [f"S{i}" for i in range(12)]


def _tx(i: int) -> TxRecord:
    clocks = {s: (i + k) // 3 for k, s in enumerate(STATES)}
    return TxRecord(f"{i:016x}", "add", [STATES[i % 12]], clocks, i % 7 != 0, i)


def big_session(n: int) -> Session:
    s = Session()
    s.add_machine(MachineRecord("big", list(STATES)))
    for i in range(n):
        s.add_tx("big", _tx(i))
    return s


async def first_paint(path: Path) -> float:
    t0 = time.perf_counter()
    app = DebuggerApp(Session.load(path))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "tx " in str(app.query_one("#bar").render())
        return time.perf_counter() - t0


async def live(seconds: float) -> list[float]:
    session = Session()
    for m in range(100):
        session.add_machine(MachineRecord(f"m{m}", list(STATES)))
    frames: list[float] = []
    app = DebuggerApp(session)
    orig = app.refresh_views

    def timed() -> None:
        t = time.perf_counter()
        orig()
        frames.append(time.perf_counter() - t)

    app.refresh_views = timed  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        end = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < end:
            # 100 machines x 100 tx/s, in 10 ms batches
            for m in range(100):
                session.add_tx(f"m{m}", _tx(i))
            i += 1
            await asyncio.sleep(0.01)
        await pilot.pause()
    return frames


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="CI smoke sizes")
    args = p.parse_args()
    n = 10_000 if args.quick else 100_000
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.json"
        big_session(n).save(path)
        t = time.perf_counter()
        json.loads(path.read_text())
        peer = time.perf_counter() - t
        paint = asyncio.run(first_paint(path))
        tracemalloc.start()  # a second run: tracemalloc slows what it traces
        asyncio.run(first_paint(path))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(
        f"open {n} transitions: first paint {paint * 1000:.0f} ms "
        f"(json.loads peer {peer * 1000:.0f} ms, ratio {paint / peer:.1f}), "
        f"peak memory {peak / 2**20:.0f} MiB (tracemalloc)"
    )
    frames = asyncio.run(live(1.0 if args.quick else 5.0))
    q = statistics.quantiles(frames, n=100) if len(frames) > 1 else frames * 99
    print(
        f"live 100 machines x 100 tx/s: {len(frames)} frames, "
        f"p50 {q[49] * 1000:.2f} ms, p99 {q[98] * 1000:.2f} ms "
        f"(budget 50 ms: {'ok' if q[98] < 0.05 else 'OVER'})"
    )


if __name__ == "__main__":
    main()
