"""The node client: asks the supervisor for a worker, then uses it directly."""

from __future__ import annotations

import contextlib
import itertools
import os
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

import asyncmachine as am
from asyncmachine import rpc
from asyncmachine.states import (
    NODE_CLIENT_SCHEMA,
    SUPERVISOR_SCHEMA,
    WORKER_SCHEMA,
    NodeClientStates,
    SupervisorStates,
    WorkerStates,
)

from ._base import (
    P_RESULT,
    P_WORKER,
    P_WORKER_GONE,
    NodeError,
    WorkerGoneError,
    WorkError,
    first,
)

__all__ = ["Client"]

_C = NodeClientStates
_S = SupervisorStates
_W = WorkerStates
_CS = rpc.ClientStates


class _Job:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class _Handlers:
    """The client machine's handlers: payloads of the supervisor."""

    def __init__(self, client: Client) -> None:
        self.c = client

    def ServerPayloadState(self, e: am.Event) -> None:
        payload = e.args.get("payload")
        if not isinstance(payload, rpc.Payload) or not isinstance(payload.data, dict):
            return
        c = self.c
        if payload.name == P_WORKER and c._tg is not None:
            c._connect_worker(payload.data)
        elif payload.name == P_WORKER_GONE and payload.data.get("id") == c.worker_id:
            c._worker_lost(WorkerGoneError(f"worker {c.worker_id} is gone"))


class _ResultHandlers:
    """Handlers of the consumer of the worker's payloads: job results."""

    def __init__(self, client: Client) -> None:
        self.c = client

    def ServerPayloadState(self, e: am.Event) -> None:
        payload = e.args.get("payload")
        if not isinstance(payload, rpc.Payload) or payload.name != P_RESULT:
            return
        data = payload.data
        if not isinstance(data, dict) or not isinstance(data.get("job"), int):
            return
        job = self.c._jobs.pop(data["job"], None)
        if job is None:
            return
        if data.get("ok"):
            job.result = data.get("result")
        else:
            job.error = WorkError(str(data.get("error")))
        job.done.set()


class Client:
    """A node client: connects to a supervisor, gets a worker, sends it work.

    `async with node.Client(host, port, secret=...) as client:` connects to
    the supervisor; `await client.request_worker()` asks for a worker (the
    supervisor sends its address and secret as a payload, the client
    connects to it directly); `await client.work(data)` runs one job and
    returns its result. When the worker dies, `client.mach` gets `ErrWorker`
    and `work` raises `WorkerGoneError`: request another worker. See
    docs/node.md.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        secret: bytes | str,
        worker_schema: am.Schema = WORKER_SCHEMA,
        id: str | None = None,
        conn_timeout: float = 5.0,
        log_level: am.LogLevel | int = am.LogLevel.NOTHING,
    ) -> None:
        missing = [n for n in WORKER_SCHEMA if n not in worker_schema]
        if missing:
            raise ValueError(f"worker_schema lacks the worker states {missing}")
        if not conn_timeout > 0:
            raise ValueError(f"conn_timeout must be positive, got {conn_timeout}")
        self.id: str = id or f"nc-{os.urandom(3).hex()}"
        """The client's id (its machine's id)."""
        self.host = host
        """The supervisor's address."""
        self.port = port
        """The supervisor's port."""
        self.worker_schema = worker_schema
        """The workers' schema."""
        self.conn_timeout = conn_timeout
        """Seconds to connect to the supervisor and to a worker."""
        self.mach: am.Machine = am.Machine(
            NODE_CLIENT_SCHEMA,
            id=self.id,
            handlers=_Handlers(self),
            log_level=log_level,
        )
        """The client's machine (`NodeClientStates`)."""
        self.worker_id: str = ""
        """The id of the current worker ("" without one)."""
        self.super: rpc.Client = rpc.Client(
            host,
            port,
            SUPERVISOR_SCHEMA,
            id=self.id,
            consumer=self.mach,
            secret=secret,
            connect_timeout=conn_timeout,
        )
        """The aRPC client of the supervisor (`super.net_mach` mirrors it)."""
        self.worker: rpc.Client | None = None
        """The aRPC client of the current worker."""
        self._results = am.Machine(
            rpc.CONSUMER_SCHEMA, id=f"{self.id}-results", handlers=_ResultHandlers(self)
        )
        self._jobs: dict[int, _Job] = {}
        self._ids = itertools.count(1)
        self._worker_scope: anyio.CancelScope | None = None
        self._lost: NodeError | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._exit: contextlib.AsyncExitStack | None = None

    # ------------------------------------------------------------ running

    async def __aenter__(self) -> Client:
        async with contextlib.AsyncExitStack() as stack:
            mach = await stack.enter_async_context(self.mach)
            await stack.enter_async_context(self._results)
            mach.add1(_C.Start)
            mach.add1(_C.SuperConnecting)
            await stack.enter_async_context(self.super)
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            self._tg = tg
            tg.start_soon(self._watch_super)
            self._exit = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack = self._exit
        if stack is None:
            raise RuntimeError(f"the node client {self.id} is not running")
        self._exit = None
        self._tg = None
        self._fail_jobs(NodeError(f"the node client {self.id} stopped"))
        await stack.__aexit__(exc_type, exc, tb)

    async def _watch_super(self) -> None:
        mach = self.mach
        rc = self.super.mach
        while True:
            i = await first(
                rc.when1(_CS.Ready).wait, rc.when1(_CS.ConnRetryFailed).wait
            )
            if i == 1:
                err = rc.err or NodeError("the supervisor refused the connection")
                mach.add_err_state(_C.ErrSupervisor, err)
                mach.add1(_C.SuperDisconnected)
                return
            mach.add1(_C.SuperConnected)
            mach.add1(_C.SuperReady)
            await rc.when1(_CS.Disconnected).wait()
            if rc.disposed:
                return
            mach.remove([_C.WorkerRequested, _C.SuperReady])
            mach.add1(_C.SuperDisconnected)
            mach.add1(_C.SuperConnecting)

    # ------------------------------------------------------------ workers

    async def request_worker(self) -> str:
        """Ask the supervisor for a worker and connect to it; return its id.

        Waits for the supervisor and for an idle worker (bound it with
        `anyio.fail_after`); drops the current worker, if any. Raises
        `NodeError` when the worker given does not connect.
        """
        mach = self.mach
        net = self.super.net_mach
        await mach.when1(_C.SuperReady).wait()
        self._drop_worker()
        mach.add1(_C.WorkerRequested)
        errors = mach.tick(_C.ErrWorker)
        while True:
            args = {"session": self.super.session_id}
            if await net.add1(_S.ProvideWorker, args) == am.Result.EXECUTED:
                break
            if net.is1(_S.WorkersAvailable):
                await net.when_ticks(_S.WorkersAvailable, 1).wait()
            else:
                await net.when1(_S.WorkersAvailable).wait()
        await mach.when_query(
            lambda c: c[_C.WorkerReady] % 2 == 1 or c[_C.ErrWorker] > errors
        ).wait()
        if mach.not1(_C.WorkerReady):
            raise NodeError(f"the worker did not connect: {mach.err}")
        return self.worker_id

    def _connect_worker(self, data: dict[str, Any]) -> None:
        assert self._tg is not None
        self._drop_worker()
        self._lost = None
        self.worker_id = str(data.get("id", ""))
        scope = anyio.CancelScope()
        self._worker_scope = scope
        self.mach.add1(_C.WorkerConnecting, {"id": self.worker_id})
        self._tg.start_soon(self._use_worker, data, scope)

    async def _use_worker(self, data: dict[str, Any], scope: anyio.CancelScope) -> None:
        mach = self.mach
        wid = self.worker_id
        client = rpc.Client(
            data["host"],
            data["port"],
            self.worker_schema,
            id=f"{self.id}-{wid}",
            consumer=self._results,
            secret=data["secret"],
            reconnect=False,
            connect_timeout=self.conn_timeout,
        )
        with scope:
            async with client:
                with anyio.move_on_after(self.conn_timeout):
                    i = await first(
                        client.mach.when1(_CS.Ready).wait,
                        client.mach.when1(_CS.ConnRetryFailed).wait,
                    )
                if client.mach.not1(_CS.Ready):
                    self._worker_lost(NodeError(f"worker {wid}: {client.mach.err}"))
                    return
                res = await client.net_mach.add1(
                    _W.ClientConnected, {"session": client.session_id}
                )
                if res != am.Result.EXECUTED:
                    self._worker_lost(NodeError(f"worker {wid} refused the client"))
                    return
                self.worker = client
                mach.add1(_C.WorkerConnected, {"id": wid})
                mach.add1(_C.WorkerReady, {"id": wid})
                await client.mach.when1(_CS.Disconnected).wait()
                self._worker_lost(WorkerGoneError(f"worker {wid} is gone"))
        del i

    def _worker_lost(self, err: NodeError) -> None:
        if self._worker_scope is None:
            return
        self._worker_scope.cancel()
        self._worker_scope = None
        self.worker = None
        self._lost = err
        self._fail_jobs(err)
        mach = self.mach
        mach.remove([_C.Ready, _C.WorkerReady, _C.WorkerRequested])
        mach.add_err_state(_C.ErrWorker, err, {"id": self.worker_id})
        mach.add1(_C.WorkerDisconnected)

    def release_worker(self) -> None:
        """Disconnect from the current worker (if any): the supervisor gives
        it to another client. Pending jobs fail with `NodeError`."""
        self._drop_worker()

    def _drop_worker(self) -> None:
        if self._worker_scope is not None:
            self._worker_scope.cancel()
            self._worker_scope = None
            self.worker = None
            self._fail_jobs(NodeError("the worker was dropped"))
            self.mach.remove([_C.Ready, _C.WorkerReady])
            self.mach.add1(_C.WorkerDisconnected)

    def _fail_jobs(self, err: BaseException) -> None:
        jobs = list(self._jobs.values())
        self._jobs.clear()
        for job in jobs:
            job.error = err
            job.done.set()

    async def work(self, input: Any) -> Any:
        """Run one job on the worker and return its result.

        Raises `WorkError` when the work raised on the worker,
        `WorkerGoneError` when the worker died (now or before; request
        another),
        `NodeError` without a worker or when it is busy. Bound it with
        `anyio.fail_after`.
        """
        worker = self.worker
        if worker is None or self.mach.not1(_C.WorkerReady):
            if self._lost is not None:
                raise WorkerGoneError(str(self._lost))
            raise NodeError(f"the node client {self.id} has no worker")
        job_id = next(self._ids)
        job = _Job()
        self._jobs[job_id] = job
        try:
            args = {"input": input, "job": job_id, "session": worker.session_id}
            res = await worker.net_mach.add1(_W.WorkRequested, args)
            if res != am.Result.EXECUTED:
                raise NodeError(f"the worker {self.worker_id} refused the job")
            await job.done.wait()
        except rpc.NotConnectedError as exc:
            err = WorkerGoneError(f"worker {self.worker_id} is gone")
            self._worker_lost(err)  # now, not when the watcher wakes up
            raise err from exc
        finally:
            self._jobs.pop(job_id, None)
        if job.error is not None:
            raise job.error
        return job.result
