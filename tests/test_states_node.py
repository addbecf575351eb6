"""Node schemas of `asyncmachine.states` (Go's pkg/node/states): each compiles,
agrees with its states class, and its relations behave like the Go ones."""

from __future__ import annotations

import pytest

import asyncmachine as am
from asyncmachine import rpc
from asyncmachine import states as ss
from asyncmachine.states import (
    BOOTSTRAP_SCHEMA,
    NODE_CLIENT_SCHEMA,
    SUPERVISOR_SCHEMA,
    WORKER_SCHEMA,
    BootstrapStates,
    NodeClientGroups,
    NodeClientStates,
    SupervisorGroups,
    SupervisorStates,
    WorkerGroups,
    WorkerStates,
)

ALL = [
    (SupervisorStates, SUPERVISOR_SCHEMA, SupervisorGroups),
    (WorkerStates, WORKER_SCHEMA, WorkerGroups),
    (NodeClientStates, NODE_CLIENT_SCHEMA, NodeClientGroups),
    (BootstrapStates, BOOTSTRAP_SCHEMA, None),
]


@pytest.mark.parametrize(("states", "schema", "groups"), ALL)
def test_schema_compiles_and_agrees_with_its_class(
    states: type[am.StatesBase], schema: am.Schema, groups: type | None
) -> None:
    states.check_schema(schema)
    if groups is not None:
        states.check_groups(groups)
    mach = am.Machine(schema)
    assert mach.state_names == states.names()
    for name in states.names():
        assert name in ss.BasicStates.names() or states.__dict__[name].__doc__


def test_exports() -> None:
    assert set(ss.__all__) >= {
        "SUPERVISOR_SCHEMA",
        "SupervisorStates",
        "WORKER_SCHEMA",
        "NODE_CLIENT_SCHEMA",
        "BOOTSTRAP_SCHEMA",
    }


def test_payload_states_match_the_rpc_ones() -> None:
    for schema in (SUPERVISOR_SCHEMA, WORKER_SCHEMA, BOOTSTRAP_SCHEMA):
        assert schema["SendPayload"] == rpc.SOURCE_SCHEMA["SendPayload"]
        assert am.schema_merge(schema, rpc.SOURCE_SCHEMA) == schema
    assert NODE_CLIENT_SCHEMA["ServerPayload"] == rpc.CONSUMER_SCHEMA["ServerPayload"]


def test_supervisor_pool_relations() -> None:
    s = SupervisorStates
    mach = am.Machine(SUPERVISOR_SCHEMA)
    assert mach.add1(s.ForkWorker) == am.Result.CANCELED  # requires Start
    mach.add1(s.Start)
    assert mach.is_([s.PoolStarting, s.NormalizingPool])
    # no idle worker: a client's request is refused
    assert mach.add1(s.ProvideWorker) == am.Result.CANCELED
    assert mach.add1(s.WorkersAvailable) == am.Result.CANCELED
    mach.add1(s.WorkerReady)
    # the active PoolStarting blocks the implied PoolReady: the supervisor
    # adds PoolReady itself when the pool's minimum is met
    assert mach.not_([s.PoolReady])
    mach.add1(s.PoolReady)
    assert mach.is_([s.PoolReady, s.Heartbeat])
    assert mach.not_([s.PoolStarting])
    mach.add1(s.WorkersAvailable)
    assert mach.add1(s.ProvideWorker) == am.Result.EXECUTED
    mach.add1(s.PoolNormalized)
    assert mach.not_([s.NormalizingPool])
    # Ready needs both RPC servers and the pool
    assert mach.add1(s.Ready) == am.Result.CANCELED
    mach.add([s.LocalRpcReady, s.PublicRpcReady])
    mach.add1(s.Ready)
    assert mach.is_([s.Ready])
    # a worker gone: the pool is not ready, nor is anything depending on it
    mach.add1(s.WorkerGone)
    assert mach.not_([s.PoolReady, s.WorkersAvailable, s.Ready])
    # a worker error normalizes the pool again
    mach.add_err_state(s.ErrWorker, RuntimeError("worker 1 died"))
    assert mach.is_([s.ErrWorker, s.Exception, s.NormalizingPool])
    assert mach.not_([s.PoolNormalized])
    mach.remove([s.ErrWorker, s.Exception])
    mach.add1(s.PoolNormalized)
    mach.add_err_state(s.ErrPool, RuntimeError("3 workers failed to start"))
    assert mach.is_([s.ErrPool, s.NormalizingPool])
    assert mach.not_([s.PoolNormalized])
    assert str(mach.err) == "3 workers failed to start"


def test_supervisor_killed_worker_normalizes() -> None:
    s = SupervisorStates
    mach = am.Machine(SUPERVISOR_SCHEMA)
    mach.add([s.Start, s.WorkerReady, s.PoolNormalized])
    assert mach.not_([s.NormalizingPool])
    mach.add1(s.WorkerKilled)
    tick = mach.tick(s.WorkerKilled)
    mach.add1(s.WorkerKilled)
    assert mach.tick(s.WorkerKilled) == tick + 2  # Multi: re-activated
    assert mach.is_([s.NormalizingPool])


def test_worker_work_status() -> None:
    w = WorkerStates
    mach = am.Machine(WORKER_SCHEMA)
    mach.add1(w.Start)
    assert mach.add1(w.Ready) == am.Result.CANCELED  # requires LocalRpcReady
    assert mach.add1(w.ServeClient) == am.Result.CANCELED  # requires PublicRpcReady
    mach.add1(w.LocalRpcReady)
    assert mach.not_([w.RpcReady])
    mach.add1(w.PublicRpcReady)
    assert mach.is_([w.RpcReady])  # auto
    mach.add1(w.Ready)
    assert mach.is_([w.Idle])  # auto
    for step in (w.WorkRequested, w.Working, w.WorkReady):
        mach.add1(step)
        assert [x for x in WorkerGroups.WorkStatus if mach.is_([x])] == [step]
    mach.remove1(w.WorkReady)
    assert mach.is_([w.Idle])  # back to idle
    mach.add_err_state(w.ErrWorkTimeout, TimeoutError("work took 5s"))
    assert mach.is_([w.ErrWorkTimeout, w.Exception])
    mach.remove1(w.LocalRpcReady)
    assert mach.not_([w.Ready, w.Idle, w.RpcReady])


def test_node_client_relations() -> None:
    c = NodeClientStates
    mach = am.Machine(NODE_CLIENT_SCHEMA)
    mach.add1(c.Start)
    assert mach.add1(c.WorkerRequested) == am.Result.CANCELED  # needs SuperReady
    mach.add1(c.SuperConnecting)
    mach.add1(c.SuperConnected)
    assert mach.not_([c.SuperConnecting])
    mach.add1(c.SuperReady)
    mach.add1(c.WorkerRequested)
    mach.add1(c.WorkerConnecting)
    assert mach.add1(c.WorkerReady) == am.Result.CANCELED  # not connected yet
    mach.add1(c.WorkerConnected)
    mach.add1(c.WorkerReady)
    assert mach.is_([c.WorkerReady, c.Ready])
    assert mach.not_([c.WorkerRequested, c.WorkerConnecting])
    # the worker died: the client is not ready, and can ask for another
    mach.add_err_state(c.ErrWorker, ConnectionResetError("worker gone"))
    mach.add1(c.WorkerDisconnected)
    assert mach.not_([c.WorkerConnected, c.WorkerReady, c.Ready])
    assert mach.is_([c.ErrWorker, c.SuperReady])
    assert mach.add1(c.WorkerRequested) == am.Result.EXECUTED
    mach.add1(c.SuperDisconnected)
    assert mach.not_([c.SuperConnected, c.SuperReady, c.WorkerRequested])


def test_bootstrap_worker_addr_is_multi() -> None:
    mach = am.Machine(BOOTSTRAP_SCHEMA)
    mach.add1(BootstrapStates.WorkerAddr, {"addr": "127.0.0.1:1"})
    tick = mach.tick(BootstrapStates.WorkerAddr)
    mach.add1(BootstrapStates.WorkerAddr, {"addr": "127.0.0.1:2"})
    assert mach.tick(BootstrapStates.WorkerAddr) == tick + 2


def test_am_gen_inherits_the_node_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    from asyncmachine.gen import main

    argv = ["states-file", "-n", "Pool", "-s", "Hashing:require(Working)"]
    argv += ["-i", "worker", "-o", "-"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "class PoolStates(WorkerStates):" in out
    ns: dict[str, object] = {}
    exec(compile(out, "<gen>", "exec"), ns)
    mach = am.Machine(ns["POOL_SCHEMA"])  # type: ignore[arg-type]
    assert mach.state_names == ns["PoolStates"].names()  # type: ignore[attr-defined]
    assert set(mach.state_names) == {*WorkerStates.names(), "Hashing"}
    mach.add([WorkerStates.Start, WorkerStates.LocalRpcReady, WorkerStates.Ready])
    assert mach.add1("Hashing") == am.Result.CANCELED  # requires Working
    mach.add([WorkerStates.Working, "Hashing"])
    assert mach.is_(["Working", "Hashing"])
