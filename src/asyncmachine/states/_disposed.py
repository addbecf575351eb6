"""Disposed states: disposing of a machine in states, before `dispose()`."""

from __future__ import annotations

from typing import Final

import asyncmachine as am

from ._basic import BASIC_SCHEMA, BasicStates


class DisposedStates(BasicStates):
    """State names of disposal in states."""

    RegisterDisposal = am.state()
    """Registers a disposal handler (Multi)."""
    Disposing = am.state()
    """Disposal has started (removes `Start` and `Exception`)."""
    Disposed = am.state()
    """Resources are released; the machine can be disposed of."""


DISPOSED_SCHEMA: Final[am.Schema] = am.schema_merge(
    BASIC_SCHEMA,
    {
        DisposedStates.RegisterDisposal: am.State(multi=True),
        DisposedStates.Disposing: am.State(
            remove=[DisposedStates.Start, DisposedStates.Exception]
        ),
        DisposedStates.Disposed: am.State(
            remove=[
                DisposedStates.Start,
                DisposedStates.Exception,
                DisposedStates.Disposing,
            ]
        ),
    },
)
"""Relations of `DisposedStates`, with the basic schema."""
