"""Benchmark the synchronous core against the `transitions` library.

Runs the same workloads, in one process, on:

- ``asyncmachine``: ``am.Machine`` (synchronous core, no event loop);
- ``transitions``: its plain synchronous ``Machine``;
- ``transitions async``: its asyncio ``AsyncMachine``, awaited inside one
  asyncio event loop.

and prints nanoseconds per operation plus the ratio asyncmachine /
transitions (sync): below 1.0 means asyncmachine is faster.

Workloads:

a. toggle: A and B remove each other; alternate ``add1("A")`` / ``add1("B")``.
b. toggle + handlers: the same with an Enter (negotiation) and a State
   (final) handler on each state; transitions gets a condition and an
   ``on_enter`` callback on each.
c. wide: 20 states in one mutually exclusive group; ``add1`` the next one.
d. canceled: ``add1("A")`` where A requires the inactive B; transitions gets
   a trigger whose condition is false.
e. is1: ``is1("A")`` / ``is_A()``.
f. create: build a two-state machine.

Then the scale section (asyncmachine only, one-shot timings, best of N
with fresh state names each time so that no cached plan is reused):

- toggle (a), then toggle + handlers (b), beside 20 / 2,000 / 20,000 other
  states, half of them active (activated one by one), as a ratio to the
  20-state one;
- 5,000 states with a handler object bound, 2,500 active: ``add`` all;
- a 10,000-long require chain: ``add`` all, then ``remove1`` the first
  (the cascade);
- the estimated bytes of the plan cache after those.

And the memory section (``--only mem``):

- idle: 100,000 machines of one 5-state schema, not running (no ``async
  with``): ``tracemalloc`` bytes per machine (the list holding them
  included, the compiled schema not) and creation time per machine;
- running: 1,000 machines entered with ``async with`` (nested in one
  ``AsyncExitStack``) against 1,000 bare anyio task groups with one task
  each (``tg.start_soon(anyio.sleep_forever)``), on asyncio and trio: the
  bytes and the time ``async with`` adds per unit, the tasks started; for
  the machine also with its creation included.

Usage::

    python benchmarks/bench_core.py            # full run (about 30 s)
    python benchmarks/bench_core.py --quick    # smoke run, a second or two
    python benchmarks/bench_core.py --markdown # print a Markdown table
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import platform
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import anyio
import anyio.lowlevel
from transitions import Machine as TMachine
from transitions.extensions.asyncio import AsyncMachine as TAsyncMachine

import asyncmachine as am
from asyncmachine import _resolve as am_resolve

SyncOp = Callable[[], object]
AsyncOp = Callable[[], Awaitable[object]]

WIDE = 20


# ---------------------------------------------------------------------------
# timing


@dataclass(frozen=True)
class Timing:
    min_time: float  # seconds one repeat should take at least
    repeat: int  # best of N


def _calibrate(run: Callable[[int], int], min_time: float) -> int:
    """Find a loop count whose run takes at least `min_time`."""
    number = 1
    while True:
        if run(number) >= min_time * 1e9 or number >= 1 << 26:
            return number
        number *= 2


def measure(op: SyncOp, ops_per_call: int, timing: Timing) -> float:
    """Best-of-N nanoseconds per operation of a synchronous callable."""

    def run(number: int) -> int:
        loop = itertools.repeat(None, number)
        start = time.perf_counter_ns()
        for _ in loop:
            op()
        return time.perf_counter_ns() - start

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        number = _calibrate(run, timing.min_time)  # also the warm-up
        best = min(run(number) for _ in range(timing.repeat))
    finally:
        if gc_was_enabled:
            gc.enable()
    return best / (number * ops_per_call)


async def measure_async(op: AsyncOp, ops_per_call: int, timing: Timing) -> float:
    """Best-of-N nanoseconds per operation of a coroutine function."""

    async def run(number: int) -> int:
        loop = itertools.repeat(None, number)
        start = time.perf_counter_ns()
        for _ in loop:
            await op()
        return time.perf_counter_ns() - start

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        number = 1
        while await run(number) < timing.min_time * 1e9 and number < 1 << 26:
            number *= 2
        best = min([await run(number) for _ in range(timing.repeat)])
    finally:
        if gc_was_enabled:
            gc.enable()
    return best / (number * ops_per_call)


# ---------------------------------------------------------------------------
# asyncmachine workloads


def _am(schema: am.Schema, handlers: object | None = None) -> am.Machine:
    mach = am.Machine(schema, handlers=handlers)
    mach.log_level = am.LogLevel.NOTHING  # regardless of AM_LOG
    return mach


TOGGLE_SCHEMA: am.Schema = {
    "A": am.State(remove=["B"]),
    "B": am.State(remove=["A"]),
}


class AmHandlers:
    def __init__(self) -> None:
        self.entered = 0

    def AEnter(self, e: am.Event) -> bool:
        return True

    def BEnter(self, e: am.Event) -> bool:
        return True

    def AState(self, e: am.Event) -> None:
        self.entered += 1

    def BState(self, e: am.Event) -> None:
        self.entered += 1


def am_toggle(handlers: bool) -> tuple[SyncOp, int]:
    h = AmHandlers() if handlers else None
    mach = _am(TOGGLE_SCHEMA, h)
    add1 = mach.add1
    add1("A")
    assert add1("B") == am.Result.EXECUTED and add1("A") == am.Result.EXECUTED
    assert mach.active_states == ["A"], mach
    if h is not None:
        assert h.entered == 3, h.entered

    def op() -> None:
        add1("B")
        add1("A")

    return op, 2


def am_wide() -> tuple[SyncOp, int]:
    names = [f"S{i}" for i in range(WIDE)]
    mach = _am({name: am.State(remove=names) for name in names})
    add1 = mach.add1
    add1(names[0])
    nxt = itertools.cycle(names[1:] + names[:1]).__next__
    for _ in range(WIDE):  # one full round, checked
        assert add1(nxt()) == am.Result.EXECUTED
    assert mach.active_states == [names[0]], mach

    def op() -> None:
        add1(nxt())

    return op, 1


def am_canceled() -> tuple[SyncOp, int]:
    mach = _am({"A": am.State(require=["B"]), "B": am.State()})
    add1 = mach.add1
    assert add1("A") == am.Result.CANCELED

    def op() -> None:
        add1("A")

    return op, 1


def am_is1() -> tuple[SyncOp, int]:
    mach = _am(TOGGLE_SCHEMA)
    mach.add1("A")
    is1 = mach.is1
    assert is1("A")

    def op() -> None:  # 10 calls per op, so the loop's own cost is spread thin
        is1("A"), is1("A"), is1("A"), is1("A"), is1("A")
        is1("A"), is1("A"), is1("A"), is1("A"), is1("A")

    return op, 10


def am_create() -> tuple[SyncOp, int]:
    def op() -> None:
        am.Machine(TOGGLE_SCHEMA)

    return op, 1


# ---------------------------------------------------------------------------
# transitions workloads (the machine is its own model unless handlers are used)

TOGGLE_TRANSITIONS = [
    {"trigger": "go_a", "source": "B", "dest": "A"},
    {"trigger": "go_b", "source": "A", "dest": "B"},
]
TOGGLE_TRANSITIONS_COND = [{**t, "conditions": "allow"} for t in TOGGLE_TRANSITIONS]


class TModel:
    """A model with a condition (negotiation) and on_enter (final) callbacks."""

    def __init__(self) -> None:
        self.entered = 0

    def allow(self) -> bool:
        return True

    def on_enter_A(self) -> None:
        self.entered += 1

    def on_enter_B(self) -> None:
        self.entered += 1


def _t_toggle(cls: type[TMachine], handlers: bool) -> tuple[Any, Any]:
    if handlers:
        model: Any = TModel()
        cls(
            model=model,
            states=["A", "B"],
            initial="A",
            auto_transitions=False,
            transitions=TOGGLE_TRANSITIONS_COND,
        )
        return model, model
    mach = cls(
        states=["A", "B"],
        initial="A",
        auto_transitions=False,
        transitions=TOGGLE_TRANSITIONS,
    )
    return mach, None


def t_toggle(handlers: bool) -> tuple[SyncOp, int]:
    m, model = _t_toggle(TMachine, handlers)
    go_a, go_b = m.go_a, m.go_b
    assert go_b() and go_a() and m.state == "A"
    if model is not None:
        assert model.entered == 2, model.entered

    def op() -> None:
        go_b()
        go_a()

    return op, 2


def _t_wide(cls: type[TMachine]) -> Any:
    m = cls(states=[f"S{i}" for i in range(WIDE)], initial="S0", auto_transitions=False)
    m.add_ordered_transitions(loop=True)
    return m


def t_wide() -> tuple[SyncOp, int]:
    m = _t_wide(TMachine)
    for _ in range(WIDE):
        assert m.next_state()
    assert m.state == "S0"
    return m.next_state, 1


def _t_canceled(cls: type[TMachine]) -> Any:
    return cls(
        states=["A", "B"],
        initial="A",
        auto_transitions=False,
        transitions=[{"trigger": "go", "source": "A", "dest": "B", "conditions": "no"}],
    )


def _no() -> bool:
    return False


def t_canceled() -> tuple[SyncOp, int]:
    m = _t_canceled(TMachine)
    m.no = _no
    assert m.go() is False and m.state == "A"
    return m.go, 1


def t_is1() -> tuple[SyncOp, int]:
    m = TMachine(states=["A", "B"], initial="A")
    assert m.is_A()
    is_a = m.is_A

    def op() -> None:  # 10 calls per op, as for asyncmachine
        is_a(), is_a(), is_a(), is_a(), is_a()
        is_a(), is_a(), is_a(), is_a(), is_a()

    return op, 10


def t_create() -> tuple[SyncOp, int]:
    def op() -> None:
        TMachine(
            states=["A", "B"],
            initial="A",
            auto_transitions=False,
            transitions=TOGGLE_TRANSITIONS,
        )

    return op, 1


# transitions' AsyncMachine: triggers are coroutine functions


async def ta_toggle(handlers: bool) -> tuple[AsyncOp, int]:
    m, model = _t_toggle(TAsyncMachine, handlers)
    go_a, go_b = m.go_a, m.go_b
    assert await go_b() and await go_a() and m.state == "A"
    if model is not None:
        assert model.entered == 2, model.entered

    async def op() -> None:
        await go_b()
        await go_a()

    return op, 2


async def ta_wide() -> tuple[AsyncOp, int]:
    m = _t_wide(TAsyncMachine)
    for _ in range(WIDE):
        assert await m.next_state()
    assert m.state == "S0"
    return m.next_state, 1


async def ta_canceled() -> tuple[AsyncOp, int]:
    m = _t_canceled(TAsyncMachine)
    m.no = _no
    assert await m.go() is False and m.state == "A"
    return m.go, 1


async def ta_create() -> tuple[AsyncOp, int]:
    async def op() -> None:
        TAsyncMachine(
            states=["A", "B"],
            initial="A",
            auto_transitions=False,
            transitions=TOGGLE_TRANSITIONS,
        )

    return op, 1


# ---------------------------------------------------------------------------
# the table


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    ours: Callable[[], tuple[SyncOp, int]]
    theirs: Callable[[], tuple[SyncOp, int]]
    theirs_async: Callable[[], Awaitable[tuple[AsyncOp, int]]] | None


WORKLOADS = [
    Workload(
        "a",
        "toggle",
        lambda: am_toggle(False),
        lambda: t_toggle(False),
        lambda: ta_toggle(False),
    ),
    Workload(
        "b",
        "toggle + handlers",
        lambda: am_toggle(True),
        lambda: t_toggle(True),
        lambda: ta_toggle(True),
    ),
    Workload("c", f"wide ({WIDE} states)", am_wide, t_wide, ta_wide),
    Workload("d", "canceled add1", am_canceled, t_canceled, ta_canceled),
    Workload("e", "is1", am_is1, t_is1, None),
    Workload("f", "create machine", am_create, t_create, ta_create),
]


@dataclass
class Row:
    workload: Workload
    ours: float
    theirs: float
    theirs_async: float | None

    @property
    def ratio(self) -> float:
        return self.ours / self.theirs


def run(workloads: list[Workload], timing: Timing) -> list[Row]:
    rows = []
    for w in workloads:
        ours = measure(*w.ours(), timing)
        theirs = measure(*w.theirs(), timing)
        rows.append(Row(w, ours, theirs, None))

    async def run_async() -> None:
        for row in rows:
            factory = row.workload.theirs_async
            if factory is not None:
                row.theirs_async = await measure_async(*await factory(), timing)

    asyncio.run(run_async())
    return rows


def _ns(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def render(rows: list[Row], markdown: bool) -> str:
    head = [
        "workload",
        "asyncmachine ns/op",
        "transitions ns/op",
        "transitions async ns/op",
        "ratio (am / transitions)",
    ]
    body = [
        [
            f"{r.workload.key}. {r.workload.title}",
            _ns(r.ours),
            _ns(r.theirs),
            _ns(r.theirs_async),
            f"{r.ratio:.2f}",
        ]
        for r in rows
    ]
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


# ---------------------------------------------------------------------------
# scale (asyncmachine only)

_fresh = itertools.count()


def am_toggle_among(others: int, handlers: bool = False) -> tuple[SyncOp, int]:
    u = next(_fresh)
    names = [f"O{i}x{u}" for i in range(others)]
    schema: am.Schema = {**TOGGLE_SCHEMA, **{n: am.State() for n in names}}
    mach = _am(schema, AmHandlers() if handlers else None)
    for n in names[::2]:
        mach.add1(n)
    add1 = mach.add1

    def op() -> None:
        add1("A")
        add1("B")

    return op, 2


class _LargeHandlers:
    def S1State(self, e: am.Event) -> None:
        pass

    def S2Enter(self, e: am.Event) -> bool:
        return True


def large_add_all(n: int) -> float:
    u = next(_fresh)
    names = ["S0", "S1", "S2", *(f"S{i}x{u}" for i in range(3, n))]
    mach = _am({s: am.State() for s in names}, _LargeHandlers())
    mach.add(names[::2])
    start = time.perf_counter()
    mach.add(names)
    return time.perf_counter() - start


def chain(n: int) -> tuple[float, float]:
    u = next(_fresh)
    names = [f"C{i}x{u}" for i in range(n)]
    schema: am.Schema = {names[0]: am.State()}
    for prev, name in itertools.pairwise(names):
        schema[name] = am.State(require=[prev])
    mach = _am(schema)
    start = time.perf_counter()
    mach.add(names)
    added = time.perf_counter() - start
    assert mach.is1(names[-1])
    start = time.perf_counter()
    mach.remove1(names[0])
    removed = time.perf_counter() - start
    assert not mach.is1(names[-1])
    return added, removed


def run_scale(timing: Timing, quick: bool) -> str:
    sizes = (20, 200) if quick else (20, 2_000, 20_000)
    large, long_chain = (500, 1_000) if quick else (5_000, 10_000)
    repeat = 1 if quick else timing.repeat
    lines = []
    for handlers in (False, True):
        base = 0.0
        what = "toggle + handlers" if handlers else "toggle"
        for others in sizes:
            ns = measure(*am_toggle_among(others, handlers), timing)
            base = base or ns
            lines.append(
                f"{what} among {others:,} other states: {ns:,.0f} ns/op, "
                f"{ns / base:.2f}x the {sizes[0]}-state one"
            )
    gc.collect()
    best = min(large_add_all(large) for _ in range(repeat))
    lines.append(
        f"{large:,} states, handlers bound, add all: {best * 1e3:.1f} ms (goal < 50)"
    )
    runs = [chain(long_chain) for _ in range(repeat)]
    lines.append(
        f"{long_chain:,}-long require chain: add all "
        f"{min(a for a, _ in runs) * 1e3:.1f} ms, remove cascade "
        f"{min(r for _, r in runs) * 1e3:.1f} ms (goal < 100 each)"
    )
    lines.append(
        f"plan cache bound: {am_resolve.PLAN_CACHE_BYTES / 2**20:.0f} MiB "
        "(estimated) per schema"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# memory and start (asyncmachine only, and bare anyio)

MEM_SCHEMA: am.Schema = {
    "A": am.State(remove=["B"]),
    "B": am.State(remove=["A"]),
    "C": am.State(add=["D"]),
    "D": am.State(),
    "E": am.State(require=["A"]),
}


def _traced(make: Callable[[], list[Any]]) -> tuple[float, list[Any]]:
    """Bytes `make()` leaves allocated (tracemalloc), with its result."""
    gc.collect()
    tracemalloc.start(1)
    try:
        base = tracemalloc.get_traced_memory()[0]
        keep = make()
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    return used, keep


def idle_machines(count: int, repeat: int) -> tuple[float, float]:
    """(bytes, creation ns) per idle machine of `MEM_SCHEMA`."""
    am.Machine(MEM_SCHEMA)  # compile the schema outside the measure

    def make() -> list[Any]:
        return [am.Machine(MEM_SCHEMA) for _ in range(count)]

    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            keep = make()
            best = min(best, time.perf_counter_ns() - start)
        finally:
            gc.enable()
        del keep
    used, keep = _traced(make)
    assert len(keep) == count
    return used / count, best / count


class _BareGroup:
    """The peer of a running machine: a task group with one parked task."""

    __slots__ = ("tg",)

    async def __aenter__(self) -> _BareGroup:
        self.tg = tg = anyio.create_task_group()
        await tg.__aenter__()
        tg.start_soon(anyio.sleep_forever)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.tg.cancel_scope.cancel()
        await self.tg.__aexit__(None, None, None)


async def _enter_all(units: list[Any]) -> float:
    """Enter every unit in one exit stack: ns to enter them all."""
    async with contextlib.AsyncExitStack() as stack:
        gc.disable()
        try:
            start = time.perf_counter_ns()
            for unit in units:
                await stack.enter_async_context(unit)
            took = time.perf_counter_ns() - start
        finally:
            gc.enable()
        for _ in range(3):  # let the tasks start
            await anyio.lowlevel.checkpoint()
    return took


async def _traced_enter(units: list[Any]) -> float:
    gc.collect()
    tracemalloc.start(1)
    try:
        base = tracemalloc.get_traced_memory()[0]
        async with contextlib.AsyncExitStack() as stack:
            for unit in units:
                await stack.enter_async_context(unit)
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            gc.collect()
            used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    return used


@dataclass
class StartRow:
    backend: str
    machine_bytes: float
    bare_bytes: float
    machine_ns: float
    bare_ns: float
    create_ns: float
    create_bytes: float


def running_machines(count: int, repeat: int, backend: str) -> StartRow:
    """`async with machine` against a bare task group with one task."""
    am.Machine(MEM_SCHEMA)

    async def main() -> StartRow:
        m_ns = b_ns = c_ns = float("inf")
        for _ in range(repeat):  # interleaved
            machines = [am.Machine(MEM_SCHEMA) for _ in range(count)]
            took = await _enter_all(machines)
            m_ns = min(m_ns, took)
            took = await _enter_all([_BareGroup() for _ in range(count)])
            b_ns = min(b_ns, took)
            gc.disable()
            try:
                start = time.perf_counter_ns()
                machines = [am.Machine(MEM_SCHEMA) for _ in range(count)]
                c_ns = min(c_ns, time.perf_counter_ns() - start)
            finally:
                gc.enable()
        m_bytes = await _traced_enter([am.Machine(MEM_SCHEMA) for _ in range(count)])
        b_bytes = await _traced_enter([_BareGroup() for _ in range(count)])
        c_bytes, keep = _traced(lambda: [am.Machine(MEM_SCHEMA) for _ in range(count)])
        del keep
        return StartRow(
            backend,
            m_bytes / count,
            b_bytes / count,
            m_ns / count,
            b_ns / count,
            c_ns / count,
            c_bytes / count,
        )

    return anyio.run(main, backend=backend)


def run_mem(timing: Timing, quick: bool, markdown: bool) -> str:
    idle = 1_000 if quick else 100_000
    running = 100 if quick else 1_000
    repeat = 1 if quick else timing.repeat
    per, ns = idle_machines(idle, repeat)
    lines = [
        f"{idle:,} idle machines, 5 states: {per:,.0f} bytes/machine "
        f"(goal <= 2,048), created in {ns:,.0f} ns/machine",
    ]
    rows = [running_machines(running, repeat, b) for b in ("asyncio", "trio")]
    head = [
        f"{running:,} running",
        "machine B",
        "bare tg B",
        "ratio",
        "machine ns",
        "bare tg ns",
        "ratio",
        "with creation B",
        "ratio",
        "with creation ns",
        "ratio",
    ]
    body = []
    for r in rows:
        total_b = r.machine_bytes + r.create_bytes
        total_ns = r.machine_ns + r.create_ns
        body.append(
            [
                r.backend,
                f"{r.machine_bytes:,.0f}",
                f"{r.bare_bytes:,.0f}",
                f"{r.machine_bytes / r.bare_bytes:.2f}",
                f"{r.machine_ns:,.0f}",
                f"{r.bare_ns:,.0f}",
                f"{r.machine_ns / r.bare_ns:.2f}",
                f"{total_b:,.0f}",
                f"{total_b / r.bare_bytes:.2f}",
                f"{total_ns:,.0f}",
                f"{total_ns / r.bare_ns:.2f}",
            ]
        )
    if markdown:
        lines.append("| " + " | ".join(head) + " |")
        lines.append("| --- |" + " ---: |" * (len(head) - 1))
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
    else:
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        for cells in [head, *body]:
            lines.append(
                "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: tiny loops, no real figures"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print a Markdown table"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated workload keys, e.g. a,b"
    )
    parser.add_argument("--repeat", type=int, help="best of N (default 5, quick 2)")
    parser.add_argument(
        "--min-time",
        type=float,
        help="seconds per repeat (default 0.2, quick 0.002)",
    )
    args = parser.parse_args(argv)

    timing = Timing(
        min_time=args.min_time or (0.002 if args.quick else 0.2),
        repeat=args.repeat or (2 if args.quick else 5),
    )
    keys = {k.strip() for k in args.only.split(",") if k.strip()}
    unknown = keys - {w.key for w in WORKLOADS} - {"scale", "mem"}
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    workloads = [w for w in WORKLOADS if not keys or w.key in keys]

    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"asyncmachine {version('asyncmachine')}, transitions {version('transitions')}"
        f"; best of {timing.repeat}, >= {timing.min_time}s per repeat"
        + (" [QUICK: figures are not meaningful]" if args.quick else "")
    )
    if workloads:
        rows = run(workloads, timing)
        print(render(rows, args.markdown))
    if not keys or "scale" in keys:
        print()
        print(run_scale(timing, args.quick))
    if not keys or "mem" in keys:
        print()
        print(run_mem(timing, args.quick, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
