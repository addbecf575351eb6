"""What the telemetry backends share: results, logged args, env flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from .._args import args_log_fields
from .._types import EXCEPTION, MutationType, Result

if TYPE_CHECKING:
    from .._runtime import Machine
    from .._transition import Transition

HEALTH_STATES: Final = frozenset({"Healthcheck", "Heartbeat"})
"""States whose transitions telemetry skips unless told otherwise."""


def tx_result(tx: Transition) -> Result:
    """What the transition's mutation returned: EXECUTED or CANCELED.

    Call it from `transition_end`. A remove whose states stay active
    (another relation keeps them) counts as canceled, as the core says.
    """
    if not tx.is_accepted:
        return Result.CANCELED
    mut = tx.mutation
    if mut.type is MutationType.REMOVE:
        mach = tx.machine
        if any(mach.is1(s) for s in mut.called):
            return Result.CANCELED
    return Result.EXECUTED


def is_health(tx: Transition) -> bool:
    """True for a transition that only adds Healthcheck or Heartbeat."""
    called = tx.mutation.called
    return len(called) == 1 and called[0] in HEALTH_STATES


def is_error(tx: Transition) -> bool:
    """True for an accepted transition that adds the Exception state."""
    mut = tx.mutation
    return (
        tx.is_accepted
        and mut.type is not MutationType.REMOVE
        and EXCEPTION in mut.called
    )


def logged_args(mach: Machine, args: Mapping[str, Any]) -> dict[str, str]:
    """The args a log line shows: the machine's log args mapper's picks plus
    the log-tagged fields of typed args (`args_log_fields`)."""
    if not args:
        return {}
    mapper = mach.log_args_mapper
    out = mapper(args) if mapper is not None else {}
    tagged = args_log_fields(args)
    if tagged:
        out.update(tagged)
    return out


def env_flag(name: str) -> bool:
    """True when the environment variable is set to anything but '', '0' or
    'false'."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")
