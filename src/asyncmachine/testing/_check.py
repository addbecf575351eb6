"""The invariant checker: what must hold after every transition of any schema."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, final

from .._runtime import Machine
from .._tracer import Tracer
from .._transition import Transition
from .._types import Result, State

__all__ = [
    "MUTATION_KINDS",
    "InvariantChecker",
    "InvariantError",
    "MutationStep",
    "check_invariants",
    "run_mutations",
]

MUTATION_KINDS = ("add", "remove", "set", "toggle")
"""The mutation methods a `MutationStep` may name."""


class MutationStep(NamedTuple):
    """One mutation to apply: `getattr(machine, kind)(states, args)`."""

    kind: str
    """``"add"``, ``"remove"``, ``"set"`` or ``"toggle"``."""
    states: list[str]
    """The states passed (duplicates allowed, may be empty)."""
    args: dict[str, Any] | None = None
    """The mutation's args."""

    def apply(self, machine: Machine) -> Result:
        """Run this mutation on `machine` and return its result."""
        if self.kind not in MUTATION_KINDS:
            raise ValueError(f"unknown mutation kind {self.kind!r}")
        result: Result = getattr(machine, self.kind)(self.states, self.args)
        return result


@final
class InvariantError(AssertionError):
    """A machine broke an invariant; the message says which and where."""


def _exclusive_pairs(schema: Mapping[str, State]) -> list[tuple[str, str]]:
    """Pairs (a, b): a removes b and no `add` relation names a.

    The blocking pass of docs/design/semantics.md §4.2 never lets such a pair be active
    together; a state implied by `add` is not checked against its own
    `remove` list, so pairs with an implied remover are not invariants.
    """
    implied = {t for st in schema.values() for t in st.add}
    return [
        (a, b)
        for a, st in schema.items()
        if a not in implied
        for b in st.remove
        if b != a
    ]


def _state_problems(machine: Machine, pairs: Iterable[tuple[str, str]]) -> list[str]:
    problems: list[str] = []
    ticks = machine.clock()
    active = [s for s in machine.state_names if ticks[s] % 2]
    if machine.active_states != active:
        problems.append(
            f"active_states {machine.active_states} do not match the odd ticks {active}"
        )
    problems.extend(
        f"is1({s!r}) disagrees with tick {ticks[s]}"
        for s in machine.state_names
        if machine.is1(s) != (s in active)
    )
    expected = "(" + " ".join(f"{s}:{ticks[s]}" for s in active) + ")"
    if str(machine) != expected:
        problems.append(f"str(machine) is {str(machine)!r}, expected {expected!r}")
    on = set(active)
    schema = machine.schema
    for s in active:
        missing = [r for r in schema[s].require if r not in on]
        if missing:
            problems.append(f"{s} is active without its requirement(s) {missing}")
    for a, b in pairs:
        if a in on and b in on:
            problems.append(f"{a} and {b} are both active, but {a} removes {b}")
    return problems


def check_invariants(machine: Machine) -> None:
    """Raise `InvariantError` if `machine` is in an impossible state.

    Checked: `active_states`, `is1()` and `str()` agree with the ticks
    (odd = active); every active state's `require` list is active; no two
    states are active where one removes the other, unless the remover is
    named by some `add` relation (docs/design/semantics.md §4.2 does not guard those).
    A disposed machine passes.
    """
    if machine.disposed:
        return
    problems = _state_problems(machine, _exclusive_pairs(machine.schema))
    if problems:
        raise InvariantError(f"machine {machine.id}: " + "; ".join(problems))


class InvariantChecker(Tracer):
    """A tracer that checks every accepted transition of the machines it watches.

    Bind it with `machine.bind_tracer(checker)` (or `Machine(...,
    tracers=...)`). After each accepted transition (auto ones included,
    dry runs excluded) it checks `check_invariants` and the tick rules of
    docs/design/semantics.md §2.1: a tick never goes down, grows by 1 exactly when the
    state flips, and by 2 only for a called, non-auto Multi state. A tracer
    must not raise inside a transition, so problems are collected in
    `violations`; `check()` raises them.
    """

    def __init__(self) -> None:
        self.violations: list[str] = []
        """One line per problem found, in the order found."""
        self.transitions: int = 0
        """How many accepted transitions were checked."""
        self._pairs: dict[int, list[tuple[str, str]]] = {}

    def transition_end(self, transition: Transition) -> None:
        """Check one finished transition (canceled ones change nothing)."""
        if not transition.is_accepted or transition.is_check:
            return
        machine = transition.machine
        if machine.disposed:
            return
        self.transitions += 1
        pairs = self._pairs.get(id(machine))
        if pairs is None:
            pairs = self._pairs[id(machine)] = _exclusive_pairs(machine.schema)
        before = transition.clock_before
        after = machine.clock()
        called = set(transition.called_states)
        where = f"machine {machine.id}, {transition!r}"
        problems = _state_problems(machine, pairs)
        schema = machine.schema
        for s, tick in after.items():
            delta = tick - before[s]
            flipped = tick % 2 != before[s] % 2
            if delta not in (0, 1, 2) or (delta == 1) != flipped:
                problems.append(f"{s} went from tick {before[s]} to {tick}")
            elif delta == 2 and not (
                s in called and schema[s].multi and not transition.is_auto
            ):
                problems.append(
                    f"{s} ticked +2 but is not a called Multi state "
                    "of a non-auto transition"
                )
        self.violations.extend(f"{where}: {p}" for p in problems)

    def check(self) -> None:
        """Raise `InvariantError` listing every violation found so far."""
        if self.violations:
            raise InvariantError("\n".join(self.violations))


def run_mutations(
    machine: Machine | Mapping[str, State],
    steps: Sequence[MutationStep | tuple[str, Sequence[str], Any]],
) -> list[Result]:
    """Apply `steps` one by one and check the invariants after each.

    `machine` may be a schema, for which a fresh `Machine` is built. Every
    transition is watched by an `InvariantChecker`, and `check_invariants`
    runs after each step. Returns the results of the steps; raises
    `InvariantError` after the first step that broke an invariant.
    """
    mach = machine if isinstance(machine, Machine) else Machine(machine)
    checker = InvariantChecker()
    mach.bind_tracer(checker)
    results: list[Result] = []
    try:
        for raw in steps:
            step = raw if isinstance(raw, MutationStep) else MutationStep(*raw)
            results.append(step.apply(mach))
            checker.check()
            check_invariants(mach)
    finally:
        mach.detach_tracer(checker)
    return results
