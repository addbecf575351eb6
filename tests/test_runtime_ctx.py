"""State contexts as cancel scopes (the manual's "State contexts", docs/design/semantics.md §2.3,
§5.6), and async final handlers bound to them.

Ports of the Go tests `TestStateCtx` and `TestStateCtxBasic`.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

import asyncmachine as am
from deadline import bound_async_tests

#: a safety net against hangs; nothing here should take more than microseconds
TIMEOUT = 2


def no_rels(initial: list[str] | None = None, **kw: Any) -> am.Machine:
    m = am.Machine({s: am.State() for s in "ABCD"}, **kw)
    if initial:
        m.set(initial)
    return m


def multi_schema() -> dict[str, am.State]:
    return {"Foo": am.State(multi=True), "Bar": am.State(), "Baz": am.State()}


# ---------------------------------------------------------------------------
# the synchronous part (§2.3)


def test_state_ctx_basic_go() -> None:
    """Go: TestStateCtxBasic."""
    m = no_rels()
    m.add1("A")
    ctx1 = m.new_state_ctx("A")
    assert not ctx1.expired
    m.add1("A")  # no tick change
    assert not ctx1.expired
    m.remove1("A")
    assert ctx1.expired

    # a context of an inactive state
    ctx2 = m.new_state_ctx("B")
    assert not ctx2.expired
    m.add1("B")
    assert ctx2.expired


def test_state_ctx_go() -> None:
    """Go: TestStateCtx — a ctx made in AState is bound to A's new tick."""
    seen: dict[str, Any] = {}

    class H:
        def AState(self, e: am.Event) -> None:
            ctx = e.machine.new_state_ctx("A")
            seen["ctx"] = ctx
            seen["expired_in_handler"] = ctx.expired
            seen["tick"] = ctx.tick

    m = no_rels(handlers=H())
    m.add(["A"])
    ctx = seen["ctx"]
    assert seen["expired_in_handler"] is False
    assert seen["tick"] == 1
    assert not ctx.expired
    m.remove(["A"])
    assert m.active_states == []
    assert ctx.expired, "state context should be canceled"


def test_ctx_in_negotiation_is_bound_to_the_old_tick() -> None:
    seen: dict[str, Any] = {}

    class H:
        def AEnter(self, e: am.Event) -> bool:
            seen["ctx"] = e.machine.new_state_ctx("A")
            return True

    m = no_rels(handlers=H())
    m.add1("A")
    assert seen["ctx"].tick == 0
    assert seen["ctx"].expired


def test_one_live_ctx_per_state_and_fresh_after_expiry() -> None:
    m = no_rels(["A"])
    ctx = m.new_state_ctx("A")
    assert m.new_state_ctx("A") is ctx
    m.remove1("A")
    m.add1("A")
    fresh = m.new_state_ctx("A")
    assert fresh is not ctx
    assert not fresh.expired
    assert fresh.tick == 3
    assert ctx.expired


def test_ctx_survives_canceled_dry_and_no_change_transitions() -> None:
    m = am.Machine(
        {
            "A": am.State(),
            "B": am.State(require=["C"]),
            "C": am.State(),
            "M": am.State(multi=True),
            "I": am.State(add=["M"]),
        }
    )
    m.add(["A", "M"])
    ctx_a = m.new_state_ctx("A")
    ctx_m = m.new_state_ctx("M")
    assert m.add(["A", "B"]) == am.Result.CANCELED  # B lacks C
    assert m.can_remove(["A"]) == am.Result.EXECUTED  # a dry run
    assert m.add1("A") == am.Result.EXECUTED  # stays active
    m.add1("I")  # implies the active Multi M: no tick change
    assert m.tick("M") == 1
    assert not ctx_a.expired
    assert not ctx_m.expired
    m.add1("M")  # called Multi re-activation: +2
    assert ctx_m.expired
    assert not ctx_a.expired


def test_ctx_unknown_name_and_disposed() -> None:
    m = no_rels()
    with pytest.raises(am.StateNameError):
        m.new_state_ctx("Nope")
    live = m.new_state_ctx("A")
    m.dispose()
    assert live.expired
    assert m.new_state_ctx("A").expired


# ---------------------------------------------------------------------------
# `with ctx:`


async def test_with_ctx_is_cancelled_on_expiry() -> None:
    m = no_rels(["A"])
    async with m:
        ctx = m.new_state_ctx("A")
        started = anyio.Event()
        out: dict[str, Any] = {}

        async def job() -> None:
            with ctx as scope:
                started.set()
                await anyio.sleep_forever()
                out["after"] = True  # never
            out["caught"] = scope.cancelled_caught

        async with anyio.create_task_group() as tg:
            tg.start_soon(job)
            await started.wait()
            assert "caught" not in out
            m.remove1("A")
        assert out == {"caught": True}
        assert not m.is_err()
        assert m.err is None


async def test_with_ctx_entered_expired_is_cancelled_at_once() -> None:
    m = no_rels(["A"])
    async with m:
        ctx = m.new_state_ctx("A")
        m.remove1("A")
        reached = False
        with ctx as scope:
            await anyio.lowlevel.checkpoint()
            reached = True
        assert not reached
        assert scope.cancel_called
        assert scope.cancelled_caught
        # a block with no await finishes, with its scope already cancelled
        with ctx as scope2:
            pass
        assert scope2.cancel_called


async def test_with_ctx_block_finishes_normally_while_valid() -> None:
    m = no_rels(["A"])
    async with m:
        ctx = m.new_state_ctx("A")
        with ctx as scope:
            await anyio.lowlevel.checkpoint()
            m.add1("B")  # another state: A's ctx stays valid
            await anyio.lowlevel.checkpoint()
        assert not scope.cancel_called
        assert not ctx.expired
        assert not ctx._callbacks, "the finished block unhooked its scope"
        # a later expiry does not reach the finished scope
        m.remove1("A")
        assert not scope.cancel_called


async def test_with_ctx_nested_and_in_two_tasks() -> None:
    """Each `with ctx:` opens its own scope; expiry cancels them all."""
    m = no_rels(["A"])
    async with m:
        ctx = m.new_state_ctx("A")
        started = [anyio.Event(), anyio.Event()]
        scopes: list[anyio.CancelScope] = []
        after_inner: list[int] = []

        async def job(i: int) -> None:
            with ctx as outer:
                scopes.append(outer)
                with ctx as inner:
                    scopes.append(inner)
                    started[i].set()
                    await anyio.sleep_forever()
                after_inner.append(i)  # never: the outer scope is cancelled too

        async with anyio.create_task_group() as tg:
            tg.start_soon(job, 0)
            tg.start_soon(job, 1)
            await started[0].wait()
            await started[1].wait()
            assert len(ctx._callbacks or ()) == 4
            m.remove1("A")
        assert len(scopes) == 4
        assert all(s.cancel_called for s in scopes)
        assert after_inner == []
        assert not m.is_err()


# ---------------------------------------------------------------------------
# ctx.wait()


async def test_ctx_wait_returns_on_expiry() -> None:
    m = no_rels(["A"])
    async with m:
        ctx = m.new_state_ctx("A")
        done = anyio.Event()
        started = anyio.Event()

        async def waiter() -> None:
            started.set()
            await ctx.wait()
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await started.wait()
            m.add1("B")
            await anyio.lowlevel.checkpoint()
            assert not done.is_set()
            m.remove1("A")
            with anyio.fail_after(TIMEOUT):
                await done.wait()
        assert not ctx._callbacks


async def test_ctx_wait_on_expired_returns_at_once() -> None:
    m = no_rels(["A"])
    async with m:
        ctx = m.new_state_ctx("A")
        m.remove1("A")
        with anyio.fail_after(TIMEOUT):
            await ctx.wait()


async def test_ctx_wait_cancelled_from_outside_unhooks() -> None:
    m = no_rels(["A"])
    async with m:
        ctx = m.new_state_ctx("A")
        with anyio.move_on_after(0) as scope:
            await ctx.wait()
        assert scope.cancelled_caught
        assert not ctx._callbacks
        assert not ctx.expired


async def test_ctx_expires_on_dispose_inside_async_with() -> None:
    m = no_rels(["A"])
    woke: list[bool] = []
    async with anyio.create_task_group() as tg, m:
        ctx = m.new_state_ctx("A")
        started = anyio.Event()

        async def waiter() -> None:
            started.set()
            await ctx.wait()
            woke.append(ctx.expired)

        tg.start_soon(waiter)  # an outside task group: not cancelled by m
        await started.wait()
    assert woke == [True]


# ---------------------------------------------------------------------------
# fork(ctx, fn)


async def test_fork_with_ctx_is_cancelled_on_expiry() -> None:
    m = no_rels(["A"])
    async with m:
        ctx = m.new_state_ctx("A")
        started = anyio.Event()
        ended = anyio.Event()
        out: list[str] = []

        async def job(x: int, y: str) -> None:
            out.append(f"{x}{y}")
            try:
                started.set()
                await anyio.sleep_forever()
            finally:
                out.append("ended")
                ended.set()

        m.fork(ctx, job, 1, "a")
        await started.wait()
        assert out == ["1a"]
        m.remove1("A")
        with anyio.fail_after(TIMEOUT):
            await ended.wait()
        assert out == ["1a", "ended"]
        assert not m.is_err()
        assert m.err is None


async def test_fork_with_expired_ctx_never_starts() -> None:
    m = no_rels(["A"])
    async with m:
        ctx = m.new_state_ctx("A")
        m.remove1("A")
        ran: list[str] = []
        after = anyio.Event()

        async def job() -> None:
            ran.append("body")  # before any await: must not run either
            await anyio.lowlevel.checkpoint()

        async def marker() -> None:
            after.set()

        m.fork(ctx, job)
        m.fork(None, marker)  # tasks start in fork order
        with anyio.fail_after(TIMEOUT):
            await after.wait()
        assert ran == []
        assert not m.is_err()


async def test_fork_rejects_what_is_not_a_state_ctx() -> None:
    async with no_rels() as m:

        async def job() -> None:
            await anyio.lowlevel.checkpoint()

        with pytest.raises(TypeError):
            m.fork(anyio.CancelScope(), job)  # type: ignore[arg-type]


async def test_deactivation_cancels_exactly_its_own_tasks() -> None:
    """A's handler and A's forks end; B's and the unbound fork go on."""
    started: dict[str, anyio.Event] = {}
    ended: dict[str, anyio.Event] = {}
    for k in ("AState", "BState", "forkA", "forkB", "forkNone"):
        started[k] = anyio.Event()
        ended[k] = anyio.Event()

    async def park(key: str) -> None:
        try:
            started[key].set()
            await anyio.sleep_forever()
        finally:
            ended[key].set()

    class H:
        async def AState(self, e: am.Event) -> None:
            await park("AState")

        async def BState(self, e: am.Event) -> None:
            await park("BState")

    m = no_rels(handlers=H())
    async with m:
        m.add(["A", "B"])
        m.fork(m.new_state_ctx("A"), park, "forkA")
        m.fork(m.new_state_ctx("B"), park, "forkB")
        m.fork(None, park, "forkNone")
        for ev in started.values():
            with anyio.fail_after(TIMEOUT):
                await ev.wait()
        m.remove1("A")
        with anyio.fail_after(TIMEOUT):
            await ended["AState"].wait()
            await ended["forkA"].wait()
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        assert not ended["BState"].is_set()
        assert not ended["forkB"].is_set()
        assert not ended["forkNone"].is_set()
        m.remove1("B")
        with anyio.fail_after(TIMEOUT):
            await ended["BState"].wait()
            await ended["forkB"].wait()
        assert not ended["forkNone"].is_set()
        assert not m.is_err()
        assert m.err is None
    # leaving the block cancels the rest
    assert ended["forkNone"].is_set()


async def test_reactivation_gets_a_fresh_context() -> None:
    ctxs: list[am.StateCtx] = []
    cancelled: list[int] = []
    started = [anyio.Event(), anyio.Event()]

    class H:
        async def AState(self, e: am.Event) -> None:
            i = len(ctxs)
            ctxs.append(e.machine.new_state_ctx("A"))
            try:
                started[i].set()
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append(i)
                raise

    async with no_rels(handlers=H()) as m:
        m.add1("A")
        await started[0].wait()
        m.remove1("A")
        m.add1("A")
        with anyio.fail_after(TIMEOUT):
            await started[1].wait()
        await anyio.lowlevel.checkpoint()
        assert ctxs[0] is not ctxs[1]
        assert ctxs[0].expired
        assert not ctxs[1].expired
        assert (ctxs[0].tick, ctxs[1].tick) == (1, 3)
        assert cancelled == [0]
    assert cancelled == [0, 1]


# ---------------------------------------------------------------------------
# async final handlers (§5.6)


async def test_async_state_handler_starts_after_the_transition() -> None:
    """§5.6: started as a task; the transition goes on at once."""
    log: list[Any] = []
    done = anyio.Event()

    class H:
        async def AState(self, e: am.Event) -> None:
            log.append(("AState", e.machine.active_states))
            done.set()

        def AnyState(self, e: am.Event) -> None:
            log.append("AnyState")

    async with no_rels(handlers=H()) as m:
        assert m.add1("A") == am.Result.EXECUTED
        log.append("returned")
        with anyio.fail_after(TIMEOUT):
            await done.wait()
        assert log == ["AnyState", "returned", ("AState", ["A"])]


async def test_async_state_handler_cancelled_when_tick_changes() -> None:
    started = anyio.Event()
    ended = anyio.Event()
    cancelled: list[bool] = []

    class H:
        async def BarState(self, e: am.Event) -> None:
            started.set()
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append(True)
                raise
            finally:
                ended.set()

    async with am.Machine(multi_schema(), handlers=H()) as m:
        m.add1("Bar")
        await started.wait()
        m.add1("Bar")  # no tick change: keeps running
        m.add1("Baz")
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        assert not ended.is_set()
        m.remove1("Bar")
        with anyio.fail_after(TIMEOUT):
            await ended.wait()
        assert cancelled == [True]
        assert not m.is_err()
        assert m.err is None


async def test_multi_reactivation_cancels_the_previous_instance() -> None:
    instances: list[int] = []
    cancelled: list[int] = []
    finished: list[int] = []
    release = anyio.Event()
    finished_ev = anyio.Event()
    started = [anyio.Event(), anyio.Event()]

    class H:
        async def FooState(self, e: am.Event) -> None:
            i = len(instances)
            instances.append(e.machine.tick("Foo"))
            try:
                started[i].set()
                await release.wait()
                finished.append(i)
                finished_ev.set()
            except anyio.get_cancelled_exc_class():
                cancelled.append(i)
                raise

    async with am.Machine(multi_schema(), handlers=H()) as m:
        m.add1("Foo")
        await started[0].wait()
        m.add1("Foo")  # Multi: new tick, new instance
        with anyio.fail_after(TIMEOUT):
            await started[1].wait()
        release.set()
        with anyio.fail_after(TIMEOUT):
            await finished_ev.wait()
        assert instances == [1, 3]
        assert cancelled == [0]
        assert finished == [1]
        assert not m.is_err()


async def test_async_end_handler_bound_to_the_new_inactive_tick() -> None:
    seen: dict[str, Any] = {}
    running = anyio.Event()
    ended = anyio.Event()

    class H:
        async def BarEnd(self, e: am.Event) -> None:
            ctx = e.machine.new_state_ctx("Bar")
            seen["ctx"] = (ctx.tick, ctx.expired)
            try:
                await anyio.lowlevel.checkpoint()  # not cancelled at once
                running.set()
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                seen["cancelled_at"] = e.machine.tick("Bar")
                raise
            finally:
                ended.set()

    async with am.Machine(multi_schema(), handlers=H()) as m:
        m.add1("Bar")
        m.remove1("Bar")  # Bar:2
        with anyio.fail_after(TIMEOUT):
            await running.wait()
        assert seen["ctx"] == (2, False)
        m.add1("Baz")
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        assert not ended.is_set()
        m.add1("Bar")  # Bar:3 ends the inactive tick
        with anyio.fail_after(TIMEOUT):
            await ended.wait()
        assert seen["cancelled_at"] == 3
        assert not m.is_err()


async def test_async_any_state_is_not_bound_to_a_state() -> None:
    release = anyio.Event()
    done: list[str] = []
    done_ev = anyio.Event()
    started = anyio.Event()

    class H:
        async def AnyState(self, e: am.Event) -> None:
            if started.is_set():
                return
            started.set()
            await release.wait()
            done.append(str(e.machine))
            done_ev.set()

    async with no_rels(handlers=H()) as m:
        m.add1("A")
        await started.wait()
        m.remove1("A")
        m.add1("A")
        m.set(["B"])
        release.set()
        with anyio.fail_after(TIMEOUT):
            await done_ev.wait()
        assert done == ["(B:1)"]


async def test_cancellation_never_becomes_the_exception_state() -> None:
    """Cancelled handlers, forks and nested task groups add no error."""
    errors: list[BaseException] = []
    started = [anyio.Event() for _ in range(3)]
    ended = [anyio.Event() for _ in range(3)]

    async def nested(i: int) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.sleep_forever)
                tg.start_soon(anyio.sleep_forever)
                await anyio.lowlevel.checkpoint()
                started[i].set()
                await anyio.sleep_forever()
        finally:
            ended[i].set()  # the runtime sees the outcome before a yield

    class H:
        async def AState(self, e: am.Event) -> None:
            await nested(0)

    m = no_rels(handlers=H())
    m.on_error = lambda mach, exc: errors.append(exc)
    async with m:
        m.add1("A")
        m.fork(m.new_state_ctx("A"), nested, 1)
        m.fork(m.new_state_ctx("A"), nested, 2)
        for ev in started:
            with anyio.fail_after(TIMEOUT):
                await ev.wait()
        m.remove1("A")
        for ev in ended:
            with anyio.fail_after(TIMEOUT):
                await ev.wait()
        await anyio.lowlevel.checkpoint()
        m.add1("B")
        assert errors == []
        assert m.err is None
        assert not m.is_err()
        assert m.active_states == ["B"]


def test_add_err_with_a_cancellation_is_refused() -> None:
    import asyncio

    import trio

    m = no_rels()
    assert m.add_err(asyncio.CancelledError()) == am.Result.CANCELED
    cancelled = trio.Cancelled._create()  # type: ignore[attr-defined]
    assert m.add_err(cancelled) == am.Result.CANCELED
    assert m.err is None
    assert not m.is_err()


# every async test gets a deadline
bound_async_tests(globals(), TIMEOUT)
