"""Machines over JSON transports, compatible with asyncmachine-go.

This package holds the transport-free part: the JSON requests and responses
(asyncmachine-go's kinds and field names), their checks, the handlers that
answer them from a machine, and their JSON Schemas. `asyncmachine.integrations.nats`
carries them over NATS.
"""

from ._json import REQUEST_KINDS as REQUEST_KINDS
from ._json import RESPONSE_KINDS as RESPONSE_KINDS
from ._json import GetterReq as GetterReq
from ._json import GetterResp as GetterResp
from ._json import Kind as Kind
from ._json import MutationReq as MutationReq
from ._json import MutationResp as MutationResp
from ._json import RemoteError as RemoteError
from ._json import Request as Request
from ._json import RequestError as RequestError
from ._json import WaitingReq as WaitingReq
from ._json import WaitingResp as WaitingResp
from ._json import decode as decode
from ._json import dumps as dumps
from ._json import error_response as error_response
from ._json import export_json as export_json
from ._json import handle_getter as handle_getter
from ._json import handle_mutation as handle_mutation
from ._json import parse_request as parse_request
from ._json import start_waiting as start_waiting
from ._json import waiting_response as waiting_response
from ._schemas import JSON_SCHEMAS as JSON_SCHEMAS

__all__ = [
    "JSON_SCHEMAS",
    "REQUEST_KINDS",
    "RESPONSE_KINDS",
    "GetterReq",
    "GetterResp",
    "Kind",
    "MutationReq",
    "MutationResp",
    "RemoteError",
    "Request",
    "RequestError",
    "WaitingReq",
    "WaitingResp",
    "decode",
    "dumps",
    "error_response",
    "export_json",
    "handle_getter",
    "handle_mutation",
    "parse_request",
    "start_waiting",
    "waiting_response",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith(
        "asyncmachine.integrations._"
    ):
        _obj.__module__ = "asyncmachine.integrations"
del _name, _obj
