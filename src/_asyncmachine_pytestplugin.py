"""pytest plugin of asyncmachine (the ``asyncmachine`` pytest11 entry point).

Fixtures:

- `am_machine`: an async factory, ``mach = await am_machine(schema, **kw)``,
  that starts a running `asyncmachine.Machine` on the test's anyio backend,
  checks its invariants on every transition (`InvariantChecker`) and
  disposes it after the test. The test must be an anyio test
  (``@pytest.mark.anyio``, or ``anyio_mode = "auto"``).
- `am_log`: a fresh `asyncmachine.testing.LogCapture`, to pass as
  ``logger=``.

This module lives outside the ``asyncmachine`` package and imports it only
when a fixture runs: pytest loads plugins before coverage starts, so an
eager import would hide the package's import-time lines from coverage (the
way hypothesis ships ``_hypothesis_pytestplugin``). It never imports
hypothesis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from asyncmachine.testing import LogCapture, MachineFactory

__all__ = ["am_log", "am_machine"]


@pytest.fixture
async def am_machine(anyio_backend: object) -> AsyncIterator[MachineFactory]:
    """Start running machines for this test; disposed and checked after it."""
    from asyncmachine.testing import machine_factory

    async with machine_factory() as start:
        yield start


@pytest.fixture
def am_log() -> LogCapture:
    """A `LogCapture` sink: ``Machine(schema, logger=am_log, log_level=...)``."""
    from asyncmachine.testing import LogCapture

    return LogCapture()
