"""The Tracer protocol: how telemetry, history and debuggers watch a machine."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._runtime import Machine
    from ._transition import Mutation, Transition

__all__ = ["Tracer"]


class Tracer:
    """Base class for machine observers; every hook is a no-op to override.

    Hooks run synchronously inside the machine's transitions and must not
    block or raise. A tracer sees the machine only through these calls.
    """

    _record: Callable[..., Any] | None = None
    """Internal (`asyncmachine.debugger`): a tracer that sets it is called
    `_record(machine, plan, final_plan, args, mutation_or_None, accepted,
    start_time)` at the end of a transition that builds no `Transition`,
    instead of its transition hooks (which it overrides for the others), so
    binding it alone builds none; a lone recorder may also set the
    machine's fast path (docs/design/architecture.md, "Recorders")."""

    def inheritable(self) -> bool:
        """Whether machines created with this machine as parent copy it."""
        return False

    def machine_init(self, machine: Machine) -> None:
        """The tracer was bound to `machine` (at construction or later)."""

    def new_submachine(self, parent: Machine, machine: Machine) -> None:
        """`machine` was created with `parent` as its parent."""

    def transition_init(self, transition: Transition) -> None:
        """A transition was built and its relations resolved."""

    def transition_start(self, transition: Transition) -> None:
        """An accepted transition starts its negotiation."""

    def transition_end(self, transition: Transition) -> None:
        """A transition finished, accepted or not."""

    def handler_start(
        self, transition: Transition, binding_id: str, handler: str
    ) -> None:
        """A handler is about to be called."""

    def handler_end(
        self, transition: Transition, binding_id: str, handler: str
    ) -> None:
        """A handler returned (or raised)."""

    def mutation_queued(self, machine: Machine, mutation: Mutation) -> None:
        """A mutation was appended to the machine's queue."""

    def queue_end(self, machine: Machine) -> None:
        """The machine finished processing its queue."""

    def machine_dispose(self, machine_id: str) -> None:
        """The machine was disposed."""
