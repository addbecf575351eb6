"""The file-processing workflow (after Temporal's sample), on asyncio and trio.

Three activities, download, process and upload, each have an "in progress"
state and a "done" state, and the two remove each other. Processing and
uploading are Auto states: each one starts by itself as soon as the previous
step is done, because it requires that step's "done" state.

The machine itself is synchronous. The work runs in this example's own anyio
task group: the final handlers (``...State``) start it as tasks. A task
checks, when its work is finished, that its state is still in the same
activation (the same tick) before it moves the flow on.

Run it with ``python examples/file_processing.py``.
"""

from __future__ import annotations

import anyio
import anyio.abc

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
    """Handlers: each activity's ``State`` handler starts its work as a task."""

    def __init__(self, tg: anyio.abc.TaskGroup, path: str) -> None:
        self.tg = tg
        self.path = path

    def DownloadingFileState(self, e: am.Event) -> None:
        self.start(e.machine, S.DownloadingFile, S.FileDownloaded)

    def ProcessingFileState(self, e: am.Event) -> None:
        self.start(e.machine, S.ProcessingFile, S.FileProcessed)

    def UploadingFileState(self, e: am.Event) -> None:
        self.start(e.machine, S.UploadingFile, S.FileUploaded)

    def start(self, mach: am.Machine, state: str, done: str) -> None:
        # remember which activation of `state` this work belongs to
        self.tg.start_soon(self.work, mach, state, done, mach.tick(state))

    async def work(self, mach: am.Machine, state: str, done: str, tick: int) -> None:
        await anyio.sleep(0.01)  # the activity's real work
        if mach.tick(state) != tick:
            return  # the state changed meanwhile: drop the result
        mach.add1(done, {"path": self.path})


async def main(backend: str) -> None:
    mach = am.Machine(SCHEMA, id=f"files-{backend}")
    mach.bind_tracer(PrintTransitions(backend))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            mach.bind_handlers(FileProcessing(tg, "report.pdf"))
            mach.add1(S.DownloadingFile, {"path": "report.pdf"})
    # the task group waited for every task: the flow has finished
    assert mach.is_([S.FileDownloaded, S.FileProcessed, S.FileUploaded]), mach
    print(f"[{backend:7}] done: {mach.string_all()}")


if __name__ == "__main__":
    for backend in ("asyncio", "trio"):
        anyio.run(main, backend, backend=backend)
