"""Benchmark the anyio runtime against bare anyio doing the same job.

Each async workload runs on asyncio and on trio (``anyio.run(...,
backend=...)``); the machine side and its bare-anyio peer run in the same
event loop, their repeats interleaved, and the table shows both plus the
ratio machine / peer.

Workloads:

1. when1 wake-up. Two tasks play ping-pong. The waiter calls
   ``ev = mach.when1(S)``, tells the setter it is ready and awaits ``ev``;
   the setter stamps ``t0`` and calls ``mach.add1(S)`` (S alternates between
   A and B, which remove each other, so every round is a real transition and
   no subscription is ever ready at once). The waiter stamps ``t1`` as soon
   as it runs again. The peer is the same ping-pong with a bare
   ``anyio.Event()`` created by the waiter and ``set()`` by the setter.
   Reported: *wake* (``t1 - t0``, the goal metric of the issue), split into the *trigger call* (``add1``
   vs ``set()``, until it returns) and *switch + resume* (the setter
   suspending, the loop switching tasks, the waiter resuming); *setup*
   (``when1(S)`` vs ``anyio.Event()``); *setup + wake*, a goal metric too,
   since a user creates the event every round; and *cycle*, a whole round
   with everything in it (the ready-handshake, identical on both sides, and
   the parking of the waiter when it first awaits, which falls between the
   stamps above).

2. state-context cancel. Per round: ``add1("A")``, ``ctx =
   mach.new_state_ctx("A")``, ``mach.fork(ctx, fn)``; ``fn`` signals that it
   started and parks in ``await anyio.sleep_forever()``; the main task stamps
   ``t0`` and calls ``mach.remove1("A")``; ``fn`` stamps ``t1`` where the
   cancellation arrives (``except <cancelled class>:``, re-raised). The peer
   starts ``tg.start_soon(fn)`` where ``fn`` runs inside its own ``with
   anyio.CancelScope() as scope:``, and the main task calls
   ``scope.cancel()``. *wake* (``t1 - t0``, split into the trigger call and
   switch + delivery) excludes the task start on both sides; *cycle* (a
   whole round: events, task start, handshake, cancel, task exit; for the
   machine also the ``add1`` and ``new_state_ctx``) includes it on both
   sides.

3. thread add1. A worker thread calls ``mach.add1("M")`` (M is Multi) n
   times into a running machine; the loop waits (``when_time1``) until the
   last one was applied. The peer is the same thread making n bare
   thread-safe enqueues of a counting callback
   (``loop.call_soon_threadsafe`` on asyncio,
   ``TrioToken.run_sync_soon`` on trio) and the loop waiting for the last
   one to run. Reported per call: *end to end* (thread start to the last
   one applied; the goal metric: at most 4x the peer, i.e. at least 1/4
   of its throughput) and *in the thread* (the calls alone).

4. scale (no event loop, nothing running). 10,000 machines of one 5-state
   schema, with and without a pending (never awaited) ``when1`` each:
   memory per machine from ``tracemalloc`` and creation time per machine.

Usage::

    python benchmarks/bench_runtime.py             # full run (about a minute)
    python benchmarks/bench_runtime.py --quick     # smoke run, a few seconds
    python benchmarks/bench_runtime.py --markdown  # print Markdown tables
    python benchmarks/bench_runtime.py --only when,thread  # some workloads only
    python benchmarks/bench_runtime.py --mem-detail  # top allocation sites
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import anyio
import anyio.to_thread
import sniffio
import trio.lowlevel

import asyncmachine as am

BACKENDS = ("asyncio", "trio")
now = time.perf_counter_ns


# ---------------------------------------------------------------------------
# timing


@dataclass(frozen=True)
class Timing:
    min_time: float  # seconds one repeat should take at least
    repeat: int  # best of N
    machines: int  # machines in the scale workload


@dataclass
class Sample:
    """Totals over `n` rounds of one run (ns)."""

    n: int
    cycle: int = 0
    wake: int = 0
    trigger: int = 0
    setup: int = 0


Run = Callable[[int], Awaitable[Sample]]


@dataclass
class Best:
    """Best-of-N per-round figures (ns), each metric minimised on its own."""

    cycle: float = float("inf")
    wake: float = float("inf")
    trigger: float = float("inf")
    setup: float = float("inf")

    def add(self, s: Sample) -> None:
        self.cycle = min(self.cycle, s.cycle / s.n)
        self.wake = min(self.wake, s.wake / s.n)
        self.trigger = min(self.trigger, s.trigger / s.n)
        self.setup = min(self.setup, s.setup / s.n)


async def _timed(run: Run, n: int) -> Sample:
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return await run(n)
    finally:
        if gc_was_enabled:
            gc.enable()


async def compare(ours: Run, peer: Run, timing: Timing) -> tuple[Best, Best]:
    """Calibrate on `ours` (also the warm-up), then interleave the repeats."""
    n = 1
    while True:
        s = await _timed(ours, n)
        if s.cycle >= timing.min_time * 1e9 or n >= 1 << 22:
            break
        n *= 2
    await _timed(peer, n)  # warm-up
    best_ours, best_peer = Best(), Best()
    for _ in range(timing.repeat):
        best_peer.add(await _timed(peer, n))
        best_ours.add(await _timed(ours, n))
    return best_ours, best_peer


def _machine(schema: am.Schema) -> am.Machine:
    mach = am.Machine(schema)
    mach.log_level = am.LogLevel.NOTHING  # regardless of AM_LOG
    return mach


# ---------------------------------------------------------------------------
# 1. when1 wake-up

TOGGLE: am.Schema = {
    "A": am.State(remove=["B"]),
    "B": am.State(remove=["A"]),
}


class _Shared:
    """What the two tasks of a round pass each other."""

    __slots__ = ("done", "ev", "ready", "scope", "started", "t0", "t1", "tt")

    def __init__(self) -> None:
        self.ready = anyio.Event()
        self.started = anyio.Event()
        self.done = anyio.Event()
        self.ev: anyio.Event | None = None
        self.scope: anyio.CancelScope | None = None
        self.t0 = 0  # before the trigger
        self.tt = 0  # after the trigger call returned
        self.t1 = 0  # in the woken task


async def when_machine(n: int) -> Sample:
    mach = _machine(TOGGLE)
    names = ("A", "B")
    sh = _Shared()
    out = Sample(n)

    async def setter() -> None:
        add1 = mach.add1
        for i in range(n):
            await sh.ready.wait()
            sh.ready = anyio.Event()
            sh.t0 = now()
            add1(names[i & 1])
            sh.tt = now()

    async with mach, anyio.create_task_group() as tg:
        when1 = mach.when1
        tg.start_soon(setter)
        setup = wake = trigger = 0
        start = now()
        for i in range(n):
            s0 = now()
            ev = when1(names[i & 1])
            s1 = now()
            sh.ready.set()
            await ev
            t1 = now()
            setup += s1 - s0
            wake += t1 - sh.t0
            trigger += sh.tt - sh.t0
        out.cycle = now() - start
        out.setup, out.wake, out.trigger = setup, wake, trigger
        assert ev.is_set() and mach.is1(names[(n - 1) & 1])
    return out


async def when_bare(n: int) -> Sample:
    sh = _Shared()
    out = Sample(n)

    async def setter() -> None:
        for _ in range(n):
            await sh.ready.wait()
            sh.ready = anyio.Event()
            ev = sh.ev
            assert ev is not None
            sh.t0 = now()
            ev.set()
            sh.tt = now()

    async with anyio.create_task_group() as tg:
        tg.start_soon(setter)
        setup = wake = trigger = 0
        start = now()
        for _ in range(n):
            s0 = now()
            ev = anyio.Event()
            s1 = now()
            sh.ev = ev
            sh.ready.set()
            await ev.wait()
            t1 = now()
            setup += s1 - s0
            wake += t1 - sh.t0
            trigger += sh.tt - sh.t0
        out.cycle = now() - start
        out.setup, out.wake, out.trigger = setup, wake, trigger
    return out


# ---------------------------------------------------------------------------
# 2. state-context cancel


async def ctx_machine(n: int) -> Sample:
    mach = _machine({"A": am.State()})
    sh = _Shared()
    out = Sample(n)
    cancelled = anyio.get_cancelled_exc_class()

    async def fn() -> None:
        try:
            sh.started.set()
            await anyio.sleep_forever()
        except cancelled:
            sh.t1 = now()
            sh.done.set()
            raise

    async with mach:
        add1, remove1, new_ctx, fork = (
            mach.add1,
            mach.remove1,
            mach.new_state_ctx,
            mach.fork,
        )
        wake = trigger = 0
        start = now()
        for _ in range(n):
            sh.started = anyio.Event()
            sh.done = anyio.Event()
            add1("A")
            fork(new_ctx("A"), fn)
            await sh.started.wait()
            t0 = now()
            remove1("A")
            tt = now()
            await sh.done.wait()
            wake += sh.t1 - t0
            trigger += tt - t0
        out.cycle = now() - start
        out.wake, out.trigger = wake, trigger
        assert not mach.is1("A") and not mach.is1(am.EXCEPTION)
    return out


async def ctx_bare(n: int) -> Sample:
    sh = _Shared()
    out = Sample(n)
    cancelled = anyio.get_cancelled_exc_class()

    async def fn() -> None:
        with anyio.CancelScope() as scope:
            sh.scope = scope
            try:
                sh.started.set()
                await anyio.sleep_forever()
            except cancelled:
                sh.t1 = now()
                sh.done.set()
                raise

    async with anyio.create_task_group() as tg:
        start_soon = tg.start_soon
        wake = trigger = 0
        start = now()
        for _ in range(n):
            sh.started = anyio.Event()
            sh.done = anyio.Event()
            start_soon(fn)
            await sh.started.wait()
            scope = sh.scope
            assert scope is not None
            t0 = now()
            scope.cancel()
            tt = now()
            await sh.done.wait()
            wake += sh.t1 - t0
            trigger += tt - t0
        out.cycle = now() - start
        out.wake, out.trigger = wake, trigger
    return out


# ---------------------------------------------------------------------------
# the async table


# ---------------------------------------------------------------------------
# 3. mutations from a foreign thread

MULTI: am.Schema = {"M": am.State(multi=True)}


async def thread_machine(n: int) -> Sample:
    mach = _machine(MULTI)
    out = Sample(n)
    async with mach:
        done = mach.when_time1("M", 1 + 2 * (n - 1))

        def work() -> int:
            add1 = mach.add1
            t0 = now()
            for _ in range(n):
                add1("M")
            return now() - t0

        start = now()
        out.trigger = await anyio.to_thread.run_sync(work)
        await done
        out.cycle = out.wake = now() - start
    return out


async def thread_bare(n: int) -> Sample:
    out = Sample(n)
    done = anyio.Event()
    count = [0]

    def callback() -> None:
        count[0] += 1
        if count[0] == n:
            done.set()

    if sniffio.current_async_library() == "trio":
        enqueue = trio.lowlevel.current_trio_token().run_sync_soon
    else:
        enqueue = asyncio.get_running_loop().call_soon_threadsafe

    def work() -> int:
        t0 = now()
        for _ in range(n):
            enqueue(callback)
        return now() - t0

    start = now()
    out.trigger = await anyio.to_thread.run_sync(work)
    await done.wait()
    out.cycle = out.wake = now() - start
    return out


GOAL = 1.5  # ratio machine / peer, on the metrics marked in the goal column


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    ours: Run
    peer: Run
    peer_name: str
    goal: float = GOAL


WORKLOADS = [
    Workload("when", "when1 wake-up", when_machine, when_bare, "anyio.Event"),
    Workload("ctx", "state-ctx cancel", ctx_machine, ctx_bare, "CancelScope"),
    # the goal: at least 1/4 of a bare thread-safe enqueue's throughput
    Workload(
        "thread",
        "thread add1",
        thread_machine,
        thread_bare,
        "call_soon_threadsafe / run_sync_soon",
        4.0,
    ),
]


@dataclass
class Row:
    backend: str
    workload: Workload
    ours: Best
    peer: Best


async def run_backend(
    backend: str, workloads: list[Workload], timing: Timing
) -> list[Row]:
    rows = []
    for w in workloads:
        ours, peer = await compare(w.ours, w.peer, timing)
        rows.append(Row(backend, w, ours, peer))
    return rows


# ---------------------------------------------------------------------------
# 3. scale

SCALE_SCHEMA: am.Schema = {
    "Start": am.State(),
    "Ready": am.State(require=["Start"]),
    "Busy": am.State(require=["Ready"], remove=["Idle"]),
    "Idle": am.State(auto=True, require=["Ready"], remove=["Busy"]),
    "Stop": am.State(remove=["Start"]),
}


def _create(count: int, when: bool) -> list[Any]:
    out: list[Any] = []
    append = out.append
    Machine = am.Machine
    schema = SCALE_SCHEMA
    if when:
        for _ in range(count):
            mach = Machine(schema)
            append((mach, mach.when1("Ready")))
    else:
        for _ in range(count):
            append(Machine(schema))
    return out


@dataclass
class ScaleRow:
    title: str
    bytes_per: float
    peak_per: float
    ns_per: float
    top: list[str] = field(default_factory=list)


def run_scale(timing: Timing, detail: bool) -> list[ScaleRow]:
    _create(2, True)  # compile the schema and warm its caches first
    count = timing.machines
    rows = []
    for title, when in (("machine", False), ("machine + pending when1", True)):
        # time, without tracemalloc (it slows allocation down several times)
        best = float("inf")
        for _ in range(timing.repeat):
            gc.collect()
            gc.disable()
            try:
                start = now()
                keep = _create(count, when)
                best = min(best, now() - start)
            finally:
                gc.enable()
            del keep
        # memory
        gc.collect()
        tracemalloc.start(1)
        try:
            before = tracemalloc.take_snapshot() if detail else None
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            keep = _create(count, when)
            gc.collect()
            current, peak = tracemalloc.get_traced_memory()
            top: list[str] = []
            if before is not None:
                stats = tracemalloc.take_snapshot().compare_to(before, "lineno")
                for st in stats[:12]:
                    frame = st.traceback[0]
                    where = frame.filename.rsplit("/src/", 1)[-1]
                    top.append(
                        f"{st.size_diff / count:8.0f} B/machine  "
                        f"{st.count_diff / count:5.1f} blocks  "
                        f"{where}:{frame.lineno}"
                    )
        finally:
            tracemalloc.stop()
        assert len(keep) == count
        del keep
        rows.append(
            ScaleRow(
                title,
                (current - base) / count,
                (peak - base) / count,
                best / count,
                top,
            )
        )
    return rows


# ---------------------------------------------------------------------------
# output


def _ns(value: float) -> str:
    return f"{value:,.0f}"


def _table(head: list[str], body: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |"]
        lines.append("| --- |" + " ---: |" * (len(head) - 1))
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    lines = []
    for cells in [head, *body]:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]))
    return "\n".join(lines)


def render(rows: list[Row], markdown: bool) -> str:
    head = [
        "workload",
        "backend",
        "metric",
        "asyncmachine ns",
        "peer",
        "peer ns",
        "ratio",
        "goal (ratio ≤)",
    ]
    body = []
    for r in rows:
        o, p = r.ours, r.peer
        metrics: list[tuple[str, float, float, bool]]
        if r.workload.key == "when":
            metrics = [
                ("wake", o.wake, p.wake, True),
                ("wake: trigger call", o.trigger, p.trigger, False),
                (
                    "wake: switch + resume",
                    o.wake - o.trigger,
                    p.wake - p.trigger,
                    False,
                ),
                ("setup", o.setup, p.setup, False),
                ("setup + wake", o.setup + o.wake, p.setup + p.wake, True),
                ("cycle", o.cycle, p.cycle, False),
            ]
        elif r.workload.key == "thread":
            metrics = [
                ("per call, end to end", o.wake, p.wake, True),
                ("per call, in the thread", o.trigger, p.trigger, False),
            ]
        else:
            metrics = [
                ("wake (no task start)", o.wake, p.wake, True),
                ("wake: trigger call", o.trigger, p.trigger, False),
                (
                    "wake: switch + delivery",
                    o.wake - o.trigger,
                    p.wake - p.trigger,
                    False,
                ),
                ("cycle (with task start)", o.cycle, p.cycle, True),
            ]
        for metric, ours, peer, goal in metrics:
            ratio = ours / peer
            body.append(
                [
                    r.workload.title,
                    r.backend,
                    metric,
                    _ns(ours),
                    r.workload.peer_name,
                    _ns(peer),
                    f"{ratio:.2f}",
                    (
                        f"{r.workload.goal}: "
                        + ("met" if ratio <= r.workload.goal else "MISSED")
                    )
                    if goal
                    else "",
                ]
            )
    return _table(head, body, markdown)


def render_scale(rows: list[ScaleRow], count: int, markdown: bool) -> str:
    head = [
        f"{count:,} machines, 5 states",
        "bytes/machine",
        "peak bytes/machine",
        "create ns/machine",
    ]
    body = [[r.title, _ns(r.bytes_per), _ns(r.peak_per), _ns(r.ns_per)] for r in rows]
    return _table(head, body, markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: tiny loops, no real figures"
    )
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        action="append",
        help="run on this backend only (repeatable; default both)",
    )
    parser.add_argument("--repeat", type=int, help="best of N (default 7, quick 2)")
    parser.add_argument(
        "--min-time",
        type=float,
        help="seconds per repeat (default 0.3, quick 0.002)",
    )
    parser.add_argument(
        "--machines", type=int, help="machines in the scale run (default 10000)"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated workloads: when,ctx,thread,scale"
    )
    parser.add_argument(
        "--mem-detail",
        action="store_true",
        help="print the top allocation sites of the scale workload",
    )
    args = parser.parse_args(argv)
    keys = {k.strip() for k in args.only.split(",") if k.strip()}
    unknown = keys - {w.key for w in WORKLOADS} - {"scale"}
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    workloads = [w for w in WORKLOADS if not keys or w.key in keys]

    timing = Timing(
        min_time=args.min_time or (0.002 if args.quick else 0.3),
        repeat=args.repeat or (2 if args.quick else 7),
        machines=args.machines or (1000 if args.quick else 10_000),
    )
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"asyncmachine {version('asyncmachine')}, anyio {version('anyio')}, "
        f"trio {version('trio')}; best of {timing.repeat}, "
        f">= {timing.min_time}s per repeat"
        + (" [QUICK: figures are not meaningful]" if args.quick else "")
    )
    if workloads:
        rows: list[Row] = []
        for backend in args.backend or BACKENDS:
            rows += anyio.run(run_backend, backend, workloads, timing, backend=backend)
        print(render(rows, args.markdown))
        print()
    if not keys or "scale" in keys:
        scale = run_scale(timing, args.mem_detail)
        print(render_scale(scale, timing.machines, args.markdown))
        for r in scale:
            if r.top:
                print(f"\ntop allocation sites, {r.title}:")
                print("\n".join(r.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
