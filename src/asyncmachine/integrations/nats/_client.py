"""The client side: send requests to machines exposed on NATS."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, final

import anyio
import attrs

import asyncmachine as am

from .._json import (
    GetterReq,
    GetterResp,
    MutationReq,
    MutationResp,
    WaitingReq,
    WaitingResp,
    dumps,
)
from ._conn import NatsClient, NatsConn, as_conn
from ._expose import _check_subject

#: How much longer than a wait's `timeout` the client waits for its reply:
#: the machine answers a timed-out wait with an error, which says more.
_GRACE: Final = 0.5


def _names(states: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(states, str):
        raise TypeError(
            f"{what} takes a list of state names, got the string {states!r}"
        )
    out = tuple(states)
    if not out:
        raise ValueError(f"{what} needs at least one state name")
    for s in out:
        if not isinstance(s, str):
            raise TypeError(f"{what}: state names are strings, got {s!r}")
    return out


def _json_args(args: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not args:
        return None
    out = dict(args)
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError):
        for key, value in out.items():
            if not isinstance(key, str):
                raise TypeError(f"arg names are strings, got {key!r}") from None
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise TypeError(f"arg {key!r} is not JSON data: {e}") from None
        raise
    return out


@final
class NatsMachine:
    """A machine exposed on NATS, seen from another connection.

    `mach_id=None` addresses the shared `subject` (any machine of a queue
    group, or all exposed there); a machine ID addresses
    `<subject>.<mach_id>`. Every call sends one request and waits for its
    reply at most `timeout` seconds (mutations, getters) or `wait_timeout`
    seconds (waits; None: no limit), and never past the caller's cancel
    scope (`anyio.fail_after`): a wait tells the machine how long it is
    wanted, so an abandoned wait ends there too. A reply with an error
    raises `RemoteError`; no reply in time raises `NatsTimeoutError` (or
    the caller's scope its `TimeoutError`). `state_names`, when given,
    lets unknown names raise `am.StateNameError` before anything is sent.
    Works under asyncio and trio (see `NatsConn`).
    """

    def __init__(
        self,
        conn: NatsConn | NatsClient,
        subject: str,
        mach_id: str | None = None,
        *,
        timeout: float = 5.0,
        wait_timeout: float | None = None,
        state_names: Iterable[str] | None = None,
    ) -> None:
        _check_subject(subject, "subject")
        if mach_id is not None:
            _check_subject(mach_id, "the machine ID", token=True)
        self.conn: NatsConn = as_conn(conn)
        self.subject: str = subject
        self.mach_id = mach_id
        self.target: str = subject if mach_id is None else f"{subject}.{mach_id}"
        self.timeout = timeout
        self.wait_timeout = wait_timeout
        self.state_names: frozenset[str] | None = (
            None if state_names is None else frozenset(state_names)
        )

    def _check(self, states: Iterable[str], what: str) -> tuple[str, ...]:
        out = _names(states, what)
        known = self.state_names
        if known is not None:
            for s in out:
                if s not in known:
                    raise am.StateNameError(s, self.mach_id or self.subject)
        return out

    async def _request(self, req: dict[str, Any], limit: float) -> bytes:
        return await self.conn._request(self.target, dumps(req), limit)

    # ------------------------------------------------------------ mutations

    async def add(
        self,
        states: Iterable[str],
        args: Mapping[str, Any] | None = None,
    ) -> am.Result:
        """Add `states` with `args` on the remote machine; its `am.Result`."""
        req = MutationReq(add=self._check(states, "add"), args=_json_args(args))
        return await self._mutate(req)

    async def add1(
        self,
        state: str,
        args: Mapping[str, Any] | None = None,
    ) -> am.Result:
        """Add one state: `add([state], args)`."""
        return await self.add([state], args)

    async def remove(
        self,
        states: Iterable[str],
        args: Mapping[str, Any] | None = None,
    ) -> am.Result:
        """Remove `states` with `args` on the remote machine; its `am.Result`."""
        req = MutationReq(remove=self._check(states, "remove"), args=_json_args(args))
        return await self._mutate(req)

    async def remove1(
        self,
        state: str,
        args: Mapping[str, Any] | None = None,
    ) -> am.Result:
        """Remove one state: `remove([state], args)`."""
        return await self.remove([state], args)

    async def mutate(self, req: MutationReq) -> MutationResp:
        """Send a prepared mutation request; the full response."""
        data = await self._request(req.to_json(), self.timeout)
        return MutationResp.from_bytes(data)

    async def _mutate(self, req: MutationReq) -> am.Result:
        return (await self.mutate(req)).result

    # ---------------------------------------------------------------- waits

    async def when(self, states: Iterable[str]) -> WaitingResp:
        """Return once all `states` are active on the remote machine."""
        return await self.wait(WaitingReq(states=self._check(states, "when")))

    async def when_not(self, states: Iterable[str]) -> WaitingResp:
        """Return once none of `states` is active on the remote machine."""
        return await self.wait(WaitingReq(states_not=self._check(states, "when_not")))

    async def when_time(
        self,
        states: Iterable[str],
        times: Sequence[int],
    ) -> WaitingResp:
        """Return once each state's tick reached its value in `times`."""
        names = self._check(states, "when_time")
        ticks = tuple(times)
        if len(ticks) != len(names) or not all(
            type(t) is int and t >= 0 for t in ticks
        ):
            raise ValueError("when_time: one tick (an int >= 0) per state")
        return await self.wait(WaitingReq(states=names, time=ticks))

    async def wait(self, req: WaitingReq) -> WaitingResp:
        """Send a prepared wait request; the full response.

        Its `timeout` is set to the sooner of `wait_timeout`, the request's
        own and the caller's deadline, and also bounds the reply.
        """
        limits = [t for t in (req.timeout, self.wait_timeout) if t is not None]
        deadline = anyio.current_effective_deadline()
        if deadline < math.inf:
            limits.append(max(deadline - anyio.current_time(), 1e-3))
        limit = min(limits) if limits else None
        if limit != req.timeout:
            req = attrs.evolve(req, timeout=limit)
        data = await self._request(
            req.to_json(), math.inf if limit is None else limit + _GRACE
        )
        return WaitingResp.from_bytes(data)

    # -------------------------------------------------------------- getters

    async def get(self, req: GetterReq) -> GetterResp:
        """Send a prepared getter request; the full response."""
        for field in ("time", "time_sum", "clocks"):
            names = getattr(req, field)
            if names is not None:
                self._check(names, field)
        data = await self._request(req.to_json(), self.timeout)
        return GetterResp.from_bytes(data)

    async def time(self, states: Iterable[str]) -> am.Time:
        """The ticks of `states`."""
        resp = await self.get(GetterReq(time=_names(states, "time")))
        return resp.time or ()

    async def time_sum(self, states: Iterable[str]) -> int:
        """The sum of the ticks of `states`."""
        names = _names(states, "time_sum")
        resp = await self.get(GetterReq(time_sum=names))
        return resp.time_sum or 0

    async def clock(self, states: Iterable[str]) -> am.Clock:
        """The ticks of `states`, by name."""
        names = _names(states, "clock")
        resp = await self.get(GetterReq(clocks=names))
        return dict(resp.clocks or {})

    async def tags(self) -> list[str]:
        """The remote machine's tags."""
        resp = await self.get(GetterReq(tags=True))
        return list(resp.tags or ())

    async def export(self) -> dict[str, Any]:
        """The remote machine's export, as JSON data."""
        resp = await self.get(GetterReq(export=True))
        return dict(resp.export or {})

    async def get_id(self) -> str:
        """The remote machine's ID."""
        resp = await self.get(GetterReq(id=True))
        return resp.id or ""

    async def parent_id(self) -> str:
        """The remote machine's parent ID ("" for none)."""
        resp = await self.get(GetterReq(parent_id=True))
        return resp.parent_id or ""


async def add(
    conn: NatsConn | NatsClient,
    subject: str,
    mach_id: str | None,
    states: Iterable[str],
    args: Mapping[str, Any] | None = None,
) -> am.Result:
    """Add `states` on the machine `mach_id` exposed under `subject`.

    `mach_id=None` addresses the shared subject. Waits for the reply up to
    5 seconds, or the caller's deadline if sooner.
    """
    return await NatsMachine(conn, subject, mach_id).add(states, args)


async def remove(
    conn: NatsConn | NatsClient,
    subject: str,
    mach_id: str | None,
    states: Iterable[str],
    args: Mapping[str, Any] | None = None,
) -> am.Result:
    """Remove `states` on the machine `mach_id` (same arguments as `add`)."""
    return await NatsMachine(conn, subject, mach_id).remove(states, args)
