"""Node: a supervisor keeps a pool of worker processes; clients get workers.

A `Supervisor` starts workers as separate processes (`python -m module`,
each a machine served over aRPC with its own secret), keeps `min` ready and
`warm` idle within `max`, and reaps and replaces dead ones. A `Client` asks
the supervisor for a worker, gets its address as a payload and then talks
to it directly. The states are `asyncmachine.states.SupervisorStates`,
`WorkerStates` and `NodeClientStates`. See docs/node.md.
"""

from ._base import POOL_SECRET_ENV as POOL_SECRET_ENV
from ._base import SECRET_ENV as SECRET_ENV
from ._base import NodeError as NodeError
from ._base import WorkerGoneError as WorkerGoneError
from ._base import WorkError as WorkError
from ._client import Client as Client
from ._supervisor import Supervisor as Supervisor
from ._supervisor import WorkerFactory as WorkerFactory
from ._supervisor import WorkerInfo as WorkerInfo
from ._worker import Worker as Worker
from ._worker import WorkFn as WorkFn
from ._worker import run_worker as run_worker

__all__ = [
    "POOL_SECRET_ENV",
    "SECRET_ENV",
    "Client",
    "NodeError",
    "Supervisor",
    "WorkError",
    "WorkFn",
    "Worker",
    "WorkerFactory",
    "WorkerGoneError",
    "WorkerInfo",
    "run_worker",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("asyncmachine.node._"):
        _obj.__module__ = "asyncmachine.node"
del _name, _obj
