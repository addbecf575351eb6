"""aRPC: use a machine of one process from another, as if it were local.

A `Server` exposes a local source machine on a TCP address; a `Client`
connects and offers it as `client.net_mach`, a `NetMachine`: mutations
travel to the server and return the source's real `Result`, while checks,
clocks, when-methods and state contexts run locally on the clock the
server pushes after every transition.
"""

from ._client import Client as Client
from ._client import NetMachine as NetMachine
from ._server import DEFAULT_DENY as DEFAULT_DENY
from ._server import Authorizer as Authorizer
from ._server import Permissions as Permissions
from ._server import Server as Server
from ._server import Session as Session
from ._states import CLIENT_SCHEMA as CLIENT_SCHEMA
from ._states import CONSUMER_SCHEMA as CONSUMER_SCHEMA
from ._states import SERVER_SCHEMA as SERVER_SCHEMA
from ._states import SOURCE_SCHEMA as SOURCE_SCHEMA
from ._states import ClientGroups as ClientGroups
from ._states import ClientStates as ClientStates
from ._states import ConsumerStates as ConsumerStates
from ._states import ServerGroups as ServerGroups
from ._states import ServerStates as ServerStates
from ._states import SourceStates as SourceStates
from ._wire import PRE_AUTH_MAX_FRAME as PRE_AUTH_MAX_FRAME
from ._wire import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._wire import AuthError as AuthError
from ._wire import DeniedError as DeniedError
from ._wire import NotConnectedError as NotConnectedError
from ._wire import Payload as Payload
from ._wire import ProtocolError as ProtocolError
from ._wire import RemoteError as RemoteError
from ._wire import RpcError as RpcError
from ._wire import SchemaMismatchError as SchemaMismatchError
from ._wire import TLSError as TLSError
from ._wire import VersionError as VersionError
from ._wire import schema_hash as schema_hash

__all__ = [
    "CLIENT_SCHEMA",
    "CONSUMER_SCHEMA",
    "DEFAULT_DENY",
    "PRE_AUTH_MAX_FRAME",
    "PROTOCOL_VERSION",
    "SERVER_SCHEMA",
    "SOURCE_SCHEMA",
    "AuthError",
    "Authorizer",
    "Client",
    "ClientGroups",
    "ClientStates",
    "ConsumerStates",
    "DeniedError",
    "NetMachine",
    "NotConnectedError",
    "Payload",
    "Permissions",
    "ProtocolError",
    "RemoteError",
    "RpcError",
    "SchemaMismatchError",
    "Server",
    "ServerGroups",
    "ServerStates",
    "Session",
    "SourceStates",
    "TLSError",
    "VersionError",
    "schema_hash",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("asyncmachine.rpc._"):
        _obj.__module__ = "asyncmachine.rpc"
del _name, _obj
