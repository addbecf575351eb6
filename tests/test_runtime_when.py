"""When-methods of the anyio runtime (docs/design/semantics.md §9,
the manual's "Waiting").

Covers every row of the §9.2 table, the §9 examples, the common rules of
§9.1 (identical subscriptions, unknown names, ctx expiry, disposal), the
Go tests `TestWhen*`, `TestChanReuse`, `TestNilCtx`, `TestWhenQueue*` and
`TestWhenQuery`, and waiters cancelled from outside (they must leave no
subscription behind; waiting again subscribes again).

Subscriptions left behind are counted with `mach.pending_waits`.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

import asyncmachine as am
from deadline import bound_async_tests

ABCD = ["A", "B", "C", "D"]

#: a safety net against hangs; nothing here should take more than microseconds
TIMEOUT = 2


def no_rels(initial: list[str] | None = None, **kw: Any) -> am.Machine:
    """Go's `NewNoRels`: four independent states."""
    m = am.Machine({s: am.State() for s in ABCD}, **kw)
    if initial:
        m.set(initial)
    return m


def rels(initial: list[str] | None = None) -> am.Machine:
    """Go's `NewRels`: basic relations between A B C D."""
    m = am.Machine(
        {
            "A": am.State(auto=True, require=["C"]),
            "B": am.State(multi=True, add=["C"]),
            "C": am.State(after=["D"]),
            "D": am.State(add=["C", "B"]),
        }
    )
    if initial:
        m.set(initial)
    return m


def sub_count(m: am.Machine) -> int:
    """How many subscriptions the machine still holds, of every kind."""
    return m.pending_waits


def assert_no_subs(m: am.Machine) -> None:
    assert m.pending_waits == 0


def assert_states(m: am.Machine, states: list[str]) -> None:
    assert m.active_states == states, str(m)


# ---------------------------------------------------------------------------
# §9.2, row by row


def test_when_already_set_and_set_later() -> None:
    m = no_rels(["A"])
    assert m.when(["A"]).is_set()
    assert m.when1("A").is_set()
    w = m.when(["A", "B"])
    w1 = m.when1("B")
    assert not w.is_set()
    assert not w1.is_set()
    m.add1("C")
    assert not w.is_set()
    m.add1("B")
    assert w.is_set()
    assert w1.is_set()
    assert_no_subs(m)


def test_when_example_partial_activations_do_not_set() -> None:
    """§9.2 example: `when(["A","B"])` needs both active at once."""
    m = no_rels()
    w = m.when(["A", "B"])
    m.add1("A")
    assert not w.is_set()
    m.remove1("A")
    m.add1("B")
    assert not w.is_set()
    m.add1("A")
    assert w.is_set()


def test_when_not_already_set_and_set_later() -> None:
    m = no_rels(["A", "B"])
    assert m.when_not(["C", "D"]).is_set()
    assert m.when_not1("C").is_set()
    w = m.when_not(["A", "B"])
    w1 = m.when_not1("A")
    assert not w.is_set()
    m.remove1("A")
    assert w1.is_set()
    assert not w.is_set()
    m.add1("A")
    m.remove1("B")
    assert not w.is_set()
    m.remove1("A")
    assert w.is_set()
    assert_no_subs(m)


def test_when_err_is_when_exception() -> None:
    m = no_rels()
    w = m.when_err()
    assert not w.is_set()
    assert w is m.when1(am.EXCEPTION)  # the same subscription (§9.1.1)
    m.add_err(ValueError("boom"))
    assert w.is_set()
    assert m.when_err().is_set()  # already active now


def test_when_err_with_ctx() -> None:
    m = no_rels(["A"])
    ctx = m.new_state_ctx("A")
    w = m.when_err(ctx)
    assert w is m.when([am.EXCEPTION], ctx)
    assert w is not m.when_err()
    m.remove1("A")
    assert w.is_set()  # woken by the expiry, not by an error
    assert not m.is_err()


def test_when_time_at_creation_and_later() -> None:
    m = no_rels(["A", "B"])  # A:1 B:1
    assert m.when_time(["A", "B"], [1, 1]).is_set()
    assert m.when_time(["A", "B"], [0, 1]).is_set()
    assert m.when_time1("A", 1).is_set()
    w = m.when_time(["A", "B"], [3, 1])
    w1 = m.when_time1("B", 2)
    assert not w.is_set()
    m.remove1("B")
    assert w1.is_set()
    assert not w.is_set()
    m.remove1("A")  # A:2
    assert not w.is_set()
    m.add1("A")  # A:3
    assert w.is_set()


def test_when_time_is_greater_or_equal() -> None:
    """A Multi state jumps by 2: a tick in between still counts as reached."""
    m = am.Machine({"M": am.State(multi=True)})
    m.add1("M")  # M:1
    w = m.when_time1("M", 2)
    m.add1("M")  # M:3, never 2
    assert m.tick("M") == 3
    assert w.is_set()


def test_when_time_example() -> None:
    """§9.2 example: (A:1 B:1) `when_time(["A","B"], [5, 2])`."""
    m = no_rels(["A", "B"])
    w = m.when_time(["A", "B"], [5, 2])
    m.remove(["A", "B"])
    m.add(["A", "B"])
    assert m.time(["A", "B"]) == (3, 3)
    assert not w.is_set()
    m.remove1("A")
    m.add1("A")
    assert m.time(["A", "B"]) == (5, 3)
    assert w.is_set()


def test_when_time_pairs_states_with_times_in_order() -> None:
    """`when_time(["B","A"], [5, 2])` waits for B:5 and A:2, not A:5 and B:2."""
    m = no_rels(["A", "B"])  # A:1 B:1
    w_ab = m.when_time(["A", "B"], [5, 2])
    w_ba = m.when_time(["B", "A"], [5, 2])
    for _ in range(2):
        m.remove1("A")
        m.add1("A")
    m.remove1("B")
    assert m.time(["A", "B"]) == (5, 2)
    assert w_ab.is_set()
    assert not w_ba.is_set(), "B is at 2, not 5"


def test_when_time_length_mismatch_raises() -> None:
    m = no_rels(["A", "B"])
    with pytest.raises(ValueError, match=r"2\b.*\b1\b"):
        m.when_time(["A", "B"], [1])
    with pytest.raises(ValueError, match=r"1\b.*\b2\b"):
        m.when_time(["A"], [1, 2])
    with pytest.raises(ValueError):
        m.when_time([], [])
    assert not m.is_err()
    assert_no_subs(m)


def test_when_ticks() -> None:
    m = no_rels(["A"])  # A:1
    w = m.when_ticks("A", 2)
    assert w is m.when_time1("A", 3)
    assert not w.is_set()
    m.remove1("A")
    assert not w.is_set()
    m.add1("A")
    assert w.is_set()
    assert m.when_ticks("A", 0).is_set()


def test_when_args_example() -> None:
    """§9.2 example and Go's TestWhenArgs (NewRels: B is Multi)."""
    m = rels()
    w = m.when_args("B", {"foo": "bar"})
    m.add1("B", {"foo": "foo"})
    assert not w.is_set()
    m.add1("B", {"foo": "bar"})
    assert w.is_set()


def test_when_args_never_set_at_creation() -> None:
    m = rels()
    m.add1("B", {"foo": "bar"})
    assert m.is1("B")
    w = m.when_args("B", {"foo": "bar"})
    assert not w.is_set(), "args belong to a transition, not to the state"
    w_any = m.when_args("B", {})
    assert not w_any.is_set()
    m.add1("C")  # a transition without B in it
    assert not w.is_set()
    assert not w_any.is_set()
    m.add1("B", {"foo": "bar", "extra": 1})  # superset of keys: matches
    assert w.is_set()
    assert w_any.is_set()


def test_when_args_empty_matches_any_activation() -> None:
    m = no_rels()
    w = m.when_args("A", {})
    m.add1("B", {"x": 1})
    assert not w.is_set()
    m.add1("A")
    assert w.is_set()


def test_when_args_needs_the_state_in_enters() -> None:
    """An add of an already active non-Multi state does not emit `AState`."""
    m = no_rels(["A"])
    w = m.when_args("A", {"k": 1})
    m.add1("A", {"k": 1})  # no tick change: A not entered
    assert not w.is_set()
    m.add(["A", "B"], {"k": 2})
    assert not w.is_set()  # B entered, A did not; and the value differs
    m.remove1("A")
    m.add(["A"], {"k": 2})
    assert not w.is_set()  # entered, value differs
    m.remove1("A")
    m.add(["A", "C"], {"k": 1})
    assert w.is_set()


def test_when_args_implied_state_matches_the_transition_args() -> None:
    """Args belong to the transition: an implied state's activation counts."""
    m = rels()
    w = m.when_args("C", {"id": "x"})
    m.add1("B", {"id": "x"})  # B adds C
    assert m.is1("C")
    assert w.is_set()


def test_when_query_not_evaluated_at_creation() -> None:
    m = no_rels(["A"])
    calls: list[am.Clock] = []

    def query(clock: am.Clock) -> bool:
        calls.append(clock)
        return True

    q = m.when_query(query)
    assert calls == []
    assert not q.is_set()
    m.add1("B")
    assert q.is_set()
    assert calls == [m.clock()]


def test_when_query_example() -> None:
    """§9.2 example and Go's TestWhenQuery."""
    m = no_rels(["A"])
    q1 = m.when_query(lambda c: c["A"] > c["B"] * 4)
    q2 = m.when_query(lambda c: c["A"] < c["B"])
    assert not q1.is_set()  # true already, but not evaluated at creation
    m.add1("B")  # 1, 1
    m.remove1("A")  # 2, 1
    m.add1("A")  # 3, 1
    m.remove1("A")  # 4, 1
    assert not q1.is_set()
    assert not q2.is_set()
    m.add1("A")  # 5, 1
    assert q1.is_set()
    assert not q2.is_set()


def test_when_query_fires_after_no_change_transition() -> None:
    m = no_rels(["A"])
    q = m.when_query(lambda c: True)
    assert m.add1("A") == am.Result.EXECUTED  # accepted, no tick changed
    assert q.is_set()


def test_when_query_not_after_canceled_or_dry_run() -> None:
    m = am.Machine({"A": am.State(), "B": am.State(require=["C"]), "C": am.State()})
    q = m.when_query(lambda c: True)
    assert m.add1("B") == am.Result.CANCELED
    assert not q.is_set()
    assert m.can_add(["A"]) == am.Result.EXECUTED
    assert not q.is_set()
    m.add1("A")
    assert q.is_set()


def test_when_queue_at_creation_and_later() -> None:
    """Go's TestWhenQueue, without the goroutines."""
    m = no_rels()
    assert m.when_queue(m.queue_tick).is_set()
    seen: dict[str, Any] = {}

    class H:
        def AState(self, e: am.Event) -> None:
            mach = e.machine
            mach.add1("B")
            mach.add1("C")
            assert mach.add1("D") == am.Result.QUEUED
            seen["tick"] = t = mach.queue_tick
            seen["ev"] = ev = mach.when_queue(t)
            seen["set_in_handler"] = ev.is_set()

    m.bind_handlers(H())
    m.add1("A")
    assert seen["set_in_handler"] is False
    assert seen["ev"].is_set()
    assert m.queue_tick_processed >= seen["tick"]
    assert_states(m, ["A", "B", "C", "D"])


def test_when_queue_set_after_a_canceled_mutation() -> None:
    """when_queue counts processed mutations, accepted or not (§9.2)."""
    m = am.Machine({"A": am.State(), "B": am.State(require=["C"]), "C": am.State()})
    seen: dict[str, Any] = {}

    class H:
        def AState(self, e: am.Event) -> None:
            assert e.machine.add1("B") == am.Result.QUEUED  # will be rejected
            seen["ev"] = e.machine.when_queue(e.machine.queue_tick)

    m.bind_handlers(H())
    m.add1("A")
    assert not m.is1("B")
    assert seen["ev"].is_set()


def test_when_queue_far_tick_stays_pending() -> None:
    m = no_rels()
    w = m.when_queue(m.queue_tick + 3)
    m.add1("A")
    m.add1("B")
    assert not w.is_set()
    m.add1("C")
    assert w.is_set()


def test_when_queue_ends() -> None:
    """Go's TestWhenQueueEnds: created during processing, set when it ends."""
    m = no_rels()
    assert m.when_queue_ends().is_set()
    seen: dict[str, Any] = {}

    class H:
        def AState(self, e: am.Event) -> None:
            mach = e.machine
            seen["tx"] = mach.transition
            seen["ev"] = mach.when_queue_ends()
            seen["set_in_handler"] = seen["ev"].is_set()
            mach.add1("B")

        def BState(self, e: am.Event) -> None:
            seen["set_in_b"] = seen["ev"].is_set()

    m.bind_handlers(H())
    m.add1("A")
    assert seen["tx"] is not None, "the machine was inside a transition"
    assert seen["set_in_handler"] is False
    assert seen["set_in_b"] is False, "the loop was still running"
    assert seen["ev"].is_set()
    m.remove1("A")
    assert_states(m, ["B"])


def test_when_disposed() -> None:
    m = no_rels()
    w = m.when_disposed()
    assert not w.is_set()
    m.dispose()
    assert w.is_set()
    assert m.when_disposed().is_set()


# ---------------------------------------------------------------------------
# §9.1 common rules


def test_when_is_a_report_not_a_state() -> None:
    """§9.1.4: set although a queued mutation deactivated A right after."""
    m = no_rels()

    class H:
        def BState(self, e: am.Event) -> None:
            e.machine.add1("A")
            e.machine.remove1("A")

    m.bind_handlers(H())
    w = m.when1("A")
    m.add1("B")
    assert not m.is1("A")
    assert w.is_set()


def test_identical_subscriptions_share_the_event() -> None:
    """Go's TestChanReuse and §9.1.1."""
    m = no_rels(["A", "B"])
    assert m.when_time(["A", "B"], [5, 2]) is m.when_time(["A", "B"], [5, 2])
    assert m.when_args("B", {"foo": "bar"}) is m.when_args("B", {"foo": "bar"})
    assert m.when1("C") is m.when1("C")
    assert m.when_not1("A") is m.when_not1("A")
    # the same state set in another order is the same subscription
    assert m.when(["C", "D"]) is m.when(["D", "C"])
    assert m.when_not(["A", "B"]) is m.when_not(["B", "A"])
    # one state: the *1 method and the list form are one subscription
    assert m.when1("D") is m.when(["D"])
    assert m.when(["D"]) is m.when1("D")
    assert m.when_not1("B") is m.when_not(["B"])


def test_different_subscriptions_get_different_events() -> None:
    m = no_rels(["A", "B"])
    ctx = m.new_state_ctx("A")
    assert m.when1("C") is not m.when1("D")
    assert m.when1("C") is not m.when(["C", "D"])
    assert m.when1("C") is not m.when_not1("A")
    assert m.when1("C") is not m.when1("C", ctx)
    assert m.when1("C", ctx) is m.when1("C", ctx)
    assert m.when_args("B", {"foo": "bar"}) is not m.when_args("B", {"foo": "baz"})
    assert m.when_args("B", {"foo": "bar"}) is not m.when_args("C", {"foo": "bar"})
    assert m.when_time1("A", 5) is not m.when_time1("A", 7)


def test_identical_when_args_with_unhashable_values_share_the_event() -> None:
    """§9.1.1 MUST for when_args: identical = equal args, hashable or not."""
    m = no_rels()
    assert m.when_args("B", {"ids": [1, 2]}) is m.when_args("B", {"ids": [1, 2]})


def test_set_subscription_is_not_reused() -> None:
    """A fired subscription is gone: the next identical call is a new one."""
    m = no_rels()
    w = m.when1("A")
    m.add1("A")
    m.remove1("A")
    w2 = m.when1("A")
    assert w.is_set()
    assert w2 is not w
    assert not w2.is_set()


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.when(["A", "Nope"]),
        lambda m: m.when1("Nope"),
        lambda m: m.when_not(["Nope"]),
        lambda m: m.when_not1("Nope"),
        lambda m: m.when_time(["A", "Nope"], [1, 1]),
        lambda m: m.when_time1("Nope", 1),
        lambda m: m.when_ticks("Nope", 1),
        lambda m: m.when_args("Nope", {}),
    ],
    ids=[
        "when",
        "when1",
        "when_not",
        "when_not1",
        "when_time",
        "when_time1",
        "when_ticks",
        "when_args",
    ],
)
def test_unknown_names_raise(call: Any) -> None:
    m = no_rels(["A"])
    with pytest.raises(am.StateNameError):
        call(m)
    assert_no_subs(m)


def test_unknown_name_raises_even_when_the_rest_holds() -> None:
    """A typo never reads as 'inactive' — nor as 'already satisfied'."""
    m = no_rels(["A"])
    with pytest.raises(am.StateNameError):
        m.when_not(["Nope"])  # would be "already set" if read as inactive


def test_disposed_machine_returns_set_events() -> None:
    m = no_rels()
    m.dispose()
    events = [
        m.when(["A"]),
        m.when1("A"),
        m.when_not1("A"),
        m.when_err(),
        m.when_time1("A", 9),
        m.when_ticks("A", 9),
        m.when_args("A", {"x": 1}),
        m.when_query(lambda c: False),
        m.when_queue(99),
        m.when_queue_ends(),
        m.when_disposed(),
    ]
    assert all(ev.is_set() for ev in events)


def test_disposal_sets_every_pending_event() -> None:
    """§9.1.6 / §10.1.5: including when_query and when_queue_ends."""
    m = no_rels(["A"])
    ctx = m.new_state_ctx("A")
    pending = [
        m.when1("B"),
        m.when(["B", "C"]),
        m.when_not1("A"),
        m.when_err(),
        m.when_time1("A", 9),
        m.when_ticks("B", 4),
        m.when_args("B", {"x": 1}),
        m.when_query(lambda c: False),
        m.when_queue(m.queue_tick + 5),
        m.when_disposed(),
        m.when1("C", ctx),
    ]
    holder: dict[str, am.WhenEvent] = {}

    class H:
        def DState(self, e: am.Event) -> None:
            holder["ends"] = e.machine.when_queue_ends()
            e.machine.dispose()

    m.bind_handlers(H())
    assert not any(ev.is_set() for ev in pending)
    m.add1("D")  # disposes from the handler
    assert m.disposed
    pending.append(holder["ends"])
    assert all(ev.is_set() for ev in pending), [ev.is_set() for ev in pending]
    assert ctx.expired
    assert_no_subs(m)


# ---------------------------------------------------------------------------
# ctx (§9.1.5)


def test_ctx_expired_at_creation_returns_a_set_event() -> None:
    m = no_rels(["A"])
    ctx = m.new_state_ctx("A")
    m.remove1("A")
    assert ctx.expired
    assert m.when1("B", ctx).is_set()
    assert m.when_args("B", {}, ctx).is_set()
    assert m.when_query(lambda c: False, ctx).is_set()
    assert_no_subs(m)


def test_ctx_expiry_sets_and_drops_every_kind() -> None:
    """Go's TestWhenCtx, with a state context in place of a Go context."""
    m = am.Machine(
        {"A": am.State(), "B": am.State(), "C": am.State(), "D": am.State(multi=True)}
    )
    m.set(["A", "B"])
    ctx = m.new_state_ctx("D")  # D inactive: not expired until D activates
    assert not ctx.expired
    events = [
        m.when_time(["A", "B"], [3, 3], ctx),
        m.when_ticks("A", 2, ctx),
        m.when_time1("B", 3, ctx),
        m.when_args("B", {"foo": "bar"}, ctx),
        m.when1("C", ctx),
        m.when_not1("A", ctx),
        m.when_query(lambda c: False, ctx),
    ]
    assert m.pending_waits == len(events)
    assert not any(ev.is_set() for ev in events)

    m.add1("D")  # expires ctx
    assert ctx.expired
    assert all(ev.is_set() for ev in events)
    assert_no_subs(m)
    assert not ctx._callbacks, "the context keeps no callbacks of the subscriptions"
    # nothing became true: the events were set by the expiry
    assert m.not1("C")
    assert m.tick("A") == 1

    # validation (Go adds an error; we raise, §9.2)
    with pytest.raises(ValueError):
        m.when_time(["A", "B"], [1])
    assert not m.is_err()
    # already passed
    assert m.when_time(["A"], [1]).is_set()


def test_ctx_subscription_fires_normally_before_expiry() -> None:
    m = no_rels(["A"])
    ctx = m.new_state_ctx("A")
    w = m.when1("B", ctx)
    m.add1("B")
    assert w.is_set()
    assert not ctx.expired
    assert_no_subs(m)
    assert not ctx._callbacks, "a fired subscription unhooks itself from ctx"


async def test_ctx_expiry_wakes_the_waiter() -> None:
    m = no_rels(["A"])
    async with m:
        ctx = m.new_state_ctx("A")
        woke = anyio.Event()
        started = anyio.Event()
        seen: dict[str, bool] = {}

        async def waiter() -> None:
            ev = m.when1("C", ctx)
            started.set()
            await ev
            seen["expired"] = ctx.expired
            seen["C"] = m.is1("C")
            woke.set()

        m.fork(None, waiter)
        await started.wait()
        assert not woke.is_set()
        assert sub_count(m) == 1
        m.remove1("A")
        with anyio.fail_after(TIMEOUT):
            await woke.wait()
        assert seen == {"expired": True, "C": False}
        assert_no_subs(m)


# ---------------------------------------------------------------------------
# awaiting (Go ports)


async def test_when_go() -> None:
    """Go: TestWhen — an async AState adds B, then C; wait for both."""

    class H:
        async def AState(self, e: am.Event) -> None:
            await anyio.lowlevel.checkpoint()
            e.machine.add1("B")
            await anyio.lowlevel.checkpoint()
            e.machine.add1("C")

    async with no_rels(handlers=H()) as m:
        m.set(["A"])
        with anyio.fail_after(TIMEOUT):
            await m.when(["B", "C"])
        assert_states(m, ["A", "B", "C"])
        assert not m.is_err()


async def test_when2_go() -> None:
    """Go: TestWhen2 — two tasks wait on the same condition."""
    m = no_rels()
    passed: list[int] = []
    async with m:
        ready = [anyio.Event(), anyio.Event()]

        async def waiter(i: int) -> None:
            ev = m.when(["A", "B"])
            ready[i].set()
            await ev
            passed.append(i)

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, 0)
            tg.start_soon(waiter, 1)
            await ready[0].wait()
            await ready[1].wait()
            assert sub_count(m) == 1, "both waiters share one subscription"
            assert passed == []
            m.add(["A", "B"])
        assert sorted(passed) == [0, 1]
        assert_no_subs(m)


async def test_when_active_go() -> None:
    """Go: TestWhenActive — waiting on an active state returns at once."""
    async with no_rels(["A"]) as m:
        with anyio.fail_after(TIMEOUT):
            await m.when(["A"])
            await m.when1("A").wait()
        assert_states(m, ["A"])
        assert_no_subs(m)


def test_when_dups_go() -> None:
    """Go: TestWhenDups — overlapping subscriptions on the same state."""
    m = no_rels()
    w_a = m.when(["A"])
    w_ab = m.when(["A", "B"])
    w_ac = m.when(["A", "C"])
    m.set(["A"])
    assert w_a.is_set()
    assert not w_ab.is_set()
    assert not w_ac.is_set()
    assert sub_count(m) == 2
    m.add1("C")
    assert w_ac.is_set()
    assert not w_ab.is_set()
    m.dispose()
    assert w_ab.is_set()


async def test_when_not_go() -> None:
    """Go: TestWhenNot — an async AState removes B, then C."""

    class H:
        async def AState(self, e: am.Event) -> None:
            await anyio.lowlevel.checkpoint()
            e.machine.remove1("B")
            await anyio.lowlevel.checkpoint()
            e.machine.remove1("C")

    async with no_rels(["B", "C"], handlers=H()) as m:
        m.add(["A"])
        with anyio.fail_after(TIMEOUT):
            await m.when_not(["B", "C"])
            await m.when_not1("B")
        assert_states(m, ["A"])
        assert not m.is_err()


async def test_when_not2_go() -> None:
    """Go: TestWhenNot2 — two tasks wait for A and B to be inactive."""
    m = no_rels(["A", "B"])
    passed: list[int] = []
    async with m:
        ready = [anyio.Event(), anyio.Event()]

        async def waiter(i: int) -> None:
            ev = m.when_not(["A", "B"])
            ready[i].set()
            await ev.wait()
            passed.append(i)

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, 0)
            tg.start_soon(waiter, 1)
            await ready[0].wait()
            await ready[1].wait()
            assert passed == []
            m.remove(["A", "B"])
        assert sorted(passed) == [0, 1]


async def test_when_not_active_go() -> None:
    """Go: TestWhenNotActive — B is inactive already."""
    async with no_rels(["A"]) as m:
        with anyio.fail_after(TIMEOUT):
            await m.when_not(["B"])
        assert_states(m, ["A"])


def test_when_args_go() -> None:
    """Go: TestWhenArgs."""
    m = rels()
    w = m.when_args("B", {"foo": "bar"})
    m.add1("B", {"foo": "foo"})
    assert not w.is_set(), "when shouldn't be resolved"
    m.add1("B", {"foo": "bar"})
    assert w.is_set(), "when should be resolved"


async def test_when_time_go() -> None:
    """Go: TestWhenTime."""
    m = no_rels(["A", "B"])
    async with m:
        w1 = m.when_time(["A", "B"], [5, 2])
        w2 = m.when_time(["A", "B"], [7, 2])
        w3 = m.when_time(["A", "B"], [9, 2])
        m.remove(["A", "B"])
        m.add(["A", "B"])
        assert not w1.is_set(), "when shouldn't be resolved"
        m.remove1("A")
        m.add1("A")
        assert w1.is_set(), "when should be resolved"
        assert not w2.is_set()
        for _ in range(2):
            m.remove1("A")
            m.add1("A")
        with anyio.fail_after(TIMEOUT):
            await w3
        assert w2.is_set()
        assert_no_subs(m)


def test_chan_reuse_go() -> None:
    """Go: TestChanReuse."""
    m = no_rels(["A", "B"])
    assert m.when_time(["A", "B"], [5, 2]) is m.when_time(["A", "B"], [5, 2])
    assert m.when_args("B", {"foo": "bar"}) is m.when_args("B", {"foo": "bar"})
    assert m.when1("C") is m.when1("C")
    assert m.when_not1("A") is m.when_not1("A")


async def test_nil_ctx_go() -> None:
    """Go: TestNilCtx — a machine made without any context or options."""
    m = am.Machine({"A": am.State()})
    assert len(m.id) > 5
    async with m:
        assert m.running
    assert m.disposed
    await m.when_disposed()


async def test_when_queue_ends_go() -> None:
    """Go: TestWhenQueueEnds — subscribe while a transition runs."""
    seen: dict[str, Any] = {}

    class H:
        def AState(self, e: am.Event) -> None:
            seen["tx"] = e.machine.transition
            seen["ends"] = e.machine.when_queue_ends()
            e.machine.add1("B")

    async with no_rels(handlers=H()) as m:
        m.add1("A")
        assert seen["tx"] is not None, "machine should be during a transition"
        with anyio.fail_after(TIMEOUT):
            await seen["ends"]
        m.remove1("A")
        assert_states(m, ["B"])
        assert not m.is_err()


async def test_when_queue_go() -> None:
    """Go: TestWhenQueue — wait for the last of three queued adds."""
    seen: dict[str, Any] = {}

    class H:
        def AState(self, e: am.Event) -> None:
            mach = e.machine
            mach.add1("B")
            mach.add1("C")
            assert mach.add1("D") == am.Result.QUEUED
            seen["ev"] = mach.when_queue(mach.queue_tick)

    async with no_rels(handlers=H()) as m:
        done = anyio.Event()

        async def waiter() -> None:
            await anyio.lowlevel.checkpoint()
            await seen["ev"]
            seen["states"] = m.active_states
            done.set()

        async with anyio.create_task_group() as tg:
            m.add1("A")
            tg.start_soon(waiter)
            with anyio.fail_after(TIMEOUT):
                await done.wait()
        assert seen["states"] == ["A", "B", "C", "D"]


async def test_when_query_go() -> None:
    """Go: TestWhenQuery, awaited."""
    async with no_rels(["A"]) as m:
        q1 = m.when_query(lambda c: c["A"] > c["B"] * 4)
        q2 = m.when_query(lambda c: c["A"] < c["B"])
        m.add1("B")
        m.remove1("A")
        m.add1("A")
        m.remove1("A")
        assert not q1.is_set(), "should NOT match"
        assert not q2.is_set(), "should NOT match"
        m.add1("A")
        with anyio.fail_after(TIMEOUT):
            await q1
        assert not q2.is_set(), "should NOT match"


# ---------------------------------------------------------------------------
# waiters cancelled from outside


async def test_cancelled_waiter_drops_the_subscription() -> None:
    m = no_rels()
    async with m:
        ev = m.when1("A")
        assert sub_count(m) == 1
        with anyio.CancelScope() as scope:
            scope.cancel()
            await ev.wait()
        assert scope.cancelled_caught
        assert not ev.is_set()
        assert_no_subs(m)


@pytest.mark.parametrize("how", ["fail_after", "move_on_after", "scope"])
async def test_waiter_cancelled_mid_wait_leaves_nothing(how: str) -> None:
    m = no_rels()
    async with m:
        ev = m.when(["A", "B"])
        started = anyio.Event()
        outcome: list[str] = []

        async def waiter(scope_box: list[anyio.CancelScope]) -> None:
            if how == "fail_after":
                try:
                    with anyio.fail_after(0.05):
                        started.set()
                        await ev
                except TimeoutError:
                    outcome.append("timeout")
            elif how == "move_on_after":
                with anyio.move_on_after(0.05) as s:
                    started.set()
                    await ev
                outcome.append("moved on" if s.cancelled_caught else "woke")
            else:
                with anyio.CancelScope() as s:
                    scope_box.append(s)
                    started.set()
                    await ev
                outcome.append("cancelled" if s.cancelled_caught else "woke")

        box: list[anyio.CancelScope] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, box)
            await started.wait()
            await anyio.lowlevel.checkpoint()
            assert sub_count(m) == 1
            if box:
                box[0].cancel()
        assert outcome == [
            {
                "fail_after": "timeout",
                "move_on_after": "moved on",
                "scope": "cancelled",
            }[how]
        ]
        assert not ev.is_set()
        assert_no_subs(m)
        # transitions still work and do not touch the dropped subscription
        m.add(["A", "B"])
        assert not ev.is_set()


async def test_waiting_again_resubscribes() -> None:
    m = no_rels()
    async with m:
        ev = m.when1("A")
        with anyio.move_on_after(0):
            await ev
        assert_no_subs(m)

        woke = anyio.Event()
        started = anyio.Event()

        async def waiter() -> None:
            started.set()
            await ev
            woke.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await started.wait()
            assert sub_count(m) == 1, "waiting again subscribed again"
            m.add1("A")
            with anyio.fail_after(TIMEOUT):
                await woke.wait()
        assert ev.is_set()
        assert_no_subs(m)


@pytest.mark.parametrize("kind", ["when1", "when_not1"])
async def test_rewaiting_a_dropped_event_beside_a_newer_identical_one(
    kind: str,
) -> None:
    """A dropped one-state wait, waited on again while a newer identical
    subscription exists: both events are set by the same transition."""
    m = no_rels() if kind == "when1" else no_rels(["A"])
    make = m.when1 if kind == "when1" else m.when_not1
    trigger = m.add1 if kind == "when1" else m.remove1
    async with m:
        old = make("A")
        with anyio.move_on_after(0):
            await old
        new = make("A")
        assert new is not old
        woke: list[str] = []
        parked = 0
        both_parked = anyio.Event()

        async def waiter(name: str, ev: am.WhenEvent) -> None:
            nonlocal parked
            parked += 1
            if parked == 2:
                both_parked.set()
            await ev
            woke.append(name)

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, "new", new)
            tg.start_soon(waiter, "old", old)
            await both_parked.wait()
            await anyio.lowlevel.checkpoint()
            assert sub_count(m) == 2
            trigger("A")
        assert sorted(woke) == ["new", "old"]
        assert old.is_set() and new.is_set()
        assert_no_subs(m)


async def test_waiting_again_after_the_condition_happened_meanwhile() -> None:
    """Dropped, then A activated unobserved: the next wait returns at once."""
    m = no_rels()
    async with m:
        ev = m.when1("A")
        with anyio.move_on_after(0):
            await ev
        m.add1("A")
        assert not ev.is_set()
        with anyio.fail_after(TIMEOUT):
            await ev
        assert ev.is_set()
        assert_no_subs(m)


async def test_one_of_two_waiters_cancelled_keeps_the_subscription() -> None:
    m = no_rels()
    async with m:
        ev = m.when1("A")
        woke = anyio.Event()
        cancelled: list[bool] = []

        started = anyio.Event()

        async def waiter_b() -> None:
            started.set()
            await ev
            woke.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter_b)
            await started.wait()
            with anyio.CancelScope() as scope:
                scope.cancel()
                await ev
            cancelled.append(scope.cancelled_caught)
            assert sub_count(m) == 1, "the other waiter still waits"
            m.add1("A")
            with anyio.fail_after(TIMEOUT):
                await woke.wait()
        assert cancelled == [True]
        assert_no_subs(m)


async def test_cancelled_waiters_of_every_kind_leave_nothing() -> None:
    m = no_rels(["A"])
    async with m:
        ctx = m.new_state_ctx("A")
        events = [
            m.when1("B"),
            m.when_not1("A"),
            m.when_time1("A", 7),
            m.when_ticks("B", 3),
            m.when_args("B", {"x": 1}),
            m.when_query(lambda c: False),
            m.when_queue(m.queue_tick + 10),
            m.when1("C", ctx),
        ]
        for ev in events:
            with anyio.move_on_after(0):
                await ev
        assert not any(ev.is_set() for ev in events)
        assert_no_subs(m)


async def test_repeated_cancelled_waits_with_one_ctx_do_not_accumulate() -> None:
    """A long-lived ctx must not collect the callbacks of dropped waits."""
    m = no_rels(["A"])
    async with m:
        ctx = m.new_state_ctx("A")
        for _ in range(20):
            with anyio.move_on_after(0):
                await m.when1("B", ctx)
        assert_no_subs(m)
        assert len(ctx._callbacks or ()) <= 1, len(ctx._callbacks or ())


async def test_dropped_ctx_subscription_still_wakes_on_expiry_when_rewaited() -> None:
    m = no_rels(["A"])
    async with m:
        ctx = m.new_state_ctx("A")
        ev = m.when1("B", ctx)
        with anyio.move_on_after(0):
            await ev
        woke = anyio.Event()
        started = anyio.Event()

        async def waiter() -> None:
            started.set()
            await ev
            woke.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await started.wait()
            assert sub_count(m) == 1
            m.remove1("A")  # ctx expires: the waiter wakes, B never came
            with anyio.fail_after(TIMEOUT):
                await woke.wait()
        assert ctx.expired
        assert not m.is1("B")
        assert_no_subs(m)


async def test_await_event_and_wait_are_the_same() -> None:
    async with no_rels() as m:
        ev = m.when1("A")
        assert "pending" in repr(ev)
        m.add1("A")
        assert "set" in repr(ev)
        await ev
        await ev.wait()
        assert ev.is_set()


async def test_awaiting_a_set_event_is_a_checkpoint() -> None:
    """Like a set `anyio.Event`: a loop over set events still yields."""
    async with no_rels(["A"]) as m:
        ev = m.when1("A")
        assert ev.is_set()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await ev
        assert scope.cancelled_caught


async def test_many_waiters_on_one_event_all_wake() -> None:
    async with no_rels() as m:
        woke: list[int] = []
        parked = 0
        all_parked = anyio.Event()

        async def waiter(i: int) -> None:
            nonlocal parked
            ev = m.when1("A")
            parked += 1
            if parked == 5:
                all_parked.set()
            await ev
            woke.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(waiter, i)
            await all_parked.wait()
            # one subscription for all five, and it is still pending
            assert sub_count(m) == 1
            await anyio.lowlevel.checkpoint()
            assert woke == []
            m.add1("A")
        assert sorted(woke) == [0, 1, 2, 3, 4]
        assert_no_subs(m)


async def test_state_ctx_wait_returns_on_expiry() -> None:
    async with no_rels(["A"]) as m:
        ctx = m.new_state_ctx("A")
        done = anyio.Event()

        async def waiter() -> None:
            await ctx.wait()
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.lowlevel.checkpoint()
            assert not done.is_set()
            m.remove1("A")
            await done.wait()
        # an expired context returns at once
        await ctx.wait()


def test_one_state_waits_are_logged() -> None:
    lines: list[str] = []
    m = no_rels(log_level=am.LogLevel.OPS, logger=lambda _lvl, text: lines.append(text))
    m.when1("A")
    m.add(["A", "B"])
    m.when_not1("B")
    m.remove1("B")
    text = "\n".join(lines)
    assert "[when:new] A" in text
    assert "[when:match] A" in text
    assert "[whenNot:new] B" in text
    assert "[whenNot:match] B" in text


def test_one_state_waits_after_a_failed_final_handler() -> None:
    """A final handler that fails undoes its state's activation: a when1
    of an entered state it undid stays pending (and is set by the next
    real activation), a when1 of an entered state it did not undo is set;
    a when_not1 of an active multi state that was re-entered and undone is
    set, since the state is no longer active."""

    class Handlers:
        fail = True

        def CState(self, e: am.Event) -> None:
            if self.fail:
                raise ValueError("CState panic")

    h = Handlers()
    m = am.Machine(
        {"B": am.State(), "C": am.State(), "M": am.State(multi=True)},
        log_level=am.LogLevel.NOTHING,
    )
    m.bind_handlers(h)
    m.add1("M")
    when_b, when_c = m.when1("B"), m.when1("C")
    not_m = m.when_not1("M")
    m.add(["B", "C"])  # B entered before C, whose handler fails
    assert m.is1("B") and not m.is1("C") and m.is1(am.EXCEPTION)
    assert when_b.is_set() and not when_c.is_set() and not not_m.is_set()
    m.remove1(am.EXCEPTION)
    h.fail = False
    m.add1("C")
    assert when_c.is_set() and not not_m.is_set()

    class MHandlers:
        def MState(self, e: am.Event) -> None:
            raise ValueError("MState panic")

    m.bind_handlers(MHandlers())
    m.remove1(am.EXCEPTION)
    m.add1("M")  # re-entered, then undone by its failing handler
    assert not m.is1("M") and not_m.is_set()
    assert_no_subs(m)


# every async test gets a deadline
bound_async_tests(globals(), TIMEOUT)
