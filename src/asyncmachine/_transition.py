"""Mutations, transitions and the events handlers receive (docs/design/semantics.md §3, §5.5)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, final

from ._resolve import change_steps, relation_steps
from ._types import Clock, MutationType, StepType

if TYPE_CHECKING:
    from ._resolve import Plan
    from ._runtime import Machine, StateCtx

__all__ = ["Event", "Mutation", "Transition"]


@final
class Mutation:
    """A requested change of states: what was asked for, with which args."""

    __slots__ = ("args", "auto", "called", "is_check", "queue_tick", "type")

    def __init__(
        self,
        type: MutationType,
        called: tuple[str, ...],
        args: dict[str, Any],
        auto: bool = False,
        is_check: bool = False,
        queue_tick: int = 0,
    ) -> None:
        self.type: MutationType = type
        """ADD, REMOVE or SET."""
        self.called: tuple[str, ...] = called
        """The called states, duplicates removed."""
        self.args: dict[str, Any] = args
        """The args dict shared by every handler of the transition."""
        self.auto: bool = auto
        """True for the machine's own Auto-state mutations."""
        self.is_check: bool = is_check
        """True for `can_add`/`can_remove` dry runs."""
        self.queue_tick: int = queue_tick
        """Queue tick of an appended mutation; 0 for prepended ones."""

    def __repr__(self) -> str:
        auto = ":auto" if self.auto else ""
        return f"<Mutation [{self.type}{auto}] {' '.join(self.called)}>"


@final
class Transition:
    """One atomic change of a machine's states, as its handlers see it."""

    __slots__ = (
        "_args",
        "_clock_after",
        "_id",
        "_mut",
        "_plan",
        "_queue_tick",
        "_target",
        "clock_before",
        "is_accepted",
        "is_completed",
        "machine",
    )

    def __init__(
        self,
        machine: Machine,
        mutation: Mutation | None,
        plan: Plan,
        args: dict[str, Any],
        queue_tick: int,
    ) -> None:
        self._id = ""
        self._plan = plan
        self._clock_after: Clock | None = None
        self.machine: Machine = machine
        """The machine this transition runs on."""
        # None for a mutation run as soon as it was made (not auto, not a
        # check): `mutation` builds it from the plan, args and queue tick
        self._mut = mutation
        self._args = args
        self._queue_tick = queue_tick
        self.clock_before: Clock = dict(machine._ticks)
        """Ticks of all states when the transition started."""
        self._target: list[str] | None = None  # target_states, made on request
        self.is_accepted: bool = plan.accepted
        """False once the transition is canceled."""
        self.is_completed: bool = False
        """True once the transition has finished."""

    @property
    def id(self) -> str:
        """A random 16-character hex id."""
        if not self._id:
            self._id = os.urandom(8).hex()
        return self._id

    @property
    def target_states(self) -> list[str]:
        """States active after the transition, if it is accepted (it shrinks
        when negotiation drops Auto states)."""
        target = self._target
        if target is None:
            target = self._target = list(self._plan.target)
        return target

    @property
    def mutation(self) -> Mutation:
        """The mutation that started this transition."""
        mut = self._mut
        if mut is None:
            plan = self._plan
            mut = Mutation(
                plan.mtype, plan.called, self._args, queue_tick=self._queue_tick
            )
            self._mut = mut
        return mut

    @property
    def called_states(self) -> list[str]:
        """The states the mutation named."""
        return list(self._plan.called)

    @property
    def states_before(self) -> list[str]:
        """Active states before the transition, in state order."""
        return list(self._plan.before)

    @property
    def exits(self) -> list[str]:
        """States this transition deactivates, in handler order."""
        return list(self._plan.exits)

    @property
    def enters(self) -> list[str]:
        """States this transition activates (or re-activates), in order."""
        return list(self._plan.enters)

    @property
    def is_check(self) -> bool:
        """True for a `can_add`/`can_remove` dry run."""
        mut = self._mut
        return mut is not None and mut.is_check

    @property
    def is_auto(self) -> bool:
        """True for the machine's own Auto-state transitions."""
        mut = self._mut
        return mut is not None and mut.auto

    @property
    def args(self) -> dict[str, Any]:
        """The mutation's args."""
        return self._args

    @property
    def clock_after(self) -> Clock:
        """Ticks after the transition: predicted during negotiation, real after."""
        if self._clock_after is not None:
            return dict(self._clock_after)
        clock = dict(self.clock_before)
        if self.is_accepted and not self.is_check:
            for name, delta in self._plan.changes:
                clock[name] += delta
        return clock

    def relation_steps(self) -> list[tuple[StepType, str, str, str]]:
        """The steps of relation resolution, as `(type, state, source, data)`.

        Computed on request and cached with the resolution plan; free for
        machines whose tracers never ask (docs/debugger.md).
        """
        return list(relation_steps(self.machine._cs, self._plan))

    def change_steps(self) -> list[tuple[StepType, str, str, str]]:
        """The REMOVE and SET steps of the (applied) plan, exits first."""
        if not self.is_accepted or self.is_check:
            return []
        return list(change_steps(self._plan))

    def __repr__(self) -> str:
        m = self.mutation
        auto = ":auto" if m.auto else ""
        return f"<Transition {self.id} [{m.type}{auto}] {' '.join(m.called)}>"


@final
class Event:
    """What a handler receives: its own name, the machine and the transition."""

    __slots__ = ("_ctx", "_state", "_tick", "_tx", "machine", "name")

    def __init__(
        self,
        name: str,
        machine: Machine,
        transition: Transition | None,
        state: str = "",
        tick: int = 0,
    ) -> None:
        self.name: str = name
        """The handler's name, e.g. `FooEnter`."""
        self.machine: Machine = machine
        """The machine that called the handler."""
        # None while the machine's running transition is not built yet
        # (docs/design/architecture.md, "Direct handler calls")
        self._tx = transition
        # final handlers of a state: the state and the tick it got
        self._state: str = state
        self._tick: int = tick
        self._ctx: StateCtx | None = None

    @property
    def transition(self) -> Transition:
        """The transition the handler runs in."""
        tx = self._tx
        if tx is None:
            tx = self._tx = self.machine._lazy_tx()
        return tx

    @property
    def ctx(self) -> StateCtx | None:
        """The state context of a final handler's state (`FooState`: Foo's
        new active tick; `FooEnd`: its new inactive tick), for sync and async
        handlers alike; None for negotiation handlers and `AnyState`.

        Read after the state's tick moved on, it is an expired context.
        """
        ctx = self._ctx
        if ctx is None and self._state:
            mach = self.machine
            if mach.tick(self._state) == self._tick and not mach.disposed:
                ctx = mach.new_state_ctx(self._state)
            else:
                ctx = mach._ctx_class(mach, self._state, self._tick, True)
            self._ctx = ctx
        return ctx

    @property
    def machine_id(self) -> str:
        """Id of the machine that called the handler."""
        return self.machine.id

    @property
    def args(self) -> dict[str, Any]:
        """The mutation's args (the same dict for every handler)."""
        tx = self._tx
        if tx is None:
            return self.machine._lazy_args()
        return tx._args

    def is_valid(self) -> bool:
        """True while the transition runs and has not been canceled."""
        t = self.transition
        return t.is_accepted and not t.is_completed

    def __repr__(self) -> str:
        return f"<Event {self.name} of {self.machine.id}>"
