"""A task serving a machine over aRPC, cancelled from outside, ends.

It once did not on asyncio: the server's exit stack re-raised one
CancelledError through `Machine.__aexit__`, contextlib made it its own
`__context__`, and anyio's task bookkeeping looped on that chain forever
(the event loop hung). Each case runs in a subprocess with a timeout, so a
regression fails instead of hanging the suite.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import sys, anyio
import asyncmachine as am
from asyncmachine import rpc

async def main():
    async with anyio.create_task_group() as tg:
        started = anyio.Event()

        async def serve():
            async with am.Machine({"A": am.State()}) as mach, rpc.Server(mach):
                started.set()
                await anyio.sleep_forever()

        tg.start_soon(serve)
        await started.wait()
        tg.cancel_scope.cancel()
    print("ended")

anyio.run(main, backend=sys.argv[1])
"""


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_served_machine_cancelled_from_outside_ends(backend: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, backend],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "ended"
