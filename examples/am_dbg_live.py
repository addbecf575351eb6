"""A downloader that reports to the am-dbg debugger when AM_DBG_ADDR is set.

Start the debugger, then run this with the collector's address:

    am-dbg --listen-addr localhost:6831
    AM_DBG_ADDR=localhost:6831 python examples/am_dbg_live.py

Each backend's machine (`downloader-asyncio`, `downloader-trio`) shows up
in am-dbg's client list with its transitions, steps and log lines; a
canceled call (`Upload` needs `Done`) and an async handler are among them.
Without AM_DBG_ADDR it runs the same and only checks its outcome. Run it
with ``python examples/am_dbg_live.py [--backend asyncio|trio|all]``.
"""

from __future__ import annotations

import argparse

import anyio
import anyio.lowlevel

import asyncmachine as am
from asyncmachine.debugger import bind_dbg, close_senders

S = am.State
SCHEMA = {
    "Start": S(add=["Ready"]),
    "Ready": S(require=["Start"]),
    "Downloading": S(require=["Ready"]),
    "Downloaded": S(remove=["Downloading"]),
    "Done": S(require=["Downloaded"]),
    "Upload": S(require=["Done"]),
}


class Downloader:
    """Handlers: the download runs as an async handler of `Downloading`."""

    async def DownloadingState(self, e: am.Event) -> None:
        mach = e.machine
        mach.log("downloading %s", e.args.get("url", "?"))
        await anyio.lowlevel.checkpoint()
        mach.add1("Downloaded")


async def main(backend: str) -> None:
    """Run the download; report it to am-dbg when AM_DBG_ADDR is set."""
    mach = am.Machine(
        SCHEMA,
        id=f"downloader-{backend}",
        handlers=Downloader(),
        log_level=am.LogLevel.OPS,
    )
    mach.logger = lambda level, text: None
    tracer = bind_dbg(mach)  # None without AM_DBG_ADDR
    async with mach:  # async handlers need the machine running
        mach.add1("Start")
        mach.add1("Upload")  # canceled: Upload requires Done
        mach.add1("Downloading", {"url": "https://example.com/a"})
        with anyio.fail_after(10):
            await mach.when1("Downloaded")
        mach.add1("Done")
        assert mach.is1("Done") and not mach.is1("Downloading"), mach.active_states
    if tracer is not None and tracer.sender is not None:
        assert tracer.sender.flush(10), "am-dbg did not take the transitions"
    print(f"[{backend}] done; reported to am-dbg: {tracer is not None}")


def backends() -> list[str]:
    """The backends chosen with --backend (both by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    chosen = parser.parse_args().backend
    return ["asyncio", "trio"] if chosen == "all" else [chosen]


if __name__ == "__main__":
    try:
        for backend in backends():
            anyio.run(main, backend, backend=backend)
    finally:
        close_senders()
