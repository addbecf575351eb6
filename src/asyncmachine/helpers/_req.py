"""Failsafe mutation requests: retries with a delay, exponential backoff and
a maximum duration (Go: `amhelp.MutRequest`, `NewReqAdd1`)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any, TypedDict, Unpack, final

import anyio
import attrs

from .._machine import CoreMachine
from .._runtime import StateCtx
from .._types import MutationType, Result, StateNameError
from ._wait import _check_ctx, _scope

__all__ = [
    "MutRequest",
    "RequestPolicy",
    "req_add",
    "req_add1",
    "req_remove",
    "req_remove1",
]


def _debug(seconds: float) -> float:
    """`seconds`, or 100 times it when `AM_DEBUG=1` (time to step through)."""
    return seconds * 100 if os.environ.get("AM_DEBUG") == "1" else seconds


def _states(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError(f"states must be a list of names, not the string {value!r}")
    return tuple(value)


def _non_negative(inst: object, attr: attrs.Attribute[Any], value: float) -> None:
    if not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
        raise ValueError(f"{attr.name} must be a number >= 0, got {value!r}")


@final
@attrs.frozen(kw_only=True)
class MutRequest:
    """A mutation that is retried while the machine refuses it.

    `await req.run()` calls the mutation; a `CANCELED` result is retried up
    to `retries` times. The first retry waits `delay` seconds, each next one
    twice as long, capped at `backoff` (`backoff=0`: always `delay`). After
    `max_duration` seconds in total it gives up. `EXECUTED` and `QUEUED`
    count as success. Derive variants with `attrs.evolve(req, retries=3)`.
    """

    mach: CoreMachine
    """The machine to mutate."""
    type: MutationType = attrs.field(converter=MutationType)
    """ADD or REMOVE."""
    states: tuple[str, ...] = attrs.field(converter=_states)
    """The states to add or remove."""
    args: dict[str, Any] | None = None
    """Mutation args (the same dict on every try)."""
    retries: int = 10
    """Retries after the first try."""
    delay: float = attrs.field(default=0.1, validator=_non_negative)
    """Seconds before the first retry; doubles for each next one."""
    backoff: float = attrs.field(default=5.0, validator=_non_negative)
    """The longest wait between retries; 0 keeps `delay` constant."""
    max_duration: float = attrs.field(default=5.0, validator=_non_negative)
    """Seconds after which the request gives up."""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.mach, CoreMachine):
            raise TypeError(f"expected an am.Machine, got {type(self.mach).__name__}")
        if self.type is MutationType.SET:
            raise ValueError("a request adds or removes states, not set")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {self.retries!r}")
        if self.args is not None and not isinstance(self.args, dict):
            raise TypeError(f"args must be a dict, got {type(self.args).__name__}")
        for name in self.states:
            if not self.mach.has1(name) and not self.mach.disposed:
                raise StateNameError(name, self.mach.id)

    def _try(self) -> Result:
        if self.type is MutationType.ADD:
            return self.mach.add(self.states, self.args)
        return self.mach.remove(self.states, self.args)

    async def run(self, ctx: StateCtx | None = None) -> Result:
        """Mutate until it is not canceled; return the last result.

        Returns `CANCELED` when every try was refused, when `max_duration`
        passed, when `ctx` expired or the machine was disposed.
        """
        _check_ctx(ctx)
        res = Result.CANCELED
        if ctx is not None and ctx.expired:
            return res
        pause = self.delay
        attempt = 0
        with anyio.move_on_after(_debug(self.max_duration)), _scope(ctx):
            while not self.mach.disposed:
                res = self._try()
                if res is not Result.CANCELED or attempt == self.retries:
                    return res
                attempt += 1
                await anyio.sleep(pause)
                pause *= 2
                if self.backoff:
                    pause = min(pause, self.backoff)
                else:
                    pause = self.delay
        return Result.CANCELED


class RequestPolicy(TypedDict, total=False):
    """The retry policy keywords of `MutRequest` (defaults there)."""

    retries: int
    delay: float
    backoff: float
    max_duration: float


def req_add(
    mach: CoreMachine,
    states: Iterable[str],
    args: dict[str, Any] | None = None,
    **policy: Unpack[RequestPolicy],
) -> MutRequest:
    """A failsafe request to add `states` (see `MutRequest` for the policy)."""
    return MutRequest(
        mach=mach, type=MutationType.ADD, states=states, args=args, **policy
    )


def req_add1(
    mach: CoreMachine,
    state: str,
    args: dict[str, Any] | None = None,
    **policy: Unpack[RequestPolicy],
) -> MutRequest:
    """A failsafe request to add one state (Go: `NewReqAdd1`)."""
    return req_add(mach, [state], args, **policy)


def req_remove(
    mach: CoreMachine,
    states: Iterable[str],
    args: dict[str, Any] | None = None,
    **policy: Unpack[RequestPolicy],
) -> MutRequest:
    """A failsafe request to remove `states` (see `MutRequest`)."""
    return MutRequest(
        mach=mach, type=MutationType.REMOVE, states=states, args=args, **policy
    )


def req_remove1(
    mach: CoreMachine,
    state: str,
    args: dict[str, Any] | None = None,
    **policy: Unpack[RequestPolicy],
) -> MutRequest:
    """A failsafe request to remove one state."""
    return req_remove(mach, [state], args, **policy)


MutRequest.__module__ = "asyncmachine.helpers"
RequestPolicy.__module__ = "asyncmachine.helpers"
