"""The node supervisor: keeps a pool of worker processes, hands them out."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

import anyio
import anyio.abc
import sniffio

import asyncmachine as am
from asyncmachine import rpc
from asyncmachine.states import (
    BOOTSTRAP_SCHEMA,
    SUPERVISOR_SCHEMA,
    WORKER_SCHEMA,
    BootstrapStates,
    SupervisorStates,
    WorkerStates,
)

from ._base import (
    P_WORKER,
    P_WORKER_GONE,
    POOL_SECRET_ENV,
    SECRET_ENV,
    NodeError,
    first,
)
from ._worker import Worker

__all__ = ["Supervisor", "WorkerFactory", "WorkerInfo"]

_S = SupervisorStates
_W = WorkerStates
_CS = rpc.ClientStates

WorkerFactory = Callable[[], Worker]
"""Makes an in-process worker (a new `Worker` for each start)."""

Status = Literal["starting", "ready", "gone"]

_TAIL = 2048  # bytes of a worker's stderr kept for the error message


class _StartFailed(NodeError):
    pass


class _OsProc:
    """A worker process in its own session (its process group)."""

    def __init__(self, proc: anyio.abc.Process) -> None:
        self.proc = proc
        self.pid: int | None = proc.pid
        self.stderr: bytes = b""
        self.exited: anyio.Event = anyio.Event()
        self.returncode: int | None = None

    async def watch(self) -> None:
        stream = self.proc.stderr
        if stream is not None:
            with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError):
                async for chunk in stream:
                    self.stderr = (self.stderr + chunk)[-_TAIL:]
        self.returncode = await self.proc.wait()
        self.exited.set()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    async def reap(self) -> None:
        with anyio.CancelScope(shield=True):
            self.kill()
            await self.proc.wait()
            await self.proc.aclose()

    def reason(self) -> str:
        tail = self.stderr.decode(errors="replace").strip()
        last = tail.splitlines()[-1] if tail else ""
        return f"exit code {self.returncode}" + (f": {last}" if last else "")


class _PidProc:
    """An adopted worker process: not a child of this supervisor, so it is
    watched through a pidfd (Linux) and killed by its process group."""

    def __init__(self, pid: int) -> None:
        self.pid: int | None = pid
        self.exited: anyio.Event = anyio.Event()
        self.returncode: int | None = None
        self._fd: int | None = None
        if hasattr(os, "pidfd_open"):
            self._fd = os.pidfd_open(pid)  # ProcessLookupError: gone already
        else:  # pragma: no cover - not Linux
            os.kill(pid, 0)

    async def watch(self) -> None:
        try:
            if self._fd is not None:
                await anyio.wait_readable(self._fd)
            else:  # pragma: no cover - not Linux: no exit notification
                while True:
                    os.kill(self.pid or 0, 0)
                    await anyio.sleep(0.2)
        except (OSError, anyio.ClosedResourceError):
            pass
        self.returncode = -9
        self.exited.set()

    def kill(self) -> None:
        pid = self.pid
        assert pid is not None
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            if self._fd is not None:
                # race-free: the pidfd names this process, not a reused pid
                signal.pidfd_send_signal(self._fd, signal.SIGKILL)
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)

    async def reap(self) -> None:
        with anyio.CancelScope(shield=True):
            self.kill()
            await self.exited.wait()
            # reaped by its parent (init, or this process as a subreaper)
            if self.pid is not None:
                with contextlib.suppress(ChildProcessError, OSError):
                    # WNOHANG: never blocks (the process has exited)
                    os.waitpid(self.pid, os.WNOHANG)  # noqa: ASYNC222
            self.close()

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            anyio.notify_closing(fd)  # ends a `watch` waiting on it
            os.close(fd)

    def reason(self) -> str:
        return "exited"


class _TaskProc:
    """An in-process worker: a task in the supervisor, killed by a cancel."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.pid: int | None = None
        self.exited: anyio.Event = anyio.Event()
        self.returncode: int | None = None
        self.error: str = ""

    async def run(self, host: str, port: int, secret: str) -> None:
        try:
            await self.worker.run(host, port, secret)
        except Exception as exc:
            while isinstance(exc, ExceptionGroup) and exc.exceptions:
                exc = exc.exceptions[0]
            self.error = f"{type(exc).__name__}: {exc}"
            self.returncode = 1
        finally:
            if self.returncode is None:
                self.returncode = -9
            self.exited.set()

    async def watch(self) -> None:
        await self.exited.wait()

    def kill(self) -> None:
        # a graceful stop: cancelling a served machine from outside is not
        # needed here, and its sockets close all the same
        self.worker.stop()

    async def reap(self) -> None:
        with anyio.CancelScope(shield=True):
            self.kill()
            await self.exited.wait()

    def reason(self) -> str:
        return self.error or f"exit code {self.returncode}"


class WorkerInfo:
    """What the supervisor knows of one worker (read-only for users)."""

    def __init__(self, id: str) -> None:
        self.id: str = id
        """The worker's id."""
        self.status: Status = "starting"
        """`starting`, `ready` or `gone`."""
        self.pid: int | None = None
        """The worker's process id (None in-process or before the start)."""
        self.host: str = ""
        """The host of the worker's aRPC server (after registration)."""
        self.port: int = 0
        """The port of the worker's aRPC server (after registration)."""
        self.session: str = ""
        """The client session the worker was given to ("" when idle)."""
        self.provided_at: float = 0.0
        self.errors: deque[float] = deque()
        self.killing = False
        self.scope: anyio.CancelScope = anyio.CancelScope()
        self.client: rpc.Client | None = None
        self.proc: _OsProc | _TaskProc | _PidProc | None = None
        self.registered: anyio.Event = anyio.Event()
        self.done: anyio.Event = anyio.Event()
        self.started = False
        self.adopted: bool = False
        """Re-registered after its supervisor's restart (see docs/node.md,
        "Supervisor restarts")."""

    @property
    def net_mach(self) -> rpc.NetMachine | None:
        """The worker's machine, as the supervisor sees it (when ready)."""
        return self.client.net_mach if self.client is not None else None

    def __repr__(self) -> str:
        return f"<WorkerInfo {self.id} {self.status} pid={self.pid} port={self.port}>"


class _BootHandlers:
    def __init__(self, info: WorkerInfo) -> None:
        self.info = info

    def WorkerAddrEnter(self, e: am.Event) -> bool:
        a = e.args
        return (
            isinstance(a.get("port"), int)
            and isinstance(a.get("host"), str)
            and not self.info.registered.is_set()
        )

    def WorkerAddrState(self, e: am.Event) -> None:
        self.info.host = e.args["host"]
        self.info.port = e.args["port"]
        self.info.registered.set()


class _AdoptHandlers:
    """The adoption server's machine: workers of a previous supervisor run
    re-register here (authenticated by the pool secret)."""

    def __init__(self, sup: Supervisor) -> None:
        self.s = sup

    def WorkerAddrEnter(self, e: am.Event) -> bool:
        a = e.args
        ok = (
            isinstance(a.get("host"), str)
            and isinstance(a.get("port"), int)
            and isinstance(a.get("pid"), int)
            and a["pid"] > 1
            and isinstance(a.get("id"), str)
            and bool(a["id"])
            and isinstance(a.get("secret"), str)
            and bool(a["secret"])
        )
        return ok and self.s._can_adopt(a["id"])

    def WorkerAddrState(self, e: am.Event) -> None:
        a = e.args
        self.s._adopt(a["id"], a["host"], a["port"], a["pid"], a["secret"])


class _Handlers:
    """The supervisor machine's handlers."""

    def __init__(self, sup: Supervisor) -> None:
        self.s = sup

    def NormalizingPoolState(self, e: am.Event) -> None:
        # added by relations (e.g. ErrWorker); the supervisor also calls
        # _normalize itself on every change of the pool
        self.s._normalize()

    def ForkWorkerEnter(self, e: am.Event) -> bool:
        info = self.s._workers.get(e.args.get("id", ""))
        return info is not None and info.proc is None and self.s._tg is not None

    def ForkWorkerState(self, e: am.Event) -> None:
        info = self.s._workers[e.args["id"]]
        self.s._event(_S.ForkingWorker, {"id": info.id})
        e.machine.remove1(_S.ForkWorker)
        assert self.s._tg is not None
        self.s._tg.start_soon(self.s._run_worker, info)

    def KillWorkerEnter(self, e: am.Event) -> bool:
        return e.args.get("id", "") in self.s._workers

    def KillWorkerState(self, e: am.Event) -> None:
        info = self.s._workers[e.args["id"]]
        info.killing = True
        self.s._event(_S.KillingWorker, {"id": info.id})
        e.machine.remove1(_S.KillWorker)
        info.scope.cancel()

    def ProvideWorkerEnter(self, e: am.Event) -> bool:
        session = e.args.get("session")
        public = self.s._public
        if not isinstance(session, str) or public is None:
            return False
        return session in public.sessions and bool(self.s._idle())

    def ProvideWorkerState(self, e: am.Event) -> None:
        e.machine.remove1(_S.ProvideWorker)
        self.s._provide(e.args["session"])

    def WorkerIssuesState(self, e: am.Event) -> None:
        e.machine.remove1(_S.WorkerIssues)
        info = self.s._workers.get(e.args.get("id", ""))
        if info is not None:
            self.s._worker_error(info, NodeError(f"a client reported {info.id}"))

    def ErrWorkerState(self, e: am.Event) -> None:
        if e.machine.not1(_S.ErrPool):
            e.machine.remove([_S.ErrWorker, am.EXCEPTION])

    def ErrPoolEnd(self, e: am.Event) -> None:
        self.s._start_failures = 0
        self.s._normalize()

    def HeartbeatState(self, e: am.Event) -> None:
        mach = e.machine
        mach.fork(mach.new_state_ctx(_S.Heartbeat), self.s._heartbeat)


class _PublicHandlers:
    def __init__(self, sup: Supervisor) -> None:
        self.s = sup

    def ClientConnectedState(self, e: am.Event) -> None:
        self.s._event(_S.ClientConnected, {"session": e.args["session_id"]})

    def ClientDisconnectedState(self, e: am.Event) -> None:
        self.s._event(_S.ClientDisconnected, {"session": e.args["session_id"]})


class Supervisor:
    """Keeps a pool of workers alive and gives them to clients.

    `async with node.Supervisor("my.worker.module", secret=...) as sup:`
    serves the supervisor's machine (`SUPERVISOR_SCHEMA`) to clients over
    aRPC on `sup.port` and starts workers as separate processes
    (`sys.executable -m my.worker.module`, each in its own process group,
    with its own secret) until `min` are ready and `warm` are idle, up to
    `max`. Dead workers are reaped and replaced, and their clients told. A
    callable instead of the module name runs in-process workers (fast tests
    of the pool logic). With `pool_secret` and a fixed `adopt_port`, the
    workers of a previous run (e.g. killed) re-register within their
    `reconnect_window` and are adopted. See docs/node.md.
    """

    def __init__(
        self,
        worker: str | WorkerFactory,
        *,
        secret: bytes | str,
        min: int = 2,
        max: int = 10,
        warm: int = 1,
        heartbeat: float = 60.0,
        conn_timeout: float = 5.0,
        worker_err_kill: int = 3,
        worker_err_window: float = 60.0,
        max_start_failures: int = 3,
        worker_schema: am.Schema = WORKER_SCHEMA,
        worker_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        id: str | None = None,
        pool_secret: str | None = None,
        adopt_port: int = 0,
        reconnect_window: float = 5.0,
        adopt_wait: float | None = None,
        log_level: am.LogLevel | int = am.LogLevel.NOTHING,
    ) -> None:
        if pool_secret is not None:
            if not isinstance(pool_secret, str) or not pool_secret:
                raise ValueError("pool_secret must be a non-empty string")
            if not isinstance(worker, str):
                raise ValueError("pool_secret needs worker processes (a module)")
            if not 0 < adopt_port < 65536:
                raise ValueError(
                    f"adopt_port must be a fixed port with pool_secret, got {adopt_port}"
                )
        if not reconnect_window > 0:
            raise ValueError(
                f"reconnect_window must be positive, got {reconnect_window}"
            )
        if adopt_wait is not None and not adopt_wait >= 0:
            raise ValueError(f"adopt_wait must be at least 0, got {adopt_wait}")
        if not isinstance(worker, str) and not callable(worker):
            raise TypeError(
                f"worker must be a module name or a Worker factory, got {worker!r}"
            )
        for name, value in (("min", min), ("warm", warm)):
            if value < 0:
                raise ValueError(f"{name} must be at least 0, got {value}")
        for name, value in (
            ("max", max),
            ("worker_err_kill", worker_err_kill),
            ("max_start_failures", max_start_failures),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if min > max:
            raise ValueError(f"min ({min}) must not exceed max ({max})")
        for name, t in (
            ("heartbeat", heartbeat),
            ("conn_timeout", conn_timeout),
            ("worker_err_window", worker_err_window),
        ):
            if not t > 0:
                raise ValueError(f"{name} must be positive, got {t}")
        missing = [n for n in WORKER_SCHEMA if n not in worker_schema]
        if missing:
            raise ValueError(f"worker_schema lacks the worker states {missing}")
        self.worker = worker
        """The worker module (run as a process) or in-process factory."""
        self.secret = secret
        """The clients' shared secret for the public aRPC server."""
        self.min = min
        """Workers the pool keeps ready at least (`PoolReady` needs them)."""
        self.max = max
        """Workers at most, starting ones included."""
        self.warm = warm
        """Idle ready workers kept on top of the busy ones (within `max`)."""
        self.heartbeat = heartbeat
        """Seconds between health checks of the workers."""
        self.conn_timeout = conn_timeout
        """Seconds for a worker to start and register, for a health check,
        and for a client to connect to the worker it was given."""
        self.worker_err_kill = worker_err_kill
        """A worker with this many errors within `worker_err_window` seconds
        is killed (and replaced)."""
        self.worker_err_window = worker_err_window
        """The window of `worker_err_kill`, in seconds."""
        self.max_start_failures = max_start_failures
        """Workers in a row that fail to start before `ErrPool` (the pool
        stops starting workers until `ErrPool` is removed)."""
        self.worker_schema = worker_schema
        """The workers' schema (`WORKER_SCHEMA` or a superset)."""
        self.worker_args: list[str] = list(worker_args)
        """Extra command-line arguments of worker processes."""
        self.env: dict[str, str] = dict(env or {})
        """Extra environment variables of worker processes."""
        self.host = host
        """The public server's address (loopback by default)."""
        self.port: int = port
        """The public server's port (the bound one once running)."""
        self.id: str = id or f"sup-{os.urandom(3).hex()}"
        """The supervisor's id (its machine's id)."""
        self.mach: am.Machine = am.Machine(
            SUPERVISOR_SCHEMA, id=self.id, handlers=_Handlers(self), log_level=log_level
        )
        """The supervisor's machine (`SupervisorStates`)."""
        self.pool_secret: str | None = pool_secret
        """The secret of the adoption server (None: no adoption): workers of
        a previous run with the same pool secret re-register here."""
        self.adopt_port: int = adopt_port
        """The fixed port of the adoption server (with `pool_secret`)."""
        self.reconnect_window: float = reconnect_window
        """Seconds a worker process whose supervisor is gone waits for a
        new one at `adopt_port` before it exits (with `pool_secret`)."""
        self.adopt_wait: float = reconnect_window if adopt_wait is None else adopt_wait
        """Seconds a starting supervisor (with `pool_secret`) waits for
        workers to re-register before it starts new ones (it stops waiting
        once `min` are ready)."""
        self.adopted: int = 0
        """Workers adopted so far."""
        self.pool_error: NodeError | None = None
        """Why `ErrPool` is active (the last worker's start failure)."""
        self.started: int = 0
        """Workers started so far (processes or in-process tasks)."""
        self._workers: dict[str, WorkerInfo] = {}
        self._secrets: dict[str, str] = {}
        self._start_failures = 0
        self._public: rpc.Server | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._exit: contextlib.AsyncExitStack | None = None
        self._seq = 0
        self._adopting = False
        self._adopt_done: anyio.Event | None = None

    # ------------------------------------------------------------ info

    @property
    def workers(self) -> list[WorkerInfo]:
        """All workers, starting ones included."""
        return list(self._workers.values())

    @property
    def ready_workers(self) -> list[WorkerInfo]:
        """Workers ready for work (idle or given to a client)."""
        return [w for w in self._workers.values() if w.status == "ready"]

    @property
    def pids(self) -> list[int]:
        """Process ids of the worker processes alive now."""
        return [w.pid for w in self._workers.values() if w.pid is not None]

    def _idle(self) -> list[WorkerInfo]:
        return [w for w in self.ready_workers if not w.session and not w.killing]

    # ------------------------------------------------------------ running

    async def __aenter__(self) -> Supervisor:
        if self._exit is not None:
            raise RuntimeError(f"the supervisor {self.id} is already running")
        async with contextlib.AsyncExitStack() as stack:
            mach = await stack.enter_async_context(self.mach)
            public = rpc.Server(
                mach,
                host=self.host,
                port=self.port,
                secret=self.secret,
                id=f"rs-{self.id}",
                permissions=rpc.Permissions(allow=[_S.ProvideWorker, _S.WorkerIssues]),
            )
            await stack.enter_async_context(public)
            public.mach.bind_handlers(_PublicHandlers(self))
            self._public = public
            self.port = public.port
            if self.pool_secret is not None:
                adopt_mach = am.Machine(
                    BOOTSTRAP_SCHEMA,
                    id=f"adopt-{self.id}",
                    handlers=_AdoptHandlers(self),
                )
                await stack.enter_async_context(adopt_mach)
                await stack.enter_async_context(
                    rpc.Server(
                        adopt_mach,
                        host=self.host,
                        port=self.adopt_port,
                        secret=self.pool_secret,
                        id=f"rs-adopt-{self.id}",
                        permissions=rpc.Permissions(allow=[BootstrapStates.WorkerAddr]),
                    )
                )
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.push_async_callback(self._stop_workers)
            self._tg = tg
            tg.start_soon(self._ticker)
            if self.pool_secret is not None and self.adopt_wait > 0:
                self._adopting = True
                self._adopt_done = anyio.Event()
                tg.start_soon(self._adopt_timer, self._adopt_done)
            mach.add1(_S.Start)
            mach.add([_S.LocalRpcReady, _S.PublicRpcReady])
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
            raise RuntimeError(f"the supervisor {self.id} is not running")
        self._exit = None
        await stack.__aexit__(exc_type, exc, tb)

    async def _stop_workers(self) -> None:
        tg = self._tg
        self._tg = None
        infos = list(self._workers.values())
        for info in infos:
            info.killing = True
            info.scope.cancel()
        # every worker reaped (in-process ones stop gracefully), then the rest
        with anyio.CancelScope(shield=True):
            for info in infos:
                if info.started:
                    await info.done.wait()
        if tg is not None:
            tg.cancel_scope.cancel()

    async def _adopt_timer(self, done: anyio.Event) -> None:
        with anyio.move_on_after(self.adopt_wait):
            await done.wait()
        self._adopting = False
        self._normalize()

    def _can_adopt(self, wid: str) -> bool:
        if self._tg is None or wid in self._workers or self.mach.not1(_S.Start):
            return False
        alive = [w for w in self._workers.values() if not w.killing]
        return len(alive) < self.max

    def _adopt(self, wid: str, host: str, port: int, pid: int, secret: str) -> None:
        info = WorkerInfo(wid)
        info.adopted = True
        info.pid = pid
        info.host = host
        info.port = port
        info.registered.set()
        self._workers[wid] = info
        self._secrets[wid] = secret
        self._event(_S.WorkerConnected, {"id": wid, "adopted": True})
        assert self._tg is not None
        self._tg.start_soon(self._run_worker, info)

    async def _ticker(self) -> None:
        while True:
            await anyio.sleep(self.heartbeat)
            self.mach.add1(_S.Heartbeat)

    # ------------------------------------------------------------ the pool

    def _event(self, state: str, args: dict[str, Any]) -> None:
        """Tick a Multi state of an event: add it, then remove it (an active
        `WorkerGone` would keep removing `PoolReady`)."""
        self.mach.add1(state, args)
        self.mach.remove1(state)

    def _normalize(self) -> None:
        """Start or kill workers to meet `min`, `warm` and `max` (called on
        every change of the pool; `NormalizingPool` and `PoolNormalized`
        tell it)."""
        mach = self.mach
        if mach.disposed or mach.not1(_S.Start):
            return
        mach.add1(_S.NormalizingPool)
        workers = [w for w in self._workers.values() if not w.killing]
        ready = [w for w in workers if w.status == "ready"]
        starting = [w for w in workers if w.status == "starting"]
        idle = [w for w in ready if not w.session]
        busy = len(ready) - len(idle)
        target = min(self.max, max(self.min, busy + self.warm))
        alive = len(ready) + len(starting)
        if self._adopting and len(ready) >= self.min and self._adopt_done:
            self._adopt_done.set()
        if mach.not1(_S.ErrPool) and not self._adopting:
            for _ in range(target - alive):
                self._seq += 1
                wid = f"{self.id}-w{self._seq}"
                while wid in self._workers:  # an adopted one of the same id
                    self._seq += 1
                    wid = f"{self.id}-w{self._seq}"
                self._workers[wid] = WorkerInfo(wid)
                mach.add1(_S.ForkWorker, {"id": wid})
        # extra idle workers over `warm`, while the pool is over its target
        for info in idle[self.warm :][: max(0, alive - target)]:
            mach.add1(_S.KillWorker, {"id": info.id})
        if len(ready) >= self.min:
            if mach.not1(_S.PoolReady):
                mach.add1(_S.PoolReady)
            if idle:
                mach.add1(_S.WorkersAvailable)
            else:
                mach.remove1(_S.WorkersAvailable)
            mach.add1(_S.Ready)
        elif mach.is1(_S.PoolReady):
            mach.remove([_S.WorkersAvailable, _S.Ready, _S.PoolReady])
        mach.add1(_S.PoolNormalized)

    def _provide(self, session: str) -> None:
        info = self._idle()[0]
        info.session = session
        info.provided_at = anyio.current_time()
        data = {"id": info.id, "host": info.host, "port": info.port}
        data["secret"] = self._secrets[info.id]
        self.mach.add1(
            _S.SendPayload,
            {"payload": rpc.Payload(P_WORKER, data, destination=session)},
        )
        self._normalize()

    def _worker_error(self, info: WorkerInfo, exc: BaseException) -> None:
        now = anyio.current_time()
        info.errors.append(now)
        while info.errors and info.errors[0] < now - self.worker_err_window:
            info.errors.popleft()
        self.mach.add_err_state(_S.ErrWorker, exc, {"id": info.id})
        if len(info.errors) >= self.worker_err_kill and not info.killing:
            self.mach.add1(_S.KillWorker, {"id": info.id})

    def _start_failed(self, info: WorkerInfo, reason: str) -> None:
        self._start_failures += 1
        err = NodeError(f"worker {info.id} failed to start: {reason}")
        if self._start_failures >= self.max_start_failures:
            self.pool_error = NodeError(
                f"{self._start_failures} workers in a row failed to start; "
                f"the last: {reason}"
            )
            self.mach.add_err_state(_S.ErrPool, self.pool_error, {"id": info.id})
        else:
            self.mach.add_err_state(_S.ErrWorker, err, {"id": info.id})

    # ------------------------------------------------------------ one worker

    async def _spawn(
        self, info: WorkerInfo, boot_port: int, secret: str
    ) -> _OsProc | _TaskProc:
        assert self._tg is not None
        self.started += 1
        if isinstance(self.worker, str):
            cmd = [sys.executable, "-m", self.worker, "--boot"]
            cmd += [f"127.0.0.1:{boot_port}", "--id", info.id]
            cmd += ["--backend", sniffio.current_async_library()]
            env = {**os.environ, **self.env, SECRET_ENV: secret}
            if self.pool_secret is not None:
                cmd += ["--adopt", f"{self.host}:{self.adopt_port}"]
                cmd += ["--reconnect-window", str(self.reconnect_window)]
                env[POOL_SECRET_ENV] = self.pool_secret
            cmd += self.worker_args
            proc = await anyio.open_process(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
            os_proc = _OsProc(proc)
            info.pid = proc.pid
            self._tg.start_soon(os_proc.watch)
            return os_proc
        task = _TaskProc(self.worker())
        self._tg.start_soon(task.run, "127.0.0.1", boot_port, secret)
        return task

    async def _run_worker(self, info: WorkerInfo) -> None:
        info.started = True
        try:
            await self._run_worker_inner(info)
        finally:
            info.done.set()

    async def _run_worker_inner(self, info: WorkerInfo) -> None:
        mach = self.mach
        if info.adopted:
            secret = self._secrets[info.id]
        else:
            secret = secrets.token_hex(16)
            self._secrets[info.id] = secret
        was_ready = False
        reason = ""
        failure = ""
        try:
            with info.scope:
                async with contextlib.AsyncExitStack() as stack:
                    try:
                        if info.adopted:
                            await self._start_adopted(info, secret, stack)
                        else:
                            await self._start(info, secret, stack)
                        was_ready = True
                        self._start_failures = 0
                        info.status = "ready"
                        self._event(_S.WorkerForked, {"id": info.id})
                        self._event(_S.WorkerReady, {"id": info.id})
                        self._normalize()
                        reason = await self._serve(info)
                    except _StartFailed as exc:
                        failure = str(exc)
        finally:
            # reap: kill the process group and wait for it, also when the
            # supervisor itself is cancelled
            info.status = "gone"
            if info.proc is not None:
                await info.proc.reap()
            info.pid = None
            self._workers.pop(info.id, None)
            self._secrets.pop(info.id, None)
        if self._tg is None or mach.disposed:
            return
        if failure and info.adopted:
            self.mach.add_err_state(
                _S.ErrWorker,
                NodeError(f"worker {info.id} not adopted: {failure}"),
                {"id": info.id},
            )
        elif failure:
            self._start_failed(info, failure)
        if was_ready:
            if info.session:
                data = {"id": info.id, "reason": reason or "killed"}
                mach.add1(
                    _S.SendPayload,
                    {
                        "payload": rpc.Payload(
                            P_WORKER_GONE, data, destination=info.session
                        )
                    },
                )
            self._event(_S.WorkerGone, {"id": info.id})
            if not info.killing:
                self._worker_error(info, NodeError(f"worker {info.id} {reason}"))
        if info.killing:
            self._event(_S.WorkerKilled, {"id": info.id})
        self._normalize()

    async def _start(
        self, info: WorkerInfo, secret: str, stack: contextlib.AsyncExitStack
    ) -> None:
        """Start the worker, take its registration, connect to it."""
        boot_mach = am.Machine(
            BOOTSTRAP_SCHEMA, id=f"boot-{info.id}", handlers=_BootHandlers(info)
        )
        async with (
            boot_mach,
            rpc.Server(
                boot_mach,
                secret=secret,
                id=f"rs-boot-{info.id}",
                permissions=rpc.Permissions(allow=[BootstrapStates.WorkerAddr]),
                max_connections=2,
            ) as boot,
        ):
            try:
                info.proc = await self._spawn(info, boot.port, secret)
            except OSError as exc:
                raise _StartFailed(f"{type(exc).__name__}: {exc}") from exc
            proc = info.proc
            with anyio.move_on_after(self.conn_timeout):
                i = await first(info.registered.wait, proc.exited.wait)
                if i == 1:
                    raise _StartFailed(proc.reason())
            if not info.registered.is_set():
                raise _StartFailed(
                    f"no registration within {self.conn_timeout}s"
                    + (f" ({proc.reason()})" if proc.exited.is_set() else "")
                )
        await self._connect(info, proc, secret, stack)

    async def _start_adopted(
        self, info: WorkerInfo, secret: str, stack: contextlib.AsyncExitStack
    ) -> None:
        """Verify an adopted worker (its server proves the secret it sent in
        the re-registration), then watch and own its process."""
        assert self._tg is not None and info.pid is not None
        try:
            proc = _PidProc(info.pid)
        except OSError as exc:
            raise _StartFailed(f"{type(exc).__name__}: {exc}") from exc
        self._tg.start_soon(proc.watch)
        try:
            await self._connect(info, proc, secret, stack)
        except BaseException:
            # not verified: never kill a process we could not verify
            info.pid = None
            proc.close()
            raise
        info.proc = proc
        self.adopted += 1
        net = info.net_mach
        if net is not None and net.is1(_W.ClientConnected):
            # still serving a client of the old run: not idle until it leaves
            info.session = "?"

    async def _connect(
        self,
        info: WorkerInfo,
        proc: _OsProc | _TaskProc | _PidProc,
        secret: str,
        stack: contextlib.AsyncExitStack,
    ) -> None:
        """Connect to a registered worker's aRPC server with its secret."""
        client = rpc.Client(
            info.host,
            info.port,
            self.worker_schema,
            id=f"{self.id}-{info.id}",
            secret=secret,
            reconnect=False,
            connect_timeout=self.conn_timeout,
        )
        await stack.enter_async_context(client)
        info.client = client
        with anyio.move_on_after(self.conn_timeout):
            i = await first(
                client.mach.when1(_CS.Ready).wait,
                client.mach.when1(_CS.ConnRetryFailed).wait,
                proc.exited.wait,
            )
            if i == 0:
                return
            err = client.mach.err
            why = f"{type(err).__name__}: {err}" if err else proc.reason()
            raise _StartFailed(why)
        raise _StartFailed(f"no connection within {self.conn_timeout}s")

    async def _serve(self, info: WorkerInfo) -> str:
        """Watch a ready worker until it dies; return why."""
        client = info.client
        proc = info.proc
        assert client is not None and proc is not None
        net = client.net_mach
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_errors, info, net)
            tg.start_soon(self._watch_client, info, net)
            i = await first(client.mach.when1(_CS.Disconnected).wait, proc.exited.wait)
            tg.cancel_scope.cancel()
        if i == 1 or proc.exited.is_set():
            return f"exited ({proc.reason()})"
        return "disconnected"

    async def _watch_errors(self, info: WorkerInfo, net: rpc.NetMachine) -> None:
        seen = net.tick(am.EXCEPTION)

        def newer(clock: am.Clock) -> bool:
            return clock[am.EXCEPTION] > seen

        while True:
            last = seen
            await net.when_query(newer).wait()
            if net.disposed:
                return
            seen = net.tick(am.EXCEPTION)
            for _ in range((seen + 1) // 2 - (last + 1) // 2):
                self._worker_error(info, NodeError(f"worker {info.id} had an error"))

    async def _watch_client(self, info: WorkerInfo, net: rpc.NetMachine) -> None:
        # a client's session on the worker ends: the worker is free again
        while True:
            await net.when1(_W.ClientConnected).wait()
            await net.when_not1(_W.ClientConnected).wait()
            if net.disposed:
                return
            info.session = ""
            self._normalize()

    async def _heartbeat(self) -> None:
        mach = self.mach
        try:
            now = anyio.current_time()
            for info in self.ready_workers:
                net = info.net_mach
                if net is None:
                    continue
                # given to a client that never connected: free it again
                if (
                    info.session
                    and net.not1(_W.ClientConnected)
                    and now - info.provided_at > self.conn_timeout
                ):
                    info.session = ""
                    self._normalize()
                try:
                    with anyio.fail_after(self.conn_timeout):
                        res = await net.add1(_W.Healthcheck)
                    if res != am.Result.EXECUTED:
                        raise NodeError(f"health check of {info.id}: {res}")
                except (TimeoutError, rpc.RpcError, NodeError) as exc:
                    self._worker_error(info, exc)
        finally:
            mach.remove1(_S.Heartbeat)
