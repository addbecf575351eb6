"""The file-processing workflow (after Temporal's sample), on asyncio and trio.

Three activities, download, process and upload, each have an "in progress"
state and a "done" state, and the two remove each other. Processing and
uploading are Auto states: each one starts by itself as soon as the previous
step is done, because it requires that step's "done" state.

The machine runs as an anyio task group (``async with``). Each activity is
an async final handler, which the machine runs as a task bound to its
state's context: it is cancelled if the state ends first.

Run it with ``python examples/file_processing.py [--backend asyncio|trio|all]``.
"""

from __future__ import annotations

import argparse

import anyio

import asyncmachine as am


class S(am.StatesBase):
    """Typed state names."""

    DownloadingFile = am.state()
    FileDownloaded = am.state()
    ProcessingFile = am.state()
    FileProcessed = am.state()
    UploadingFile = am.state()
    FileUploaded = am.state()


# mutually exclusive groups: every member removes the others
GROUP_DOWNLOADED = [S.DownloadingFile, S.FileDownloaded]
GROUP_PROCESSED = [S.ProcessingFile, S.FileProcessed]
GROUP_UPLOADED = [S.UploadingFile, S.FileUploaded]

SCHEMA: am.Schema = {
    S.DownloadingFile: am.State(remove=GROUP_DOWNLOADED),
    S.FileDownloaded: am.State(remove=GROUP_DOWNLOADED),
    S.ProcessingFile: am.State(
        auto=True, require=[S.FileDownloaded], remove=GROUP_PROCESSED
    ),
    S.FileProcessed: am.State(remove=GROUP_PROCESSED),
    S.UploadingFile: am.State(
        auto=True, require=[S.FileProcessed], remove=GROUP_UPLOADED
    ),
    S.FileUploaded: am.State(remove=GROUP_UPLOADED),
}


class PrintTransitions(am.Tracer):
    """Print every accepted transition: what changed, and the result."""

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def transition_end(self, tx: am.Transition) -> None:
        if not tx.is_accepted:
            return
        before, after = tx.clock_before, tx.clock_after
        changes = " ".join(
            ("+" if tick % 2 else "-") + name
            for name, tick in after.items()
            if tick != before.get(name)
        )
        kind = "auto" if tx.mutation.auto else str(tx.mutation.type)
        print(f"[{self.backend:7}] {kind:4} {changes:34} {tx.machine}")


class FileProcessing:
    """Handlers: each activity's ``State`` handler is an async final handler.

    The machine starts it as a task in its own task group, inside a cancel
    scope bound to that state: if the state ends before the work is done,
    the work is cancelled. An exception raised here becomes the Exception
    state.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    async def DownloadingFileState(self, e: am.Event) -> None:
        await self.work(e.machine, S.FileDownloaded)

    async def ProcessingFileState(self, e: am.Event) -> None:
        await self.work(e.machine, S.FileProcessed)

    async def UploadingFileState(self, e: am.Event) -> None:
        await self.work(e.machine, S.FileUploaded)

    async def work(self, mach: am.Machine, done: str) -> None:
        await anyio.sleep(0.01)  # the activity's real work
        mach.add1(done, {"path": self.path})


async def main(backend: str) -> None:
    with anyio.fail_after(5):
        async with am.Machine(SCHEMA, id=f"files-{backend}") as mach:
            mach.bind_tracer(PrintTransitions(backend))
            mach.bind_handlers(FileProcessing("report.pdf"))
            uploaded = mach.when1(S.FileUploaded)
            failed = mach.when_err()
            mach.add1(S.DownloadingFile, {"path": "report.pdf"})
            await uploaded
            assert not failed.is_set(), mach.err
            assert mach.is_([S.FileDownloaded, S.FileProcessed, S.FileUploaded]), mach
            print(f"[{backend:7}] done: {mach.string_all()}")


def backends() -> list[str]:
    """The backends chosen with --backend (both by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    chosen = parser.parse_args().backend
    return ["asyncio", "trio"] if chosen == "all" else [chosen]


if __name__ == "__main__":
    for backend in backends():
        anyio.run(main, backend, backend=backend)
