"""A path watcher: a machine that polls a directory and reports changes.

``Start`` implies ``Watching``, whose async final handler polls the
directory with anyio (no extra dependencies): it takes a snapshot (names,
sizes, modification times), activates ``Ready`` and then compares a new
snapshot every few milliseconds. Each difference activates
``ChangeDetected``, a Multi state whose args say what was added, removed and
modified. The polling task is bound to ``Watching``: removing ``Start``
(which ``Watching`` requires) cancels it, with no flag to check.

The script watches a temporary directory it creates, makes three changes
in it, waits for the machine to see each one and checks what it saw.

Run it with ``python examples/path_watcher.py [--backend asyncio|trio|all]``.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

import anyio

import asyncmachine as am


class S(am.StatesBase):
    """State names of the watcher."""

    Start = am.state()
    Watching = am.state()
    Ready = am.state()
    ChangeDetected = am.state()


SCHEMA: am.Schema = {
    S.Start: am.State(add=[S.Watching]),
    S.Watching: am.State(require=[S.Start]),
    S.Ready: am.State(require=[S.Watching]),
    S.ChangeDetected: am.State(multi=True, require=[S.Watching]),
}

POLL_INTERVAL = 0.01
"""Seconds between two snapshots."""

Snapshot = dict[str, tuple[int, int]]


async def snapshot(path: anyio.Path) -> Snapshot:
    """Name -> (size, mtime in ns) of the files in `path`."""
    found: Snapshot = {}
    async for entry in path.iterdir():
        try:
            st = await entry.stat()
        except FileNotFoundError:  # gone between listing and stat
            continue
        found[entry.name] = (st.st_size, st.st_mtime_ns)
    return found


class Watcher:
    """Handlers: the polling task and the change log."""

    def __init__(self, path: str) -> None:
        self.path = anyio.Path(path)
        self.changes: list[dict[str, list[str]]] = []
        self.stopped = anyio.Event()

    async def WatchingState(self, e: am.Event) -> None:
        mach = e.machine
        try:
            before = await snapshot(self.path)
            mach.add1(S.Ready)
            while True:
                await anyio.sleep(POLL_INTERVAL)
                now = await snapshot(self.path)
                change = {
                    "added": sorted(now.keys() - before.keys()),
                    "removed": sorted(before.keys() - now.keys()),
                    "modified": sorted(
                        n for n in now.keys() & before.keys() if now[n] != before[n]
                    ),
                }
                if any(change.values()):
                    mach.add1(S.ChangeDetected, dict(change))
                before = now
        finally:
            # cancelled when Watching ends
            self.stopped.set()

    def ChangeDetectedState(self, e: am.Event) -> None:
        change: dict[str, Any] = e.args
        self.changes.append({k: list(v) for k, v in change.items()})
        parts = [f"{k} {', '.join(v)}" for k, v in change.items() if v]
        print(f"  change: {'; '.join(parts)}")


async def main(backend: str) -> None:
    """Watch a temporary directory, change it three times, check the log."""
    with (
        tempfile.TemporaryDirectory(prefix="am-watch-") as tmp,
        tempfile.TemporaryDirectory(prefix="am-stage-") as stage_dir,
    ):
        root = anyio.Path(tmp)
        stage = anyio.Path(stage_dir)

        async def put(name: str, text: str) -> None:
            # write elsewhere, then move in: the watcher never sees half a file
            await (stage / name).write_text(text)
            await (stage / name).replace(root / name)

        watcher = Watcher(tmp)
        print(f"[{backend}] watching a temporary directory")
        async with am.Machine(
            SCHEMA, id=f"watcher-{backend}", handlers=watcher
        ) as mach:
            mach.add1(S.Start)
            with anyio.fail_after(10):
                await mach.when1(S.Ready)
                for step in range(3):
                    seen = mach.when_ticks(S.ChangeDetected, 1)
                    if step == 0:
                        await put("a.txt", "one")
                    elif step == 1:
                        await put("a.txt", "one, two")
                    else:
                        await (root / "a.txt").rename(root / "b.txt")
                    await seen
                mach.remove1(S.Start)
                assert not mach.any1(S.Watching, S.Ready, S.ChangeDetected)
                await watcher.stopped.wait()
    assert watcher.changes == [
        {"added": ["a.txt"], "removed": [], "modified": []},
        {"added": [], "removed": [], "modified": ["a.txt"]},
        {"added": ["b.txt"], "removed": ["a.txt"], "modified": []},
    ], watcher.changes


def backends() -> list[str]:
    """The backends chosen with --backend (both by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    chosen = parser.parse_args().backend
    return ["asyncio", "trio"] if chosen == "all" else [chosen]


if __name__ == "__main__":
    for backend in backends():
        anyio.run(main, backend, backend=backend)
