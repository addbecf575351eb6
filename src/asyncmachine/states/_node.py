"""Node states: a supervisor of a worker pool, its workers and their clients.

The schemas of the Go project's `pkg/node/states`, with the same state names:
a supervisor keeps a pool of worker machines alive, a client asks it for a
worker and then talks to the worker directly. See docs/node.md.
"""

from __future__ import annotations

from typing import Final

import asyncmachine as am

from ._basic import BASIC_SCHEMA, BasicStates

# the payload states of an aRPC state source and consumer (the same names and
# relations as `asyncmachine.rpc.SOURCE_SCHEMA` / `CONSUMER_SCHEMA`; this
# package does not import the rpc layer)
_SEND_PAYLOAD = "SendPayload"
_SERVER_PAYLOAD = "ServerPayload"


def _err(*also_add: str) -> am.State:
    """An error state: Multi, only alongside `Exception`."""
    return am.State(
        multi=True,
        add=[BasicStates.Exception, *also_add],
        require=[BasicStates.Exception],
    )


# ---------------------------------------------------------------------------
# supervisor


class SupervisorStates(BasicStates):
    """State names of a node supervisor: a pool of workers and its clients."""

    ErrWorker: str = am.state()
    """A worker failed (adds `Exception`, `NormalizingPool`, `Heartbeat`)."""
    ErrPool: str = am.state()
    """The pool cannot be kept at its minimum, e.g. workers fail to start
    (adds `Exception` and `NormalizingPool`)."""
    LocalRpcReady: str = am.state()
    """The bootstrap / worker-facing aRPC server is listening."""
    PublicRpcReady: str = am.state()
    """The client-facing aRPC server is listening."""
    PoolStarting: str = am.state()
    """Starting workers to meet the pool's minimum."""
    PoolReady: str = am.state()
    """At least the minimum of workers is ready."""
    NormalizingPool: str = am.state()
    """Starting or killing workers to meet the pool's definition."""
    PoolNormalized: str = am.state()
    """The pool was normalized; `PoolReady` tells the result."""
    WorkersAvailable: str = am.state()
    """At least one worker is idle (requires `PoolReady`)."""
    ListWorkers: str = am.state()
    """A getter of the worker list (Multi)."""
    SetWorker: str = am.state()
    """A setter of a worker's entry (Multi)."""
    ForkWorker: str = am.state()
    """Start a new worker process (Multi)."""
    ForkingWorker: str = am.state()
    """A worker process is starting (Multi)."""
    WorkerConnected: str = am.state()
    """A new worker connected to the bootstrap server (Multi)."""
    WorkerForked: str = am.state()
    """A new worker registered its address (Multi)."""
    KillWorker: str = am.state()
    """Kill a worker (Multi)."""
    KillingWorker: str = am.state()
    """A worker is being killed (Multi)."""
    WorkerKilled: str = am.state()
    """A worker was killed and reaped (Multi)."""
    WorkerReady: str = am.state()
    """A worker became ready (Multi, adds `PoolReady`; an active
    `PoolStarting` blocks that, so a supervisor adds `PoolReady` itself when
    the pool's minimum is met)."""
    WorkerGone: str = am.state()
    """A worker disconnected or died (Multi, removes `PoolReady`)."""
    ClientConnected: str = am.state()
    """A client connected (Multi)."""
    ClientDisconnected: str = am.state()
    """A client disconnected (Multi)."""
    ProvideWorker: str = am.state()
    """A client asks for a worker (Multi, requires `WorkersAvailable`)."""
    WorkerIssues: str = am.state()
    """A client reports a problem with its worker (Multi)."""
    ClientSendPayload: str = am.state()
    """A payload for a client (Multi)."""
    SuperConnected: str = am.state()
    """Another supervisor connected (Multi)."""
    SuperDisconnected: str = am.state()
    """Another supervisor disconnected (Multi)."""
    SuperSendPayload: str = am.state()
    """A payload for a supervisor (Multi)."""
    SendPayload: str = am.state()
    """Send `args["payload"]` to the aRPC clients (Multi, as in
    `asyncmachine.rpc.SOURCE_SCHEMA`)."""


_S = SupervisorStates


class SupervisorGroups:
    """Groups of mutually exclusive states of `SupervisorStates`."""

    PoolStatus: Final = (_S.PoolStarting, _S.PoolReady)
    PoolNormalized: Final = (_S.PoolNormalized, _S.NormalizingPool)


SUPERVISOR_SCHEMA: Final[am.Schema] = am.schema_merge(
    BASIC_SCHEMA,
    {
        # ErrWorker and WorkerKilled also remove PoolNormalized (Go adds only
        # NormalizingPool, which an active PoolNormalized would block)
        _S.ErrWorker: am.State(
            multi=True,
            add=[_S.Exception, _S.NormalizingPool, _S.Heartbeat],
            require=[_S.Exception],
            remove=[_S.PoolNormalized],
        ),
        _S.ErrPool: am.State(
            multi=True,
            add=[_S.Exception, _S.NormalizingPool],
            require=[_S.Exception],
            remove=[_S.PoolNormalized],
        ),
        _S.LocalRpcReady: am.State(require=[_S.Start]),
        _S.PublicRpcReady: am.State(require=[_S.Start]),
        _S.PoolStarting: am.State(
            remove=SupervisorGroups.PoolStatus, add=[_S.NormalizingPool]
        ),
        _S.PoolReady: am.State(
            require=[_S.Start], remove=SupervisorGroups.PoolStatus, add=[_S.Heartbeat]
        ),
        _S.NormalizingPool: am.State(
            require=[_S.Start],
            remove=SupervisorGroups.PoolNormalized,
            after=[_S.ErrWorker],
        ),
        _S.PoolNormalized: am.State(
            require=[_S.Start],
            remove=SupervisorGroups.PoolNormalized,
            add=[_S.Heartbeat],
        ),
        _S.WorkersAvailable: am.State(require=[_S.PoolReady]),
        _S.ListWorkers: am.State(multi=True, require=[_S.Start]),
        _S.SetWorker: am.State(multi=True, require=[_S.Start]),
        _S.ForkWorker: am.State(multi=True, require=[_S.Start]),
        _S.ForkingWorker: am.State(multi=True, require=[_S.Start]),
        _S.WorkerConnected: am.State(multi=True, require=[_S.Start]),
        _S.WorkerForked: am.State(multi=True, require=[_S.Start], add=[_S.Heartbeat]),
        _S.KillWorker: am.State(multi=True),
        _S.KillingWorker: am.State(multi=True),
        _S.WorkerKilled: am.State(
            multi=True,
            add=[_S.NormalizingPool, _S.Heartbeat],
            remove=[_S.PoolNormalized],
        ),
        _S.WorkerReady: am.State(multi=True, require=[_S.Start], add=[_S.PoolReady]),
        _S.WorkerGone: am.State(multi=True, require=[_S.Start], remove=[_S.PoolReady]),
        _S.ClientConnected: am.State(multi=True),
        _S.ClientDisconnected: am.State(multi=True),
        _S.ProvideWorker: am.State(multi=True, require=[_S.WorkersAvailable]),
        _S.WorkerIssues: am.State(multi=True),
        _S.ClientSendPayload: am.State(multi=True),
        _S.SuperConnected: am.State(multi=True),
        _S.SuperDisconnected: am.State(multi=True),
        _S.SuperSendPayload: am.State(multi=True),
        _S.SendPayload: am.State(multi=True),
        # overrides of the basic schema
        _S.Start: am.State(add=[_S.PoolStarting]),
        _S.Ready: am.State(require=[_S.LocalRpcReady, _S.PublicRpcReady, _S.PoolReady]),
        _S.Heartbeat: am.State(require=[_S.Start]),
    },
)
"""Relations of `SupervisorStates`, with the basic schema."""


# ---------------------------------------------------------------------------
# worker


class WorkerStates(BasicStates):
    """State names of a node worker: one machine doing the work, over aRPC."""

    ErrWork: str = am.state()
    """The work failed (adds `Exception`)."""
    ErrWorkTimeout: str = am.state()
    """The work took too long (adds `Exception`)."""
    ErrClient: str = am.state()
    """The client connection failed (adds `Exception`)."""
    ErrSupervisor: str = am.state()
    """The supervisor connection failed (adds `Exception`)."""
    LocalRpcReady: str = am.state()
    """Connected to the supervisor's bootstrap server."""
    PublicRpcReady: str = am.state()
    """The worker's own aRPC server (for its client) is listening."""
    RpcReady: str = am.state()
    """Both RPC sides are ready (auto)."""
    SuperConnected: str = am.state()
    """The supervisor is connected."""
    ClientConnected: str = am.state()
    """A client is connected."""
    ServeClient: str = am.state()
    """Serve a client (requires `PublicRpcReady`)."""
    ClientSendPayload: str = am.state()
    """A payload for the client (requires `PublicRpcReady`)."""
    SuperSendPayload: str = am.state()
    """A payload for the supervisor (requires `LocalRpcReady`)."""
    Idle: str = am.state()
    """No work (auto, requires `Ready`)."""
    WorkRequested: str = am.state()
    """A client asked for work (args: the work's input)."""
    Working: str = am.state()
    """The work is running."""
    WorkReady: str = am.state()
    """The work's result is ready."""
    SendPayload: str = am.state()
    """Send `args["payload"]` to the aRPC clients (Multi, as in
    `asyncmachine.rpc.SOURCE_SCHEMA`)."""


_W = WorkerStates


class WorkerGroups:
    """Groups of mutually exclusive states of `WorkerStates`."""

    WorkStatus: Final = (_W.WorkRequested, _W.Working, _W.WorkReady, _W.Idle)


WORKER_SCHEMA: Final[am.Schema] = am.schema_merge(
    BASIC_SCHEMA,
    {
        _W.ErrWork: _err(),
        _W.ErrWorkTimeout: _err(),
        _W.ErrClient: _err(),
        _W.ErrSupervisor: _err(),
        _W.LocalRpcReady: am.State(require=[_W.Start]),
        _W.PublicRpcReady: am.State(require=[_W.Start]),
        _W.RpcReady: am.State(auto=True, require=[_W.LocalRpcReady, _W.PublicRpcReady]),
        _W.SuperConnected: am.State(require=[_W.Start]),
        _W.ClientConnected: am.State(require=[_W.Start]),
        _W.ServeClient: am.State(require=[_W.PublicRpcReady]),
        _W.ClientSendPayload: am.State(require=[_W.PublicRpcReady]),
        _W.SuperSendPayload: am.State(require=[_W.LocalRpcReady]),
        _W.Idle: am.State(
            auto=True, require=[_W.Ready], remove=WorkerGroups.WorkStatus
        ),
        _W.WorkRequested: am.State(require=[_W.Ready], remove=WorkerGroups.WorkStatus),
        _W.Working: am.State(require=[_W.Ready], remove=WorkerGroups.WorkStatus),
        _W.WorkReady: am.State(require=[_W.Ready], remove=WorkerGroups.WorkStatus),
        _W.SendPayload: am.State(multi=True),
        # overrides of the basic schema
        _W.Ready: am.State(require=[_W.LocalRpcReady]),
    },
)
"""Relations of `WorkerStates`, with the basic schema."""


# ---------------------------------------------------------------------------
# client


class NodeClientStates(BasicStates):
    """State names of a node client: a supervisor connection, then a worker's."""

    ErrWorker: str = am.state()
    """The worker connection failed (adds `Exception`)."""
    ErrSupervisor: str = am.state()
    """The supervisor connection failed (adds `Exception`)."""
    SuperDisconnected: str = am.state()
    SuperConnecting: str = am.state()
    SuperConnected: str = am.state()
    SuperDisconnecting: str = am.state()
    SuperReady: str = am.state()
    """The supervisor connection is usable."""
    WorkerDisconnected: str = am.state()
    WorkerConnecting: str = am.state()
    WorkerConnected: str = am.state()
    WorkerDisconnecting: str = am.state()
    WorkerRequested: str = am.state()
    """A worker was asked of the supervisor (requires `SuperReady`)."""
    WorkerReady: str = am.state()
    """The worker connection is usable (removes `WorkerRequested`)."""
    ServerPayload: str = am.state()
    """A payload arrived, e.g. a worker's address (Multi, args: `payload`; as
    in `asyncmachine.rpc.CONSUMER_SCHEMA`)."""


_C = NodeClientStates


class NodeClientGroups:
    """Groups of mutually exclusive states of `NodeClientStates`."""

    Super: Final = (
        _C.SuperDisconnected,
        _C.SuperConnecting,
        _C.SuperConnected,
        _C.SuperDisconnecting,
    )
    Worker: Final = (
        _C.WorkerDisconnected,
        _C.WorkerConnecting,
        _C.WorkerConnected,
        _C.WorkerDisconnecting,
    )


NODE_CLIENT_SCHEMA: Final[am.Schema] = am.schema_merge(
    BASIC_SCHEMA,
    {
        _C.ErrWorker: _err(),
        _C.ErrSupervisor: _err(),
        _C.SuperDisconnected: am.State(remove=NodeClientGroups.Super),
        _C.SuperConnecting: am.State(require=[_C.Start], remove=NodeClientGroups.Super),
        _C.SuperConnected: am.State(require=[_C.Start], remove=NodeClientGroups.Super),
        _C.SuperDisconnecting: am.State(remove=NodeClientGroups.Super),
        _C.SuperReady: am.State(require=[_C.SuperConnected]),
        _C.WorkerDisconnected: am.State(remove=NodeClientGroups.Worker),
        _C.WorkerConnecting: am.State(
            require=[_C.Start], remove=NodeClientGroups.Worker
        ),
        _C.WorkerConnected: am.State(
            require=[_C.Start], remove=NodeClientGroups.Worker
        ),
        _C.WorkerDisconnecting: am.State(remove=NodeClientGroups.Worker),
        _C.WorkerRequested: am.State(require=[_C.SuperReady]),
        _C.WorkerReady: am.State(
            require=[_C.WorkerConnected], remove=[_C.WorkerRequested]
        ),
        _C.ServerPayload: am.State(multi=True),
        # overrides of the basic schema
        _C.Ready: am.State(auto=True, require=[_C.WorkerReady]),
    },
)
"""Relations of `NodeClientStates`, with the basic schema."""


# ---------------------------------------------------------------------------
# bootstrap


class BootstrapStates(BasicStates):
    """State names of a worker's bootstrap machine, which registers it."""

    WorkerAddr: str = am.state()
    """The worker's aRPC address is known (Multi, args: `addr`)."""
    SendPayload: str = am.state()
    """Send `args["payload"]` to the aRPC clients (Multi)."""


BOOTSTRAP_SCHEMA: Final[am.Schema] = am.schema_merge(
    BASIC_SCHEMA,
    {
        BootstrapStates.WorkerAddr: am.State(multi=True),
        BootstrapStates.SendPayload: am.State(multi=True),
    },
)
"""Relations of `BootstrapStates`, with the basic schema."""
