"""Reusable state schemas (the Go project's `pkg/states`).

Each schema comes with its typed state names (a `StatesBase` subclass to
inherit from) and, where it has any, its groups of mutually exclusive
states. Merge a schema into your own with `am.schema_merge`:

    class MyStates(BasicStates):
        Working = am.state()

    MY_SCHEMA = am.schema_merge(BASIC_SCHEMA, {MyStates.Working: am.State()})

- basic: `Start`, `Ready`, `Healthcheck`, `Heartbeat` and error states;
- connected: a connection's four states, and a pool of connections;
- disposed: disposal in states, and `DisposedHandlers` running it;
- node: a supervisor of a worker pool, its workers, their clients and a
  worker's bootstrap machine (Go's `pkg/node/states`).

The connected, disposed and node schemas include the basic one (they need
`Start`).
"""

from ._basic import BASIC_SCHEMA as BASIC_SCHEMA
from ._basic import BasicStates as BasicStates
from ._connected import CONN_POOL_SCHEMA as CONN_POOL_SCHEMA
from ._connected import CONNECTED_SCHEMA as CONNECTED_SCHEMA
from ._connected import ConnectedGroups as ConnectedGroups
from ._connected import ConnectedStates as ConnectedStates
from ._connected import ConnectingError as ConnectingError
from ._connected import ConnPoolGroups as ConnPoolGroups
from ._connected import ConnPoolStates as ConnPoolStates
from ._connected import add_err_connecting as add_err_connecting
from ._disposed import DISPOSED_ARG_HANDLER as DISPOSED_ARG_HANDLER
from ._disposed import DISPOSED_SCHEMA as DISPOSED_SCHEMA
from ._disposed import DisposalHandler as DisposalHandler
from ._disposed import DisposedHandlers as DisposedHandlers
from ._disposed import DisposedStates as DisposedStates
from ._node import BOOTSTRAP_SCHEMA as BOOTSTRAP_SCHEMA
from ._node import NODE_CLIENT_SCHEMA as NODE_CLIENT_SCHEMA
from ._node import SUPERVISOR_SCHEMA as SUPERVISOR_SCHEMA
from ._node import WORKER_SCHEMA as WORKER_SCHEMA
from ._node import BootstrapStates as BootstrapStates
from ._node import NodeClientGroups as NodeClientGroups
from ._node import NodeClientStates as NodeClientStates
from ._node import SupervisorGroups as SupervisorGroups
from ._node import SupervisorStates as SupervisorStates
from ._node import WorkerGroups as WorkerGroups
from ._node import WorkerStates as WorkerStates

__all__ = [
    "BASIC_SCHEMA",
    "BOOTSTRAP_SCHEMA",
    "CONNECTED_SCHEMA",
    "CONN_POOL_SCHEMA",
    "DISPOSED_ARG_HANDLER",
    "DISPOSED_SCHEMA",
    "NODE_CLIENT_SCHEMA",
    "SUPERVISOR_SCHEMA",
    "WORKER_SCHEMA",
    "BasicStates",
    "BootstrapStates",
    "ConnPoolGroups",
    "ConnPoolStates",
    "ConnectedGroups",
    "ConnectedStates",
    "ConnectingError",
    "DisposalHandler",
    "DisposedHandlers",
    "DisposedStates",
    "NodeClientGroups",
    "NodeClientStates",
    "SupervisorGroups",
    "SupervisorStates",
    "WorkerGroups",
    "WorkerStates",
    "add_err_connecting",
]
