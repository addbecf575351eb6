"""A worker whose history lives in SQLite, restored after a "restart".

The first run of the worker records its transitions into a SqlStore (a
temp SQLite file); the script then asks the history questions (what was
the last job? was the worker ready the whole time?), closes the store as a
process would at exit, opens it again and rebuilds the worker from its last
record: clocks, queue tick and the MachineRestored state. Run it with
``python examples/history_restart.py [--backend asyncio|trio|all]``.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import anyio

import asyncmachine as am
from asyncmachine import history

SCHEMA: am.Schema = {
    "Start": am.State(),
    "Ready": am.State(require=["Start"]),
    "Working": am.State(require=["Ready"], remove=["Idle"]),
    "Idle": am.State(remove=["Working"]),
    "MachineRestored": am.State(),
}


async def first_run(db: str) -> datetime:
    """The worker runs three jobs; returns when it became ready."""
    async with history.SqlStore(db) as store:
        worker = am.Machine(SCHEMA, id="worker")
        hist = history.track(worker, store, store_transitions=True)
        worker.add(["Start", "Ready", "Idle"])
        ready_at = datetime.now(UTC)
        for job in ("a", "b", "c"):
            worker.add1("Working", {"job": job})
            worker.add1("Idle")
        last = await hist.find_latest(history.Query(activated=["Working"]), limit=1)
        print("last job started at record", last[0].time.id)
        whole = await hist.active_between("Ready", ready_at, datetime.now(UTC))
        print("ready the whole time:", whole)
        print("records:", await store.count("worker"))
        print("before the restart:", worker)
    return ready_at


async def second_run(db: str) -> None:
    """A new process: rebuild the worker from the store's last record."""
    async with history.SqlStore(db) as store:
        worker = await history.restore(store, "worker", SCHEMA)
        print("after the restart: ", worker)
        print("restored (machine tick):", worker.machine_tick)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "history.db")
        await first_run(db)
        await second_run(db)


def backends() -> list[str]:
    """The backends chosen with --backend (both by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    chosen = parser.parse_args().backend
    return ["asyncio", "trio"] if chosen == "all" else [chosen]


if __name__ == "__main__":
    for backend in backends():
        print(f"--- {backend}")
        anyio.run(main, backend=backend)
