"""JSON requests and responses of asyncmachine-go's integrations.

Three request kinds reach an exposed machine: a mutation (add or remove,
with args), a wait (until states are active, inactive, or reached given
ticks) and a getter (ticks, tick sums, clocks, tags, export, ids). The
field names are asyncmachine-go's, so Go and Python machines interoperate.
Beyond Go: every response may carry `error` (the request was refused or
failed; nothing changed), every response names the answering machine in
`mach_id`, and a wait may carry `timeout` (seconds). The JSON Schemas are
in `JSON_SCHEMAS` and on the docs page "Machines over NATS".
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, final

import attrs

import asyncmachine as am


class Kind(enum.StrEnum):
    """The `kind` field of every message."""

    REQ_GETTER = "am_req_getter"
    REQ_MUTATION = "am_req_mutation"
    REQ_WAITING = "am_req_waiting"
    RESP_GETTER = "am_resp_getter"
    RESP_MUTATION = "am_resp_mutation"
    RESP_WAITING = "am_resp_waiting"
    RESP_ERROR = "am_resp_error"
    """A request that could not be read at all (bad JSON, unknown kind)."""


REQUEST_KINDS: Final = frozenset({Kind.REQ_GETTER, Kind.REQ_MUTATION, Kind.REQ_WAITING})
RESPONSE_KINDS: Final = frozenset(
    {Kind.RESP_GETTER, Kind.RESP_MUTATION, Kind.RESP_WAITING, Kind.RESP_ERROR}
)


class RequestError(ValueError):
    """A request that breaks its JSON Schema or names unknown states."""


def dumps(obj: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes of a message."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def decode(data: bytes | str) -> dict[str, Any]:
    """Parse one message into a dict with a string `kind`; `RequestError` if not."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f"malformed JSON: {e}") from None
    if not isinstance(obj, dict):
        raise RequestError(f"a message is a JSON object, got {type(obj).__name__}")
    kind = obj.get("kind")
    if not isinstance(kind, str):
        raise RequestError("field 'kind' missing or not a string")
    return obj


# ------------------------------------------------------------------ checks


def _names(obj: Mapping[str, Any], field: str) -> tuple[str, ...] | None:
    v = obj.get(field)
    if v is None:
        return None
    if not isinstance(v, list) or not v or not all(isinstance(s, str) for s in v):
        raise RequestError(f"field {field!r}: a non-empty list of state names")
    return tuple(v)


def _flag(obj: Mapping[str, Any], field: str) -> bool:
    v = obj.get(field, False)
    if not isinstance(v, bool):
        raise RequestError(f"field {field!r}: a boolean")
    return v


def _only(obj: Mapping[str, Any], allowed: frozenset[str]) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise RequestError(f"unknown field {extra[0]!r}")


def _check_kind(obj: Mapping[str, Any], kind: Kind) -> None:
    if obj.get("kind") != kind:
        raise RequestError(f"field 'kind': expected {str(kind)!r}")


def _known(mach: am.Machine, field: str, states: Sequence[str] | None) -> None:
    for s in states or ():
        if not mach.has1(s):
            raise RequestError(f"field {field!r}: machine {mach.id} has no state {s!r}")


# --------------------------------------------------------------- requests

_MUT_FIELDS: Final = frozenset({"kind", "add", "remove", "args"})
_WAIT_FIELDS: Final = frozenset({"kind", "states", "states_not", "time", "timeout"})
_GET_LISTS: Final = ("time", "time_sum", "clocks")
_GET_FLAGS: Final = ("tags", "export", "id", "parent_id")
_GET_FIELDS: Final = frozenset({"kind", *_GET_LISTS, *_GET_FLAGS})


@final
@attrs.frozen
class MutationReq:
    """Add or remove (exactly one of the two) `states` with `args`."""

    add: tuple[str, ...] | None = None
    remove: tuple[str, ...] | None = None
    args: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The request as a JSON object."""
        out: dict[str, Any] = {"kind": str(Kind.REQ_MUTATION)}
        if self.add is not None:
            out["add"] = list(self.add)
        if self.remove is not None:
            out["remove"] = list(self.remove)
        if self.args:
            out["args"] = self.args
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> MutationReq:
        """Read and check a request object; `RequestError` names the field."""
        _check_kind(obj, Kind.REQ_MUTATION)
        _only(obj, _MUT_FIELDS)
        add, remove = _names(obj, "add"), _names(obj, "remove")
        if (add is None) == (remove is None):
            raise RequestError("a mutation has exactly one of 'add' and 'remove'")
        args = obj.get("args")
        if args is not None and not isinstance(args, dict):
            raise RequestError("field 'args': a JSON object")
        return cls(add=add, remove=remove, args=args)


@final
@attrs.frozen
class WaitingReq:
    """Wait until `states` are active (at `time`, if given) or `states_not` are not."""

    states: tuple[str, ...] | None = None
    states_not: tuple[str, ...] | None = None
    time: tuple[int, ...] | None = None
    timeout: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The request as a JSON object."""
        out: dict[str, Any] = {"kind": str(Kind.REQ_WAITING)}
        if self.states is not None:
            out["states"] = list(self.states)
        if self.states_not is not None:
            out["states_not"] = list(self.states_not)
        if self.time is not None:
            out["time"] = list(self.time)
        if self.timeout is not None:
            out["timeout"] = self.timeout
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> WaitingReq:
        """Read and check a request object; `RequestError` names the field."""
        _check_kind(obj, Kind.REQ_WAITING)
        _only(obj, _WAIT_FIELDS)
        states, states_not = _names(obj, "states"), _names(obj, "states_not")
        if (states is None) == (states_not is None):
            raise RequestError("a wait has exactly one of 'states' and 'states_not'")
        time = obj.get("time")
        if time is not None:
            if states is None:
                raise RequestError("field 'time' goes with 'states' only")
            if not isinstance(time, list) or not all(
                type(t) is int and t >= 0 for t in time
            ):
                raise RequestError("field 'time': a list of ticks (integers >= 0)")
            if len(time) != len(states):
                raise RequestError("fields 'time' and 'states' differ in length")
            time = tuple(time)
        timeout = obj.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not (0 < timeout < math.inf)
        ):
            raise RequestError("field 'timeout': seconds, a number > 0")
        return cls(states=states, states_not=states_not, time=time, timeout=timeout)


@final
@attrs.frozen
class GetterReq:
    """Ask for any of: ticks, a tick sum, clocks, tags, the export, the ids."""

    time: tuple[str, ...] | None = None
    time_sum: tuple[str, ...] | None = None
    clocks: tuple[str, ...] | None = None
    tags: bool = False
    export: bool = False
    id: bool = False
    parent_id: bool = False

    def to_json(self) -> dict[str, Any]:
        """The request as a JSON object."""
        out: dict[str, Any] = {"kind": str(Kind.REQ_GETTER)}
        for f in _GET_LISTS:
            v = getattr(self, f)
            if v is not None:
                out[f] = list(v)
        for f in _GET_FLAGS:
            if getattr(self, f):
                out[f] = True
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> GetterReq:
        """Read and check a request object; `RequestError` names the field."""
        _check_kind(obj, Kind.REQ_GETTER)
        _only(obj, _GET_FIELDS)
        return cls(
            time=_names(obj, "time"),
            time_sum=_names(obj, "time_sum"),
            clocks=_names(obj, "clocks"),
            tags=_flag(obj, "tags"),
            export=_flag(obj, "export"),
            id=_flag(obj, "id"),
            parent_id=_flag(obj, "parent_id"),
        )


Request = MutationReq | WaitingReq | GetterReq

_REQUEST_CLASSES: Final[dict[str, type[Request]]] = {
    Kind.REQ_MUTATION: MutationReq,
    Kind.REQ_WAITING: WaitingReq,
    Kind.REQ_GETTER: GetterReq,
}


def parse_request(obj: Mapping[str, Any]) -> Request:
    """The request of a decoded message; `RequestError` for anything else."""
    cls = _REQUEST_CLASSES.get(obj.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        raise RequestError(f"unknown request kind {obj.get('kind')!r}")
    return cls.from_json(obj)


# --------------------------------------------------------------- handlers


def error_response(kind: Kind, error: str, mach_id: str = "") -> dict[str, Any]:
    """The response of `kind` for a refused or failed request.

    A mutation's carries `result: 1` (canceled), so that a client that
    ignores `error` (asyncmachine-go's does) still reads a refusal.
    """
    out: dict[str, Any] = {"kind": str(kind), "error": error}
    if mach_id:
        out["mach_id"] = mach_id
    if kind is Kind.RESP_MUTATION:
        out["result"] = int(am.Result.CANCELED)
    return out


def _exc_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def handle_mutation(mach: am.Machine, req: MutationReq) -> dict[str, Any]:
    """Run the mutation on `mach` (from its loop) and return the response.

    Unknown states and failing calls give an error response; the machine
    is left unchanged then.
    """
    if mach.disposed:
        return error_response(
            Kind.RESP_MUTATION, f"machine {mach.id} is disposed", mach.id
        )
    try:
        _known(mach, "add", req.add)
        _known(mach, "remove", req.remove)
        if req.add is not None:
            res = mach.add(req.add, req.args)
        else:
            assert req.remove is not None
            res = mach.remove(req.remove, req.args)
    except Exception as e:
        return error_response(Kind.RESP_MUTATION, _exc_text(e), mach.id)
    return {"kind": str(Kind.RESP_MUTATION), "mach_id": mach.id, "result": int(res)}


def handle_getter(mach: am.Machine, req: GetterReq) -> dict[str, Any]:
    """Read what `req` asks for from `mach`; requested fields are always present."""
    if mach.disposed:
        return error_response(
            Kind.RESP_GETTER, f"machine {mach.id} is disposed", mach.id
        )
    out: dict[str, Any] = {"kind": str(Kind.RESP_GETTER), "mach_id": mach.id}
    try:
        _known(mach, "time", req.time)
        _known(mach, "time_sum", req.time_sum)
        _known(mach, "clocks", req.clocks)
        if req.time is not None:
            out["time"] = list(mach.time(req.time))
        if req.time_sum is not None:
            out["time_sum"] = sum(mach.time(req.time_sum))
        if req.clocks is not None:
            out["clocks"] = mach.clock(req.clocks)
        if req.tags:
            out["tags"] = list(mach.tags)
        if req.export:
            out["export"] = export_json(mach)
        if req.id:
            out["id"] = mach.id
        if req.parent_id:
            out["parent_id"] = mach.parent_id
    except Exception as e:
        return error_response(Kind.RESP_GETTER, _exc_text(e), mach.id)
    return out


def export_json(mach: am.Machine) -> dict[str, Any]:
    """`mach.export()` as a JSON object (asyncmachine-go's field names)."""
    return mach.export().to_json()


def start_waiting(mach: am.Machine, req: WaitingReq) -> am.WhenEvent:
    """Subscribe to the condition of `req`; `RequestError` for unknown states."""
    if mach.disposed:
        raise RequestError(f"machine {mach.id} is disposed")
    _known(mach, "states", req.states)
    _known(mach, "states_not", req.states_not)
    if req.states_not is not None:
        return mach.when_not(req.states_not)
    assert req.states is not None
    if req.time is not None:
        return mach.when_time(req.states, req.time)
    return mach.when(req.states)


def waiting_response(mach: am.Machine, req: WaitingReq) -> dict[str, Any]:
    """The response to a wait whose condition holds."""
    if mach.disposed:
        return error_response(
            Kind.RESP_WAITING, f"machine {mach.id} is disposed", mach.id
        )
    out: dict[str, Any] = {"kind": str(Kind.RESP_WAITING), "mach_id": mach.id}
    if req.states_not is not None:
        out["states_not"] = list(req.states_not)
    else:
        assert req.states is not None
        out["states"] = list(req.states)
        if req.time is not None:
            out["time"] = list(mach.time(req.states))
    return out


# -------------------------------------------------------------- responses


class RemoteError(Exception):
    """The machine refused or failed a request (the response's `error`)."""

    def __init__(self, message: str, *, kind: str = "", mach_id: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.mach_id = mach_id


def _response(data: bytes, kind: Kind) -> dict[str, Any]:
    try:
        obj = decode(data)
    except RequestError as e:
        raise RemoteError(f"unreadable response: {e}") from None
    got = obj["kind"]
    error = obj.get("error")
    if error is not None:
        raise RemoteError(str(error), kind=got, mach_id=str(obj.get("mach_id", "")))
    if got != kind:
        raise RemoteError(f"expected a {str(kind)!r} response, got {got!r}")
    return obj


@final
@attrs.frozen
class MutationResp:
    """A mutation's outcome on the remote machine."""

    result: am.Result
    mach_id: str = ""

    @classmethod
    def from_bytes(cls, data: bytes) -> MutationResp:
        """Parse a response; `RemoteError` for an error response."""
        obj = _response(data, Kind.RESP_MUTATION)
        try:
            result = am.Result(obj["result"])
        except (KeyError, ValueError):
            raise RemoteError(f"bad result {obj.get('result')!r}") from None
        return cls(result=result, mach_id=str(obj.get("mach_id", "")))


@final
@attrs.frozen
class WaitingResp:
    """A wait that came true on the remote machine."""

    mach_id: str = ""
    states: tuple[str, ...] | None = None
    states_not: tuple[str, ...] | None = None
    time: tuple[int, ...] | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> WaitingResp:
        """Parse a response; `RemoteError` for an error response."""
        obj = _response(data, Kind.RESP_WAITING)
        return cls(
            mach_id=str(obj.get("mach_id", "")),
            states=_tuple(obj.get("states")),
            states_not=_tuple(obj.get("states_not")),
            time=_tuple(obj.get("time")),
        )


@final
@attrs.frozen
class GetterResp:
    """What a getter read; fields that were not asked for are None."""

    mach_id: str = ""
    time: tuple[int, ...] | None = None
    time_sum: int | None = None
    clocks: dict[str, int] | None = None
    tags: tuple[str, ...] | None = None
    export: dict[str, Any] | None = None
    id: str | None = None
    parent_id: str | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> GetterResp:
        """Parse a response; `RemoteError` for an error response."""
        obj = _response(data, Kind.RESP_GETTER)
        return cls(
            mach_id=str(obj.get("mach_id", "")),
            time=_tuple(obj.get("time")),
            time_sum=obj.get("time_sum"),
            clocks=obj.get("clocks"),
            tags=_tuple(obj.get("tags")),
            export=obj.get("export"),
            id=obj.get("id"),
            parent_id=obj.get("parent_id"),
        )


def _tuple(v: Any) -> Any:
    return None if v is None else tuple(v)
