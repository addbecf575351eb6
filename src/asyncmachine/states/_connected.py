"""Connected states: a connection's status, and a pool of connections."""

from __future__ import annotations

from typing import Any, Final, final

import asyncmachine as am

from ._basic import BASIC_SCHEMA, BasicStates


class ConnectedStates(BasicStates):
    """State names of a connection: four mutually exclusive states."""

    ErrConnecting: str = am.state()
    """A detailed connection error, e.g. no access (requires `Exception`)."""
    Connecting: str = am.state()
    Connected: str = am.state()
    Disconnecting: str = am.state()
    Disconnected: str = am.state()


class ConnectedGroups:
    """Groups of mutually exclusive states of `ConnectedStates`."""

    Connected: Final = (
        ConnectedStates.Connecting,
        ConnectedStates.Connected,
        ConnectedStates.Disconnecting,
        ConnectedStates.Disconnected,
    )


CONNECTED_SCHEMA: Final[am.Schema] = am.schema_merge(
    BASIC_SCHEMA,
    {
        ConnectedStates.ErrConnecting: am.State(require=[ConnectedStates.Exception]),
        ConnectedStates.Connecting: am.State(
            require=[ConnectedStates.Start], remove=ConnectedGroups.Connected
        ),
        ConnectedStates.Connected: am.State(
            require=[ConnectedStates.Start], remove=ConnectedGroups.Connected
        ),
        ConnectedStates.Disconnecting: am.State(remove=ConnectedGroups.Connected),
        ConnectedStates.Disconnected: am.State(
            auto=True, remove=ConnectedGroups.Connected
        ),
    },
)
"""Relations of `ConnectedStates`, with the basic schema."""


@final
class ConnectingError(Exception):
    """A connection error, raised from its cause; see `add_err_connecting`."""


def add_err_connecting(
    mach: am.Machine, exc: BaseException, args: dict[str, Any] | None = None
) -> am.Result:
    """Wrap `exc` in `ConnectingError` and add it as `ErrConnecting`.

    `mach.err` becomes the `ConnectingError` (`error connecting: ...`), with
    `exc` as its `__cause__`.
    """
    err = ConnectingError(f"error connecting: {exc}")
    err.__cause__ = exc
    return mach.add_err_state(ConnectedStates.ErrConnecting, err, args)


class ConnPoolStates(BasicStates):
    """State names of a pool of connections to several hosts."""

    ErrConnecting: str = am.state()
    """A detailed connection error, e.g. no access (requires `Exception`)."""
    Connecting: str = am.state()
    Connected: str = am.state()
    """At least one connection is up."""
    ConnectedFully: str = am.state()
    """Every connection is up (requires `Connected`)."""
    Disconnecting: str = am.state()
    Disconnected: str = am.state()


class ConnPoolGroups:
    """Groups of mutually exclusive states of `ConnPoolStates`."""

    Connected: Final = (ConnPoolStates.Connected, ConnPoolStates.Disconnected)


CONN_POOL_SCHEMA: Final[am.Schema] = am.schema_merge(
    BASIC_SCHEMA,
    {
        ConnPoolStates.ErrConnecting: am.State(require=[ConnPoolStates.Exception]),
        ConnPoolStates.Connecting: am.State(
            require=[ConnPoolStates.Start], remove=[ConnPoolStates.Disconnecting]
        ),
        ConnPoolStates.Connected: am.State(
            require=[ConnPoolStates.Start], remove=[ConnPoolStates.Disconnected]
        ),
        ConnPoolStates.ConnectedFully: am.State(
            require=[ConnPoolStates.Connected], remove=[ConnPoolStates.Disconnected]
        ),
        ConnPoolStates.Disconnecting: am.State(
            remove=[
                ConnPoolStates.ConnectedFully,
                ConnPoolStates.Connected,
                ConnPoolStates.Connecting,
            ]
        ),
        ConnPoolStates.Disconnected: am.State(
            remove=[
                ConnPoolStates.Connecting,
                ConnPoolStates.ConnectedFully,
                ConnPoolStates.Disconnecting,
            ]
        ),
    },
)
"""Relations of `ConnPoolStates`, with the basic schema."""
