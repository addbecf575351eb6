"""A node worker: one machine doing work for one client at a time, over aRPC."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

import asyncmachine as am
from asyncmachine import rpc
from asyncmachine.states import (
    BOOTSTRAP_SCHEMA,
    WORKER_SCHEMA,
    BootstrapStates,
    WorkerStates,
)

from ._base import P_RESULT, POOL_SECRET_ENV, SECRET_ENV, NodeError, first

__all__ = ["WorkFn", "Worker", "run_worker"]

_W = WorkerStates
_RETRY = 0.1  # seconds between adoption attempts in the reconnect window

WorkFn = Callable[[Any], Awaitable[Any]]
"""The work of a worker: an async function from a job's input to its result
(both plain data msgpack can carry)."""


class _Handlers:
    """The worker machine's handlers (kept out of `Worker`'s public names)."""

    def __init__(self, worker: Worker) -> None:
        self.w = worker

    def WorkRequestedEnter(self, e: am.Event) -> bool:
        # one job at a time: a new request would cancel the running one
        busy = e.machine.any1(_W.WorkRequested, _W.Working)
        return not busy and "input" in e.args

    def WorkRequestedState(self, e: am.Event) -> None:
        e.machine.add1(_W.Working, dict(e.args))

    def WorkingState(self, e: am.Event) -> None:
        mach = e.machine
        mach.fork(mach.new_state_ctx(_W.Working), self.w._work, dict(e.args))

    def ClientConnectedEnter(self, e: am.Event) -> bool:
        session = e.args.get("session")
        return isinstance(session, str) and self.w._client_session in ("", session)

    def ClientConnectedState(self, e: am.Event) -> None:
        self.w._client_session = e.args["session"]
        e.machine.add1(_W.ServeClient)

    def ClientConnectedEnd(self, e: am.Event) -> None:
        self.w._client_session = ""
        e.machine.remove1(_W.ServeClient)


class _ServerHandlers:
    """Handlers on the worker's aRPC server machine."""

    def __init__(self, worker: Worker) -> None:
        self.w = worker

    def ClientDisconnectedState(self, e: am.Event) -> None:
        if e.args.get("session_id") == self.w._client_session:
            self.w.mach.remove1(_W.ClientConnected)


class Worker:
    """A node worker: serves its machine (`WORKER_SCHEMA`) over aRPC and runs
    `work` for the client the supervisor gave it, one job at a time.

    A worker process calls `run_worker(work)` in its `__main__`; the
    supervisor starts it as `python -m module --boot HOST:PORT` with its
    secret in the environment. In-process workers (for tests of the pool)
    are made by a factory given to `Supervisor` and run by it. See
    docs/node.md.
    """

    def __init__(
        self,
        work: WorkFn,
        *,
        schema: am.Schema = WORKER_SCHEMA,
        id: str | None = None,
        work_timeout: float | None = None,
        conn_timeout: float = 5.0,
        log_level: am.LogLevel | int = am.LogLevel.NOTHING,
    ) -> None:
        if not callable(work):
            raise TypeError(f"work must be an async function, got {work!r}")
        missing = [name for name in WORKER_SCHEMA if name not in schema]
        if missing:
            raise ValueError(f"schema lacks the worker states {missing}")
        if work_timeout is not None and not work_timeout > 0:
            raise ValueError(f"work_timeout must be positive, got {work_timeout}")
        self.id: str = id or f"w-{os.urandom(3).hex()}"
        """The worker's id (its machine's id)."""
        self.work: WorkFn = work
        """The work run for each job."""
        self.work_timeout: float | None = work_timeout
        """Seconds a job may take (None: no limit); then `ErrWorkTimeout`."""
        self.conn_timeout: float = conn_timeout
        """Seconds to register with the supervisor."""
        self.mach: am.Machine = am.Machine(
            schema, id=self.id, handlers=_Handlers(self), log_level=log_level
        )
        """The worker's machine (`WorkerStates`)."""
        self.port: int = 0
        """The port of the worker's aRPC server, once listening."""
        self.jobs: int = 0
        """Jobs finished (with a result or an error)."""
        self.adoptions: int = 0
        """Times a restarted supervisor adopted this worker."""
        self._client_session = ""
        self._stopping = False
        self._stopped: anyio.Event | None = None

    async def run(self, boot_host: str, boot_port: int, secret: str) -> None:
        """Serve the machine, register at the supervisor's bootstrap server
        `boot_host:boot_port` with `secret`, then serve until `stop()` (or
        a cancel).

        Raises `NodeError` (or the aRPC error, e.g. `rpc.AuthError`) when
        the registration fails.
        """
        mach = self.mach
        self._stopped = anyio.Event()
        if self._stopping:
            return
        async with mach:
            mach.add1(_W.Start)
            # clients (the supervisor, the served client) may ask for work,
            # introduce themselves, ping, and use the states a custom schema
            # adds; never Start, Ready or the work status itself
            own = [n for n in mach.state_names if n not in WORKER_SCHEMA]
            allow = [_W.WorkRequested, _W.ClientConnected, _W.Healthcheck, *own]
            async with rpc.Server(
                mach,
                secret=secret,
                id=f"rs-{self.id}",
                permissions=rpc.Permissions(
                    allow=[a for a in allow if a != "Exception"]
                ),
            ) as server:
                server.mach.bind_handlers(_ServerHandlers(self))
                self.port = server.port
                mach.add1(_W.PublicRpcReady)
                async with anyio.create_task_group() as tg:

                    async def register() -> None:
                        await self._register(boot_host, boot_port, secret)
                        mach.add1(_W.LocalRpcReady)
                        mach.add1(_W.Ready)

                    tg.start_soon(register)
                    await self._stopped.wait()
                    tg.cancel_scope.cancel()

    def stop(self) -> None:
        """Stop serving: `run()` returns (the in-process "kill")."""
        self._stopping = True
        if self._stopped is not None:
            self._stopped.set()

    async def _register(self, host: str, port: int, secret: str) -> None:
        boot = rpc.Client(
            host,
            port,
            BOOTSTRAP_SCHEMA,
            id=f"boot-{self.id}",
            secret=secret,
            reconnect=False,
            connect_timeout=self.conn_timeout,
        )
        async with boot:
            cs = rpc.ClientStates
            with anyio.fail_after(self.conn_timeout):
                i = await first(
                    boot.mach.when1(cs.Ready).wait,
                    boot.mach.when1(cs.ConnRetryFailed).wait,
                )
            if i == 1:
                err = boot.mach.err
                raise err if err is not None else NodeError("bootstrap refused")
            addr = {"host": "127.0.0.1", "port": self.port, "id": self.id}
            res = await boot.net_mach.add1(
                BootstrapStates.WorkerAddr, {**addr, "pid": os.getpid()}
            )
            if res != am.Result.EXECUTED:
                raise NodeError(f"the supervisor refused the registration: {res}")

    async def await_adoption(
        self,
        host: str,
        port: int,
        pool_secret: str,
        secret: str,
        window: float,
    ) -> None:
        """Re-register with a supervisor at `host:port` (its adoption server,
        which must prove `pool_secret`), then stay adopted while connected;
        return once `window` seconds pass with no supervisor.

        `secret` is this worker's own secret: the new supervisor learns it
        here and connects to the worker with it. See docs/node.md,
        "Supervisor restarts".
        """
        while True:
            deadline = anyio.current_time() + window
            while True:
                left = deadline - anyio.current_time()
                if left <= 0:
                    return
                if await self._adopt_once(host, port, pool_secret, secret, left):
                    break  # adopted, then that supervisor went away too
                await anyio.sleep(min(_RETRY, left))

    async def _adopt_once(
        self, host: str, port: int, pool_secret: str, secret: str, left: float
    ) -> bool:
        cs = rpc.ClientStates
        client = rpc.Client(
            host,
            port,
            BOOTSTRAP_SCHEMA,
            id=f"adopt-{self.id}",
            secret=pool_secret,
            reconnect=False,
            connect_timeout=min(self.conn_timeout, left),
        )
        async with client:
            adopted = False
            with anyio.move_on_after(left):
                i = await first(
                    client.mach.when1(cs.Ready).wait,
                    client.mach.when1(cs.ConnRetryFailed).wait,
                )
                if i == 0:
                    args = {"host": "127.0.0.1", "port": self.port, "id": self.id}
                    args.update(pid=os.getpid(), secret=secret)
                    try:
                        res = await client.net_mach.add1(
                            BootstrapStates.WorkerAddr, args
                        )
                    except rpc.RpcError:
                        res = am.Result.CANCELED
                    adopted = res == am.Result.EXECUTED
            if not adopted:
                return False
            self.adoptions += 1
            # the connection is the link to the new supervisor: it ends when
            # the supervisor dies (or stops, after killing this process)
            await client.mach.when1(cs.Disconnected).wait()
            return True

    async def _work(self, args: dict[str, Any]) -> None:
        mach = self.mach
        job = args.get("job", 0)
        session = args.get("session", "")
        error = ""
        result: Any = None
        try:
            with anyio.fail_after(self.work_timeout):
                result = await self.work(args["input"])
        except TimeoutError as exc:
            error = f"the work took over {self.work_timeout}s"
            mach.add_err_state(_W.ErrWorkTimeout, exc, {"job": job})
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            mach.add_err_state(_W.ErrWork, exc, {"job": job})
        else:
            mach.add1(_W.WorkReady, {"job": job})
        data = {"job": job, "ok": not error, "result": result, "error": error}
        sent = mach.add1(
            _W.SendPayload,
            {"payload": rpc.Payload(P_RESULT, data, destination=session)},
        )
        if sent == am.Result.CANCELED and not error:
            # e.g. a result over the client's max frame: say so, never drop it
            data = {**data, "ok": False, "result": None}
            data["error"] = "the result could not be sent (too large?)"
            mach.add1(
                _W.SendPayload,
                {"payload": rpc.Payload(P_RESULT, data, destination=session)},
            )
        self.jobs += 1
        if error:
            mach.remove([_W.ErrWork, _W.ErrWorkTimeout, am.EXCEPTION])
        mach.add1(_W.Idle)


async def _watch_stdin() -> None:
    """Return at EOF on stdin: the supervisor closed it or died."""
    while True:
        await anyio.wait_readable(0)
        if not os.read(0, 4096):
            return


def run_worker(
    work: WorkFn,
    *,
    schema: am.Schema = WORKER_SCHEMA,
    work_timeout: float | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    """The `__main__` of a worker process started by a `Supervisor`.

    Reads `--boot HOST:PORT`, `--id` and `--backend` from `argv` (default:
    the command line) and the secret from the environment variable
    `AM_NODE_SECRET`, registers and serves until killed, or until its stdin
    closes (the supervisor is gone: no orphans). Exits 3 with the reason
    on stderr when the registration fails.

    With `--adopt HOST:PORT` (and the pool secret in `AM_NODE_POOL_SECRET`)
    a worker whose supervisor is gone waits `--reconnect-window` seconds
    for a restarted supervisor to adopt it, and exits when none does.
    """
    parser = argparse.ArgumentParser(description="an asyncmachine node worker")
    parser.add_argument("--boot", required=True, help="HOST:PORT of the bootstrap")
    parser.add_argument("--id", default=None)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--adopt", default="", help="HOST:PORT of adoption")
    parser.add_argument("--reconnect-window", type=float, default=5.0)
    opts, _ = parser.parse_known_args(argv)
    host, _, port = opts.boot.rpartition(":")
    secret = os.environ.pop(SECRET_ENV, "")
    if not secret:
        sys.exit(f"node worker: no secret in ${SECRET_ENV}")
    pool_secret = os.environ.pop(POOL_SECRET_ENV, "")
    adopt_host, _, adopt_port = opts.adopt.rpartition(":")
    if opts.adopt and not pool_secret:
        sys.exit(f"node worker: --adopt needs the pool secret in ${POOL_SECRET_ENV}")
    worker = Worker(work, schema=schema, id=opts.id, work_timeout=work_timeout)

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def serve() -> None:
                await worker.run(host, int(port), secret)

            async def stdin() -> None:
                await _watch_stdin()
                if opts.adopt:
                    # the supervisor is gone: wait for a restarted one
                    await worker.await_adoption(
                        adopt_host,
                        int(adopt_port),
                        pool_secret,
                        secret,
                        opts.reconnect_window,
                    )
                # no supervisor: leave at once, nothing to hand over
                os._exit(0)

            tg.start_soon(serve)
            if not os.isatty(0):
                tg.start_soon(stdin)

    try:
        anyio.run(main, backend=opts.backend)
    except Exception as exc:
        while isinstance(exc, ExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        sys.stderr.write(f"node worker {worker.id}: {type(exc).__name__}: {exc}\n")
        sys.exit(3)
