"""Benchmark asyncmachine.history: recording cost, write rate, query latency.

1. Recording: the toggle workload (``A`` and ``B`` remove each other;
   alternate ``add1("B")`` / ``add1("A")``) on an untracked machine and on
   machines tracked into a ``MemoryStore`` and into a ``SqlStore`` on SQLite
   (a temp file, WAL), and with a tracer that does nothing (the floor of any
   transition tracer). For the SQLite store: the mutation rate during a
   burst with the writer thread running alongside (as in an application),
   the same with the writer idle (the tracer's own cost), the end-to-end
   rate (the burst plus writing every record), and the writer's own rate
   (a backlog written while the machine is idle).
2. Queries: a machine of 6 states (mutations drawn at random, fixed seed)
   records N transitions (1,000,000 in the full run) into SQLite, and into
   PostgreSQL when a server can be started (the test suite's throwaway
   server); then the latest 10 records matching state conditions, in a time
   window, by machine time, and the whole-time ``active_between``, each the
   median of several runs, in milliseconds.

The output is Markdown tables. Usage::

    python benchmarks/bench_history.py            # full run (several minutes)
    python benchmarks/bench_history.py --quick    # smoke run, figures meaningless
    python benchmarks/bench_history.py --no-pg    # SQLite only
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

import asyncmachine as am
from asyncmachine import history as h

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

TOGGLE: am.Schema = {"A": am.State(remove=["B"]), "B": am.State(remove=["A"])}
WIDE: am.Schema = {
    "Start": am.State(),
    "Ready": am.State(require=["Start"]),
    "Busy": am.State(remove=["Idle"]),
    "Idle": am.State(remove=["Busy"]),
    "Rare": am.State(),
    "Counter": am.State(multi=True),
}


# ---------------------------------------------------------------- recording


def _toggle(mach: am.Machine, n: int) -> float:
    add1 = mach.add1
    gc_on = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(n // 2):
            add1("B")
            add1("A")
        return time.perf_counter() - start
    finally:
        if gc_on:
            gc.enable()


def _machine() -> am.Machine:
    mach = am.Machine(TOGGLE)
    mach.log_level = am.LogLevel.NOTHING
    mach.add1("A")
    return mach


def recording(n: int, repeat: int, tmp: Path) -> dict[str, float]:
    """Mutation rates (per second) untracked and tracked; best of `repeat`."""
    out: dict[str, float] = {}
    best: dict[str, float] = {}

    def keep(key: str, seconds: float) -> None:
        best[key] = min(best.get(key, float("inf")), seconds)

    class NoopTracer(am.Tracer):
        def transition_end(self, transition: am.Transition) -> None:
            return None

    for r in range(repeat):
        keep("untracked", _toggle(_machine(), n))

        # the floor of any transition tracer: the core builds Transitions
        mach = _machine()
        mach.bind_tracer(NoopTracer())
        keep("no-op transition tracer (floor)", _toggle(mach, n))

        mach = _machine()
        h.track(mach, h.MemoryStore(), max_records=1000)
        keep("memory", _toggle(mach, n))

        # a burst with the writer running alongside, then the rest written
        with h.SqlStore(str(tmp / f"rec{r}.db")) as store:
            mach = _machine()
            h.track(mach, store, max_records=None)
            start = time.perf_counter()
            keep("sqlite burst", _toggle(mach, n))
            store._flush_sync()
            keep("sqlite end-to-end", time.perf_counter() - start)
            assert store.written == n, (store.written, n)

        # the writer alone: a backlog written while the machine is idle
        with h.SqlStore(str(tmp / f"idle{r}.db"), flush_interval=3600) as store:
            mach = _machine()
            h.track(mach, store, max_records=None)
            keep("sqlite, writer idle during the burst", _toggle(mach, n))
            start = time.perf_counter()
            store._flush_sync()
            keep("sqlite writer alone", time.perf_counter() - start)
            assert store.written == n
    for key, seconds in best.items():
        out[key] = n / seconds
    return out


# ---------------------------------------------------------------- queries


def fill(store: h.SqlStore, n: int, seed: int = 1) -> tuple[am.Machine, float]:
    """`n` recorded transitions of WIDE into `store`; (machine, seconds)."""
    rnd = random.Random(seed)
    mach = am.Machine(WIDE, id="bench")
    mach.log_level = am.LogLevel.NOTHING
    h.track(mach, store, max_records=None)
    mach.add1("Start")
    ops: list[Callable[[], am.Result]] = [
        lambda: mach.add1("Busy"),
        lambda: mach.add1("Idle"),
        lambda: mach.toggle1("Ready"),
        lambda: mach.add1("Counter"),
        lambda: mach.remove1("Counter"),
    ]
    start = time.perf_counter()
    done = 1
    while done < n:
        # Rare is activated once every ~10,000 transitions
        if rnd.random() < 0.0001:
            mach.add1("Rare")
            mach.remove1("Rare")
            done += 2
            continue
        # accepted transitions are recorded, canceled ones are not
        if rnd.choice(ops)() is not am.Result.CANCELED:
            done += 1
        if len(store._pending) > 200_000:
            store._flush_sync()
    store._flush_sync()
    secs = time.perf_counter() - start
    # fresh planner statistics, as PostgreSQL's autovacuum would gather
    with store._engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return mach, secs


async def _median_ms(fn: Callable[[], Awaitable[Any]], runs: int) -> float:
    await fn()  # warm-up (caches, plans)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def queries(store: h.SqlStore, runs: int) -> dict[str, float]:
    """Query latencies (ms) over the records of machine `bench`."""
    rec = await store.machine_record("bench")
    assert rec is not None
    first = await store.find_latest("bench", limit=1)
    total = first[0].time.id
    newest = first[0].time.htime
    oldest = (await store._edge(rec, 0, False)) or first[0].time
    mid = oldest.htime + (newest - oldest.htime) / 2
    quarter = (newest - oldest.htime) / 4
    msum = first[0].time.mtime_sum
    q = h.Query
    ct = h.ConditionTime
    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "latest 10, no condition": lambda: store.find_latest("bench", limit=10),
        "latest 10, active Busy + inactive Ready": lambda: store.find_latest(
            "bench", q(active=["Busy"], inactive=["Ready"]), limit=10
        ),
        "latest 10, activated Idle + active Start": lambda: store.find_latest(
            "bench", q(activated=["Idle"], active=["Start"]), limit=10
        ),
        "latest 10, activated Rare (1 in ~10,000)": lambda: store.find_latest(
            "bench", q(activated=["Rare"]), limit=10
        ),
        "latest 10, conditions in a time window (middle)": lambda: store.find_latest(
            "bench",
            q(
                active=["Busy"],
                deactivated=["Ready"],
                start=ct(htime=mid - quarter),
                end=ct(htime=mid),
            ),
            limit=10,
        ),
        "latest 10, by machine time (middle)": lambda: store.find_latest(
            "bench",
            q(
                active=["Idle"],
                start=ct(mtime_sum=msum // 2),
                end=ct(mtime_sum=msum // 2 + 1000),
            ),
            limit=10,
        ),
        "active_between Start (whole time), half the span": lambda: (
            store.active_between("bench", "Start", mid - quarter, mid + quarter)
        ),
        "activated_between Rare, half the span": lambda: store.activated_between(
            "bench", "Rare", mid - quarter, mid + quarter
        ),
    }
    out = {"records": float(total)}
    for name, fn in cases.items():
        out[name] = await _median_ms(fn, runs)
    return out


# ---------------------------------------------------------------- main


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run (CI)")
    p.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    p.add_argument("--records", type=int, help="records for the query part")
    p.add_argument("--no-recording", action="store_true", help="queries only")
    ns = p.parse_args()
    n_rec = 2_000 if ns.quick else 200_000
    repeat = 1 if ns.quick else 3
    n_query = ns.records or (5_000 if ns.quick else 1_000_000)
    runs = 3 if ns.quick else 15

    print(
        f"# python {platform.python_version()}, {platform.machine()}, sqlalchemy "
        f"{__import__('sqlalchemy').__version__}"
    )
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not ns.no_recording:
            rates = recording(n_rec, repeat, tmp)
            base = rates["untracked"]
            print(f"\n## Recording ({n_rec:,} mutations, best of {repeat})\n")
            print("| variant | mutations/s | ratio to untracked |")
            print("| --- | ---: | ---: |")
            for key, rate in rates.items():
                print(f"| {key} | {_fmt_rate(rate)} | {rate / base:.2f} |")

        results: dict[str, dict[str, float]] = {}
        fills: dict[str, float] = {}
        sqlite = h.SqlStore(str(tmp / "q.db"))
        try:
            _, secs = fill(sqlite, n_query)
            fills["SQLite"] = n_query / secs
            results["SQLite"] = anyio.run(queries, sqlite, runs)
        finally:
            sqlite.close()
        if not ns.no_pg:
            from pg_server import NoServer, pg_server

            try:
                with pg_server() as url:
                    pg = h.SqlStore(url)
                    try:
                        _, secs = fill(pg, n_query)
                        fills["PostgreSQL"] = n_query / secs
                        results["PostgreSQL"] = anyio.run(queries, pg, runs)
                    finally:
                        pg.close()
            except NoServer as err:
                print(f"\n(PostgreSQL skipped: {err})")

    names = [k for k in next(iter(results.values())) if k != "records"]
    print(f"\n## Queries ({n_query:,} records, median of {runs} runs, ms)\n")
    dbs = list(results)
    print("| query | " + " | ".join(dbs) + " |")
    print("| --- |" + " ---: |" * len(dbs))
    for name in names:
        print(
            f"| {name} | " + " | ".join(f"{results[db][name]:.2f}" for db in dbs) + " |"
        )
    print(
        "| records written per second while filling | "
        + " | ".join(_fmt_rate(fills[db]) for db in dbs)
        + " |"
    )


if __name__ == "__main__":
    main()
