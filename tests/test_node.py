"""asyncmachine.node: supervisors, worker pools and clients over aRPC.

The pool logic runs on in-process workers (fast); a few tests run real
worker processes (`tests/node_workers.py`), kill one with SIGKILL mid-work
and check with psutil that no process is left behind. The `no_leftovers`
fixture kills any worker process still alive after a test, and fails it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

import asyncmachine as am
import node_workers
from asyncmachine import node, rpc
from asyncmachine.states import (
    BOOTSTRAP_SCHEMA,
    BootstrapStates,
    NodeClientStates,
    SupervisorStates,
    WorkerStates,
)

S = SupervisorStates
C = NodeClientStates
W = WorkerStates
BW = BootstrapStates
SECRET = "test-secret"
TESTS = str(Path(__file__).parent)
# generous: the bound of a wait that only a bug makes long
T = 30


def _workers_alive() -> list[psutil.Process]:
    alive = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "node_workers" in " ".join(proc.cmdline()):
                alive.append(proc)
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fail a test that leaves a worker process (or zombie) behind; kill it."""
    yield
    left = _workers_alive()
    for proc in left:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait(5)
    assert not left, f"worker processes left behind: {left}"


def in_process(**kwargs: Any) -> node.WorkerFactory:
    return lambda: node.Worker(node_workers.work, **kwargs)


def supervisor(worker: str | node.WorkerFactory, **kwargs: Any) -> node.Supervisor:
    opts: dict[str, Any] = {"secret": SECRET, "conn_timeout": T}
    opts.update(kwargs)
    if isinstance(worker, str):
        opts["env"] = {"PYTHONPATH": TESTS}
    return node.Supervisor(worker, **opts)


def client(sup: node.Supervisor) -> node.Client:
    return node.Client("127.0.0.1", sup.port, secret=SECRET, conn_timeout=T)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------
# arguments


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(ValueError, match="min"):
        node.Supervisor("m", secret=SECRET, min=5, max=2)
    with pytest.raises(ValueError, match="max"):
        node.Supervisor("m", secret=SECRET, max=0)
    with pytest.raises(ValueError, match="heartbeat"):
        node.Supervisor("m", secret=SECRET, heartbeat=0)
    with pytest.raises(ValueError, match="worker_schema"):
        node.Supervisor("m", secret=SECRET, worker_schema={"A": am.State()})
    with pytest.raises(TypeError, match="worker"):
        node.Supervisor(3, secret=SECRET)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="conn_timeout"):
        node.Client("127.0.0.1", 1, secret=SECRET, conn_timeout=0)
    with pytest.raises(ValueError, match="work_timeout"):
        node.Worker(node_workers.work, work_timeout=-1)
    with pytest.raises(ValueError, match="schema"):
        node.Worker(node_workers.work, schema={"A": am.State()})


# ---------------------------------------------------------------------------
# the pool, in process


async def test_pool_keeps_min_and_warm_within_max() -> None:
    async with supervisor(in_process(), min=1, warm=1, max=3) as sup:
        with anyio.fail_after(T):
            await sup.mach.when([S.Ready, S.WorkersAvailable]).wait()
        assert len(sup.workers) == 1  # min 1, warm 1, nothing busy
        async with client(sup) as c1, client(sup) as c2, client(sup) as c3:
            with anyio.fail_after(T):
                await c1.request_worker()
                # one busy: a warm one more
                await sup.mach.when1(S.WorkersAvailable).wait()
                await c2.request_worker()
                await c3.request_worker()
            assert len({c1.worker_id, c2.worker_id, c3.worker_id}) == 3
            assert len(sup.workers) == 3  # max
            assert sup.mach.not1(S.WorkersAvailable)
            async with client(sup) as c4:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(c4.request_worker)
                    # c4 waits for a free worker: c1 leaves, c4 gets its one
                    await c4.mach.when1(C.WorkerRequested).wait()
                    freed = c1.worker_id
                    c1.release_worker()
                    with anyio.fail_after(T):
                        await c4.mach.when1(C.WorkerReady).wait()
                assert c4.worker_id == freed
                assert await c4.work({"op": "hash", "data": b"x"}) == sha(b"x")
                assert c4.mach.is_([C.Ready, C.SuperReady, C.WorkerConnected])
            assert c1.mach.is1(C.WorkerDisconnected)


async def test_work_results_and_errors() -> None:
    async with (
        supervisor(in_process(), min=1, warm=1, max=2) as sup,
        client(sup) as c,
    ):
        with pytest.raises(node.NodeError, match="no worker"):
            await c.work({"op": "pid"})
        with anyio.fail_after(T):
            await c.request_worker()
            for data in (b"", b"abc", os.urandom(1000)):
                assert await c.work({"op": "hash", "data": data}) == sha(data)
            with pytest.raises(node.WorkError, match="bad op"):
                await c.work({"op": "nope"})
            # the worker goes on after an error
            assert await c.work({"op": "pid"}) == os.getpid()
        assert c.worker is not None
        assert c.worker.net_mach.is1(W.Idle)
        # a client may ask for work, not drive the worker's own states
        for state in (W.Ready, W.Working, W.Start):
            with pytest.raises(rpc.DeniedError):
                await c.worker.net_mach.remove1(state)


async def test_errors_in_a_window_kill_the_worker() -> None:
    opts = {"min": 1, "warm": 0, "max": 2, "worker_err_kill": 2}
    async with supervisor(in_process(), **opts) as sup, client(sup) as c:
        with anyio.fail_after(T):
            first = await c.request_worker()
            killed = sup.mach.when_ticks(S.WorkerKilled, 1)
            errs = c.mach.tick(C.ErrWorker)
            for _ in range(2):
                with pytest.raises(node.NodeError):  # WorkError, then gone
                    await c.work({"op": "nope"})
            await killed.wait()
            # the client is told and gets another worker
            await c.mach.when_query(lambda t: t[C.ErrWorker] > errs).wait()
            assert c.mach.not1(C.WorkerReady)
            assert await c.request_worker() != first
            assert await c.work({"op": "hash", "data": b"a"}) == sha(b"a")


async def test_a_worker_given_but_never_used_is_freed() -> None:
    opts = {"heartbeat": 0.05, "worker_err_kill": 1000}
    async with (
        supervisor(in_process(), min=1, warm=0, max=1, **opts) as sup,
        rpc.Client("127.0.0.1", sup.port, dict(sup.mach.schema), secret=SECRET) as raw,
    ):
        with anyio.fail_after(T):
            await raw.net_mach.when_connected().wait()
            await raw.net_mach.when1(S.WorkersAvailable).wait()
        # take the only worker and never connect to it
        res = await raw.net_mach.add1(S.ProvideWorker, {"session": raw.session_id})
        assert res == am.Result.EXECUTED
        assert sup.workers[0].session == raw.session_id
        assert raw.net_mach.not1(S.WorkersAvailable)
        sup.conn_timeout = 0.01
        with anyio.fail_after(T):
            await raw.net_mach.when1(S.WorkersAvailable).wait()
        assert sup.workers[0].session == ""


async def test_clients_may_only_ask_for_workers() -> None:
    async with (
        supervisor(in_process(), min=0, warm=0, max=1) as sup,
        rpc.Client("127.0.0.1", sup.port, dict(sup.mach.schema), secret=SECRET) as raw,
    ):
        with anyio.fail_after(T):
            await raw.net_mach.when_connected().wait()
        for state in (S.ForkWorker, S.KillWorker, S.PoolReady):
            with pytest.raises(rpc.DeniedError):
                await raw.net_mach.add1(state, {"id": "x"})
        # a session of someone else is refused
        res = await raw.net_mach.add1(S.ProvideWorker, {"session": "forged"})
        assert res == am.Result.CANCELED


async def test_wrong_schema_is_refused() -> None:
    factory = in_process(schema=node_workers.OTHER_SCHEMA)
    async with supervisor(factory, min=1, max=1, max_start_failures=2) as sup:
        with anyio.fail_after(T):
            await sup.mach.when1(S.ErrPool).wait()
        assert "SchemaMismatchError" in str(sup.pool_error)
        assert "2 workers in a row" in str(sup.pool_error)
        assert sup.mach.not1(S.PoolReady)
        assert sup.started == 2


class _BadSecretWorker(node.Worker):
    async def run(self, boot_host: str, boot_port: int, secret: str) -> None:
        await super().run(boot_host, boot_port, "not-the-secret")


async def test_wrong_secret_is_refused() -> None:
    def factory() -> node.Worker:
        return _BadSecretWorker(node_workers.work)

    async with supervisor(factory, min=1, max=1, max_start_failures=1) as sup:
        with anyio.fail_after(T):
            await sup.mach.when1(S.ErrPool).wait()
        assert "AuthError" in str(sup.pool_error)
        assert not sup.workers


# ---------------------------------------------------------------------------
# real processes


async def test_process_pool_survives_kill_9(no_leftovers: None) -> None:
    async with supervisor("node_workers", min=2, warm=1, max=4) as sup:
        with anyio.fail_after(T):
            await sup.mach.when1(S.Ready).wait()
        async with client(sup) as c1, client(sup) as c2, client(sup) as c3:
            with anyio.fail_after(T):
                for c in (c1, c2, c3):
                    await c.request_worker()
                pids = {await c.work({"op": "pid"}) for c in (c1, c2, c3)}
                data = os.urandom(4096)
                assert await c2.work({"op": "hash", "data": data}) == sha(data)
            assert len(pids) == 3
            assert pids <= set(sup.pids)
            assert os.getpid() not in pids
            assert len(sup.workers) == 4  # 3 busy + 1 warm, the max
            victim = await c1.work({"op": "pid"})

            async def blocked_job() -> None:
                with pytest.raises(node.WorkerGoneError):
                    await c1.work({"op": "block"})

            refilled = sup.mach.when_ticks(S.WorkerReady, 1)
            gone = sup.mach.when_ticks(S.WorkerGone, 1)
            with anyio.fail_after(T):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(blocked_job)
                    assert c1.worker is not None
                    await c1.worker.net_mach.when1(W.Working).wait()
                    os.kill(victim, signal.SIGKILL)
                # the client sees the error state and gets another worker
                await c1.mach.when1(C.ErrWorker).wait()
                assert c1.mach.not1(C.Ready)
                await gone.wait()
                # reaped: no zombie
                assert not psutil.pid_exists(victim)
                await c1.request_worker()
                assert await c1.work({"op": "pid"}) not in (victim, *pids)
                # the pool refills
                await refilled.wait()
                await sup.mach.when1(S.PoolReady).wait()
            alive = {p.pid for p in _workers_alive()}
            assert victim not in alive
            assert {w.pid for w in sup.ready_workers} <= alive
            assert all(
                psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in alive
            )
        pids_before_stop = sup.pids
    # stopped: every process group killed and reaped
    assert pids_before_stop
    assert not any(psutil.pid_exists(p) for p in pids_before_stop)
    assert not _workers_alive()


async def test_process_start_failures_give_err_pool(no_leftovers: None) -> None:
    opts = {"worker_args": ["crash"], "max_start_failures": 2}
    async with supervisor("node_workers", min=1, max=1, **opts) as sup:
        with anyio.fail_after(T):
            await sup.mach.when1(S.ErrPool).wait()
        assert sup.mach.is_([S.ErrPool, am.EXCEPTION])
        assert "crashes at start" in str(sup.pool_error)
        assert "exit code 1" in str(sup.pool_error)
        assert sup.started == 2
        assert sup.mach.err is sup.pool_error
        # no more starts while ErrPool is active
        assert not sup.workers


async def test_process_with_a_wrong_secret_is_refused(no_leftovers: None) -> None:
    opts = {"worker_args": ["badsecret"], "max_start_failures": 1}
    async with supervisor("node_workers", min=1, max=1, **opts) as sup:
        with anyio.fail_after(T):
            await sup.mach.when1(S.ErrPool).wait()
        assert "AuthError" in str(sup.pool_error)
        assert "exit code 3" in str(sup.pool_error)


async def test_removing_err_pool_tries_again() -> None:
    factory = in_process(schema=node_workers.OTHER_SCHEMA)
    async with supervisor(factory, min=1, max=1, max_start_failures=1) as sup:
        with anyio.fail_after(T):
            await sup.mach.when1(S.ErrPool).wait()
            assert sup.started == 1
            again = sup.mach.when_ticks(S.ErrPool, 2)
            sup.mach.remove([S.ErrPool, am.EXCEPTION])
            await again.wait()
        assert sup.started == 2


async def test_one_job_at_a_time() -> None:
    async with (
        supervisor(in_process(), min=1, warm=0, max=1) as sup,
        client(sup) as c,
    ):
        with anyio.fail_after(T):
            await c.request_worker()
            assert c.worker is not None
            working = c.worker.net_mach.when1(W.Working)
            async with anyio.create_task_group() as tg:
                tg.start_soon(c.work, {"op": "block"})
                await working.wait()
                with pytest.raises(node.NodeError, match="refused the job"):
                    await c.work({"op": "pid"})
                tg.cancel_scope.cancel()


SUPERVISOR_SCRIPT = """
import sys, anyio
from asyncmachine import node
from asyncmachine.states import SupervisorStates

async def main():
    async with node.Supervisor("node_workers", secret="s", min=2, max=2) as sup:
        await sup.mach.when1(SupervisorStates.Ready)
        print(*sup.pids, flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


def test_workers_leave_with_a_killed_supervisor() -> None:
    # the supervisor runs in a child process; SIGKILL gives it no chance to
    # clean up: its workers see their stdin close and exit (no orphans)
    env = {**os.environ, "PYTHONPATH": TESTS}
    proc = psutil.Popen(
        [sys.executable, "-c", SUPERVISOR_SCRIPT],
        stdout=subprocess.PIPE,
        env=env,
    )
    workers: list[psutil.Process] = []
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
        workers = [psutil.Process(p) for p in pids]
        proc.kill()
        proc.wait(T)
        _, alive = psutil.wait_procs(workers, timeout=T)
        assert not alive
    finally:
        for w in workers:
            if w.is_running():
                os.killpg(w.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait(T)
        if proc.stdout is not None:
            proc.stdout.close()


async def test_clients_reconnect_to_a_restarted_supervisor() -> None:
    # workers are not carried over: they leave with their supervisor, and
    # the new one starts its own pool; the client reconnects by itself
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    c = node.Client("127.0.0.1", port, secret=SECRET, conn_timeout=T)
    async with c:
        with anyio.fail_after(T):
            async with supervisor(in_process(), min=1, warm=0, max=1, port=port):
                await c.request_worker()
                old = await c.work({"op": "pid"})
            await c.mach.when1(C.ErrWorker).wait()
            await c.mach.when_not1(C.SuperReady).wait()
            async with supervisor(in_process(), min=1, warm=0, max=1, port=port):
                await c.mach.when1(C.SuperReady).wait()
                await c.request_worker()
                assert await c.work({"op": "pid"}) == old  # in process
                assert c.mach.is1(C.Ready)


class _SilentWorker(node.Worker):
    async def run(self, boot_host: str, boot_port: int, secret: str) -> None:
        self._stopped = anyio.Event()
        await self._stopped.wait()  # never registers; stop() ends it


async def test_a_worker_that_never_registers_times_out() -> None:
    def factory() -> node.Worker:
        return _SilentWorker(node_workers.work)

    opts = {"conn_timeout": 0.2, "max_start_failures": 1}
    async with supervisor(factory, min=1, max=1, **opts) as sup:
        with anyio.fail_after(T):
            await sup.mach.when1(S.ErrPool).wait()
        assert "no registration within 0.2s" in str(sup.pool_error)
        assert not sup.workers


async def test_a_supervisor_cancelled_from_outside_reaps_its_workers(
    no_leftovers: None,
) -> None:
    pids: list[int] = []
    with anyio.fail_after(T):
        async with anyio.create_task_group() as tg:
            ready = anyio.Event()

            async def run() -> None:
                async with supervisor("node_workers", min=2, max=2) as sup:
                    await sup.mach.when1(S.Ready).wait()
                    pids.extend(sup.pids)
                    ready.set()
                    await anyio.sleep_forever()

            tg.start_soon(run)
            await ready.wait()
            tg.cancel_scope.cancel()
    assert len(pids) == 2
    assert not any(psutil.pid_exists(p) for p in pids)


class _Unhealthy:
    def HealthcheckEnter(self, e: am.Event) -> bool:
        return False


async def test_failed_health_checks_kill_the_worker() -> None:
    made: list[node.Worker] = []

    def factory() -> node.Worker:
        worker = node.Worker(node_workers.work)
        if not made:  # only the first worker fails its health checks
            worker.mach.bind_handlers(_Unhealthy())
        made.append(worker)
        return worker

    opts = {"heartbeat": 0.02, "worker_err_kill": 3, "worker_err_window": T}
    async with supervisor(factory, min=1, warm=0, max=1, **opts) as sup:
        with anyio.fail_after(T):
            killed = sup.mach.when_ticks(S.WorkerKilled, 1)
            await killed.wait()
            assert "health check" in str(sup.mach.err)
            # replaced by a healthy one, which stays
            await sup.mach.when1(S.WorkersAvailable).wait()
            await sup.mach.when_ticks(S.Heartbeat, 6).wait()
        assert len(made) == 2
        assert sup.mach.tick(S.WorkerKilled) == 2  # added and removed once


async def test_work_timeout() -> None:
    factory = in_process(work_timeout=0.05)
    async with (
        supervisor(factory, min=1, warm=0, max=1, worker_err_kill=10) as sup,
        client(sup) as c,
    ):
        with anyio.fail_after(T):
            await c.request_worker()
            assert c.worker is not None
            net = c.worker.net_mach
            with pytest.raises(node.WorkError, match=r"took over 0\.05s"):
                await c.work({"op": "block"})
            assert net.tick(W.ErrWorkTimeout) >= 1
            # the worker goes on
            assert await c.work({"op": "hash", "data": b"z"}) == sha(b"z")


# ---------------------------------------------------------------------------
# supervisor restarts: workers are adopted (docs/node.md, "Supervisor restarts")

POOL = "test-pool-secret"

ADOPT_SCRIPT = """
import sys, anyio
from asyncmachine import node
from asyncmachine.states import SupervisorStates

port, adopt_port, window = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])

async def main():
    async with node.Supervisor(
        "node_workers", secret="s", min=2, max=2, warm=0, port=port,
        pool_secret=sys.argv[4], adopt_port=adopt_port,
        reconnect_window=window, adopt_wait=0,
    ) as sup:
        await sup.mach.when1(SupervisorStates.Ready)
        print(*sup.pids, flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def subreaper() -> Iterator[None]:
    """Orphaned workers (their supervisor killed) become this process's
    children, so that they are reaped here (PID 1 of a container may not
    reap); `no_leftovers` then sees them too."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_child_subreaper = 36
    assert libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        libc.prctl(pr_set_child_subreaper, 0, 0, 0, 0)


async def _kill_supervisor_process(
    port: int, adopt_port: int, window: float, pool_secret: str = POOL
) -> list[int]:
    """Run a supervisor of 2 worker processes in a child process, SIGKILL it
    once its pool is ready; return its workers' pids (orphaned now)."""
    env = {**os.environ, "PYTHONPATH": TESTS}
    argv = [str(port), str(adopt_port), str(window), pool_secret]
    proc = await anyio.open_process(
        [sys.executable, "-c", ADOPT_SCRIPT, *argv], env=env, stderr=None
    )
    async with proc:
        try:
            assert proc.stdout is not None
            line = b""
            with anyio.fail_after(T):
                while not line.endswith(b"\n"):
                    line += await proc.stdout.receive()
        finally:
            proc.kill()
            await proc.wait()
    pids = [int(p) for p in line.split()]
    assert len(pids) == 2
    return pids


async def _gone(pids: list[int]) -> None:
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    _, alive = await anyio.to_thread.run_sync(
        lambda: psutil.wait_procs(procs, timeout=T)
    )
    assert not alive
    assert not any(psutil.pid_exists(p) for p in pids)


def test_adoption_arguments() -> None:
    with pytest.raises(ValueError, match="adopt_port"):
        node.Supervisor("m", secret=SECRET, pool_secret=POOL)
    with pytest.raises(ValueError, match="pool_secret"):
        node.Supervisor(in_process(), secret=SECRET, pool_secret=POOL, adopt_port=1)
    with pytest.raises(ValueError, match="reconnect_window"):
        node.Supervisor("m", secret=SECRET, reconnect_window=0)
    with pytest.raises(ValueError, match="adopt_wait"):
        node.Supervisor("m", secret=SECRET, adopt_wait=-1)


async def test_a_restarted_supervisor_adopts_the_workers(
    subreaper: None, no_leftovers: None
) -> None:
    port, adopt_port = _free_ports(2)
    pids = await _kill_supervisor_process(port, adopt_port, T)
    # a new run on the same ports, with the same pool secret
    opts = {"pool_secret": POOL, "adopt_port": adopt_port, "port": port}
    async with supervisor("node_workers", min=2, max=2, warm=0, **opts) as sup:
        with anyio.fail_after(T):
            await sup.mach.when1(S.Ready).wait()
        assert sorted(sup.pids) == sorted(pids)
        assert all(w.adopted for w in sup.workers)
        assert sup.adopted == 2
        assert sup.started == 0  # nothing forked: the adopted fill `min`
        async with client(sup) as c:
            with anyio.fail_after(T):
                await c.request_worker()
                assert await c.work({"op": "pid"}) in pids
                data = os.urandom(64)
                assert await c.work({"op": "hash", "data": data}) == sha(data)
    # stopped: the adopted workers killed (by process group) and reaped by
    # the supervisor itself (this process is their subreaper): gone at once
    assert not any(psutil.pid_exists(p) for p in pids)


async def test_without_a_restart_workers_leave_after_the_window(
    subreaper: None, no_leftovers: None
) -> None:
    port, adopt_port = _free_ports(2)
    pids = await _kill_supervisor_process(port, adopt_port, 1.0)
    # a supervisor with another pool secret cannot adopt them
    opts = {"pool_secret": "another", "adopt_port": adopt_port, "adopt_wait": 0}
    async with supervisor("node_workers", min=0, max=2, warm=0, **opts) as sup:
        await _gone(pids)
        assert not sup.workers
        assert sup.adopted == 0


async def test_adoption_with_a_wrong_secret_is_refused(no_leftovers: None) -> None:
    (adopt_port,) = _free_ports(1)
    opts = {"pool_secret": POOL, "adopt_port": adopt_port, "adopt_wait": 0}
    sleeper = await anyio.open_process(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        start_new_session=True,
    )
    async with sleeper:
        try:
            async with supervisor("node_workers", min=0, max=2, warm=0, **opts) as sup:
                addr = {"host": "127.0.0.1", "port": 1, "id": "w", "secret": "x"}
                addr["pid"] = sleeper.pid
                # a wrong pool secret: the handshake fails
                bad = rpc.Client(
                    "127.0.0.1",
                    adopt_port,
                    BOOTSTRAP_SCHEMA,
                    secret="wrong",
                    reconnect=False,
                )
                async with bad:
                    with anyio.fail_after(T):
                        await bad.mach.when1(rpc.ClientStates.ConnRetryFailed).wait()
                    assert isinstance(bad.mach.err, rpc.AuthError)
                # the pool secret, but no worker answers with that secret:
                # not adopted, and the pid given is not killed
                ok = rpc.Client("127.0.0.1", adopt_port, BOOTSTRAP_SCHEMA, secret=POOL)
                async with ok:
                    with anyio.fail_after(T):
                        await ok.mach.when1(rpc.ClientStates.Ready).wait()
                        failed = sup.mach.when_ticks(S.ErrWorker, 1)
                        bad_args = {k: v for k, v in addr.items() if k != "secret"}
                        res = await ok.net_mach.add1(BW.WorkerAddr, bad_args)
                        assert res == am.Result.CANCELED
                        res = await ok.net_mach.add1(BW.WorkerAddr, addr)
                        assert res == am.Result.EXECUTED
                        await failed.wait()
                assert "not adopted" in str(sup.mach.err)
                assert not sup.workers
                assert sup.adopted == 0
            assert sleeper.returncode is None
            assert psutil.Process(sleeper.pid).status() != psutil.STATUS_ZOMBIE
        finally:
            sleeper.kill()
            await sleeper.wait()
