"""Basic states: start, readiness, health and the common error states."""

from __future__ import annotations

from typing import Final

import asyncmachine as am


class BasicStates(am.StatesBase):
    """State names of the basic schema, the base of most machines."""

    ErrNetwork: str = am.state()
    """A generic network error (adds `Exception`)."""
    ErrHandlerTimeout: str = am.state()
    """A handler of the machine has timed out (adds `Exception`)."""
    Start: str = am.state()
    """The machine should be working; removing it can force-stop it."""
    Ready: str = am.state()
    """The machine meets the criteria to perform work (requires `Start`)."""
    Healthcheck: str = am.state()
    """A periodic request making sure the machine is still alive."""
    Heartbeat: str = am.state()
    """A periodic state ensuring the integrity of the machine."""


BASIC_SCHEMA: Final[am.Schema] = {
    # errors: Multi, and only alongside Exception
    BasicStates.ErrNetwork: am.State(
        multi=True, add=[BasicStates.Exception], require=[BasicStates.Exception]
    ),
    BasicStates.ErrHandlerTimeout: am.State(
        multi=True, add=[BasicStates.Exception], require=[BasicStates.Exception]
    ),
    # basics
    BasicStates.Start: am.State(),
    BasicStates.Ready: am.State(require=[BasicStates.Start]),
    BasicStates.Healthcheck: am.State(multi=True),
    BasicStates.Heartbeat: am.State(),
}
"""Relations of `BasicStates` (`Exception` is the one every machine adds)."""
