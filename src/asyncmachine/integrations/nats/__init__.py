"""Machines over NATS (extra `nats`, on nats-py), compatible with asyncmachine-go.

`expose(mach, conn, subject, queue=None)` answers mutation, wait and getter
requests (JSON, asyncmachine-go's kinds and field names) on `subject` and
on `<subject>.<machine id>`; `NatsMachine` sends them. `NatsConn` runs
nats-py under asyncio directly and under trio in an asyncio thread.
`snapshots()` keeps a machine's export in a JetStream key-value bucket and
`restore()` builds the machine from it on start.
"""

from .._json import GetterReq as GetterReq
from .._json import GetterResp as GetterResp
from .._json import MutationReq as MutationReq
from .._json import MutationResp as MutationResp
from .._json import RemoteError as RemoteError
from .._json import WaitingReq as WaitingReq
from .._json import WaitingResp as WaitingResp
from ._client import NatsMachine as NatsMachine
from ._client import add as add
from ._client import remove as remove
from ._conn import CONN_SCHEMA as CONN_SCHEMA
from ._conn import DEFAULT_SERVERS as DEFAULT_SERVERS
from ._conn import ConnStates as ConnStates
from ._conn import NatsConn as NatsConn
from ._conn import NatsError as NatsError
from ._conn import NatsTimeoutError as NatsTimeoutError
from ._conn import NoRespondersError as NoRespondersError
from ._conn import Subscription as Subscription
from ._expose import DEFAULT_MAX_SIZE as DEFAULT_MAX_SIZE
from ._expose import Exposure as Exposure
from ._expose import expose as expose
from ._kv import KvSnapshots as KvSnapshots
from ._kv import load_snapshot as load_snapshot
from ._kv import restore as restore
from ._kv import snapshots as snapshots
from ._server import LocalServer as LocalServer
from ._server import find_nats_server as find_nats_server

__all__ = [
    "CONN_SCHEMA",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_SERVERS",
    "ConnStates",
    "Exposure",
    "GetterReq",
    "GetterResp",
    "KvSnapshots",
    "LocalServer",
    "MutationReq",
    "MutationResp",
    "NatsConn",
    "NatsError",
    "NatsMachine",
    "NatsTimeoutError",
    "NoRespondersError",
    "RemoteError",
    "Subscription",
    "WaitingReq",
    "WaitingResp",
    "add",
    "expose",
    "find_nats_server",
    "load_snapshot",
    "remove",
    "restore",
    "snapshots",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith(
        "asyncmachine.integrations.nats._"
    ):
        _obj.__module__ = "asyncmachine.integrations.nats"
del _name, _obj
