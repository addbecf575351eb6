"""Property test of the when-machinery against a model, on both backends.

Random programs create when-events (one-state and several-state, `when`
and `when_not`, with and without a state context), park tasks on them,
cancel parked tasks from outside, park again, mutate and dispose. A small model says, after every step, which events
must be set and how many subscriptions the machine may still hold:

- an event is set at creation when its condition holds, and later by the
  first transition after which it holds, while it has a subscription;
- a subscription is dropped when its last waiter is cancelled; waiting
  again subscribes again, or sets the event at once if the condition
  holds then (a condition that came and went meanwhile is missed,
  docs/design/semantics.md §9.1);
- identical pending waits share one event;
- a wait with a state context is also set when the context expires;
- disposal sets every event, and later waits are set at once.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncmachine as am

STATES = ["A", "B", "C"]
KINDS = ["when", "when_not"]

Op = tuple[Any, ...]


def ops() -> st.SearchStrategy[list[Op]]:
    subset = st.lists(st.sampled_from(STATES), min_size=1, max_size=2, unique=True)
    op = st.one_of(
        st.tuples(st.just("sub"), st.sampled_from(KINDS), subset, st.booleans()),
        st.tuples(
            st.just("sub_ctx"), st.sampled_from(KINDS), subset, st.sampled_from(STATES)
        ),
        st.tuples(st.just("park"), st.integers(0, 7)),
        st.tuples(st.just("cancel"), st.integers(0, 7)),
        st.tuples(st.just("mutate"), st.sampled_from(["add", "remove"]), subset),
        st.just(("dispose",)),
    )
    return st.lists(op, min_size=1, max_size=30)


class ModelEvent:
    def __init__(
        self,
        kind: str,
        states: tuple[str, ...],
        ev: am.WhenEvent,
        ctx: am.StateCtx | None = None,
    ) -> None:
        self.kind = kind
        self.states = states
        self.ev = ev
        self.ctx = ctx
        self.set = False
        self.subscribed = True
        self.waiters = 0

    def holds(self, mach: am.Machine) -> bool:
        """The condition holds, or the ctx expired (which also sets it), or
        the machine is disposed (which sets every event)."""
        if mach.disposed:
            return True
        if self.ctx is not None and mach.tick(self.ctx.state) != self.ctx.tick:
            return True
        active = set(mach.active_states)
        if self.kind == "when":
            return all(s in active for s in self.states)
        return not any(s in active for s in self.states)


async def _settle() -> None:
    # let woken and cancelled tasks run to their next await
    for _ in range(4):
        await anyio.lowlevel.checkpoint()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(program=ops())
async def test_when_events_follow_the_model(
    anyio_backend: Any, program: list[Op]
) -> None:
    mach = am.Machine({s: am.State() for s in STATES})
    events: list[ModelEvent] = []
    # parked tasks: (event index, cancel scope, finished flag)
    parked: list[tuple[int, anyio.CancelScope, list[bool]]] = []

    async def park(i: int, scope: anyio.CancelScope, done: list[bool]) -> None:
        with scope:
            await events[i].ev
            done.append(True)
        events[i].waiters -= 1
        if not done and events[i].waiters == 0 and not events[i].set:
            # the last waiter left: the machine dropped the subscription
            events[i].subscribed = False

    with anyio.fail_after(10):
        async with mach, anyio.create_task_group() as tg:
            for op in program:
                if op[0] in ("sub", "sub_ctx"):
                    _, kind, states, extra = op
                    ctx = None
                    if op[0] == "sub_ctx":
                        # contexts of one state and tick are one object, so
                        # identical waits with them share the event too
                        ctx = mach.new_state_ctx(extra)
                        names = tuple(states)
                        wait = mach.when if kind == "when" else mach.when_not
                        ev = wait(names, ctx)
                    elif extra:  # the one-state methods
                        names = (states[0],)
                        one = mach.when1 if kind == "when" else mach.when_not1
                        ev = one(names[0])
                    else:
                        names = tuple(states)
                        wait = mach.when if kind == "when" else mach.when_not
                        ev = wait(names)
                    same = [
                        m for m in events if m.ev is ev and not m.set and m.subscribed
                    ]
                    model = ModelEvent(kind, names, ev, ctx)
                    if model.holds(mach):
                        model.set, model.subscribed = True, False
                    if same:
                        # identical pending waits share the event
                        assert not model.set
                        model = same[0]
                    events.append(model)
                elif op[0] == "park" and events:
                    i = op[1] % len(events)
                    model = events[i]
                    if not model.set and not model.subscribed:
                        # waiting again: set at once if it holds now
                        if model.holds(mach):
                            model.set = True
                        else:
                            model.subscribed = True
                    scope = anyio.CancelScope()
                    done: list[bool] = []
                    model.waiters += 1
                    parked.append((i, scope, done))
                    tg.start_soon(park, i, scope, done)
                elif op[0] == "cancel" and parked:
                    _, scope, _ = parked[op[1] % len(parked)]
                    scope.cancel()
                elif op[0] == "dispose":
                    mach.dispose()
                    for model in events:
                        model.set, model.subscribed = True, False
                elif op[0] == "mutate":
                    _, how, states = op
                    getattr(mach, how)(states)
                    for model in events:
                        if model.subscribed and not model.set and model.holds(mach):
                            model.set, model.subscribed = True, False
                await _settle()
                # the model and the machine agree
                for model in events:
                    assert model.ev.is_set() == model.set, (op, model.states)
                pending = {id(m.ev) for m in events if m.subscribed and not m.set}
                assert mach.pending_waits == len(pending), op
                for i, _, done in parked:
                    if done:
                        assert events[i].set
            # everything left over ends with the machine
            for _, scope, _ in parked:
                scope.cancel()
        assert mach.disposed
        assert mach.pending_waits == 0
