"""Running machines for the length of a test (used by the pytest plugin)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import anyio
import anyio.abc

from .._runtime import Machine
from .._types import State
from ._check import InvariantChecker

__all__ = ["MachineFactory", "machine_factory"]


class MachineFactory(Protocol):
    """Starts a `Machine` that runs (`async with`) until the factory closes."""

    async def __call__(
        self, schema: Mapping[str, State], *, invariants: bool = True, **kwargs: Any
    ) -> Machine:
        """Build `Machine(schema, **kwargs)` and start it.

        With `invariants` an `InvariantChecker` watches it, and the factory
        raises its violations when it closes.
        """


async def _run(
    machine: Machine,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    async with machine:
        task_status.started()
        await machine.when_disposed().wait()


@contextlib.asynccontextmanager
async def machine_factory() -> AsyncIterator[MachineFactory]:
    """Yield a `MachineFactory`; on exit dispose its machines and check them.

    Each machine runs in its own task (inside `async with machine:`) of a
    task group owned by this context, so machines may be started from any
    task of the same event loop. Leaving the context disposes every machine
    still running, waits for them to stop, then raises `InvariantError` if
    an `InvariantChecker` found a problem.
    """
    machines: list[Machine] = []
    checkers: list[InvariantChecker] = []
    async with anyio.create_task_group() as tg:

        async def start(
            schema: Mapping[str, State], *, invariants: bool = True, **kwargs: Any
        ) -> Machine:
            machine = Machine(schema, **kwargs)
            if invariants:
                checker = InvariantChecker()
                machine.bind_tracer(checker)
                checkers.append(checker)
            machines.append(machine)
            await tg.start(_run, machine)
            return machine

        try:
            yield start
        finally:
            for machine in machines:
                machine.dispose()
    for checker in checkers:
        checker.check()
