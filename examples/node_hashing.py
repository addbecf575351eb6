"""A node pool hashing files: a supervisor keeps up to 4 worker processes,
4 clients get a worker each and hash their share of the files through it.
Midway one worker is killed with SIGKILL: its client sees `ErrWorker`, asks
for another worker and hashes the file again, and the supervisor reaps the
dead process and refills the pool. Exits 0 when every hash matches
`hashlib` and no worker process is left.

Run it with ``python examples/node_hashing.py [--backend asyncio|trio|all]``.
The same file is the worker: the supervisor starts it as
``python -m node_hashing --boot HOST:PORT`` (see docs/node.md).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import signal
import sys
import tempfile
from pathlib import Path

import anyio
import anyio.to_thread

from asyncmachine import node
from asyncmachine.states import NodeClientStates, SupervisorStates, WorkerStates

HERE = Path(__file__).resolve().parent


async def hash_file(path: str) -> str:
    """The work of a worker: the SHA-256 of a file (hashed in a thread, so
    the worker keeps answering the supervisor's health checks)."""

    def digest() -> str:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 16):
                h.update(chunk)
        return h.hexdigest()

    return await anyio.to_thread.run_sync(digest)


async def hash_share(
    client: node.Client, files: list[Path], results: dict[str, str], kill: bool
) -> None:
    """Hash `files` through the client's worker; kill the worker once
    (if `kill`) while it works and carry on with another one."""
    await client.request_worker()
    for path in files:
        while True:
            try:
                if kill:
                    kill = False
                    await kill_mid_work(client, path)
                    continue
                results[path.name] = await client.work(str(path))
                break
            except node.WorkerGoneError as exc:
                print(f"  {client.id}: {exc}; asking for another worker")
                assert client.mach.is1(NodeClientStates.ErrWorker)
                await client.request_worker()


async def kill_mid_work(client: node.Client, path: Path) -> None:
    """Start a job, SIGKILL the worker once it is `Working`."""
    pid = await client.work("pid")
    assert client.worker is not None
    working = client.worker.net_mach.when1(WorkerStates.Working)

    async def killer() -> None:
        await working
        print(f"  {client.id}: kill -9 worker {client.worker_id} (pid {pid})")
        os.kill(pid, signal.SIGKILL)

    async with anyio.create_task_group() as tg:
        tg.start_soon(killer)
        with contextlib.suppress(node.WorkerGoneError):
            await client.work(str(path))


async def work_or_pid(data: str) -> str | int:
    """Hash a file, or tell the worker's pid (for the kill)."""
    if data == "pid":
        return os.getpid()
    return await hash_file(data)


async def main(backend: str) -> None:
    """Start the pool, hash 32 files through 4 clients, survive a kill."""
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(32):
            path = Path(tmp) / f"file{i:02}.bin"
            path.write_bytes(os.urandom(256 << 10))
            files.append(path)
        expected = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
        results: dict[str, str] = {}
        supervisor = node.Supervisor(
            "node_hashing",
            secret=os.urandom(16).hex(),
            min=2,
            max=4,
            warm=1,
            env={"PYTHONPATH": str(HERE)},
        )
        with anyio.fail_after(60):
            async with supervisor as sup:
                await sup.mach.when1(SupervisorStates.Ready)
                print(f"[{backend}] pool ready: {len(sup.ready_workers)} workers")
                clients = [
                    node.Client("127.0.0.1", sup.port, secret=sup.secret, id=f"c{i}")
                    for i in range(4)
                ]
                gone = sup.mach.when_ticks(SupervisorStates.WorkerGone, 1)
                async with contextlib.AsyncExitStack() as stack:
                    for client in clients:
                        await stack.enter_async_context(client)
                    async with anyio.create_task_group() as tg:
                        for i, client in enumerate(clients):
                            share = files[i::4]
                            tg.start_soon(hash_share, client, share, results, i == 0)
                await gone
                await sup.mach.when1(SupervisorStates.PoolReady)
                print(f"  hashed {len(results)} files; workers started: {sup.started}")
                pids = sup.pids
                assert sup.started >= 5  # 4 plus the replacement
            assert results == expected
            assert not any(_alive(pid) for pid in pids)
            print(f"  pool stopped, {len(pids)} worker processes reaped")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): check its state
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] != "Z"


def backends() -> list[str]:
    """The backends chosen with --backend (both by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    chosen = parser.parse_args().backend
    return ["asyncio", "trio"] if chosen == "all" else [chosen]


if __name__ == "__main__":
    if "--boot" in sys.argv:  # started by the supervisor: be a worker
        node.run_worker(work_or_pid)
    else:
        for backend in backends():
            anyio.run(main, backend, backend=backend)
