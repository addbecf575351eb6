"""The runtime's edges: threads, other loops, trio guest mode, expired
contexts, errors of error handlers, start order, and options.

Each test here pins one behaviour of the manual's "Where calls come from"
table or of its error rules, on asyncio and trio (guest-mode tests drive a
trio guest run on an asyncio host themselves).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
import trio
import trio.lowlevel

import asyncmachine as am
from asyncmachine import helpers
from deadline import bound_async_tests

TIMEOUT = 10


def abcd(**kw: Any) -> am.Machine:
    return am.Machine({s: am.State() for s in "ABCD"}, **kw)


async def settle(m: am.Machine) -> None:
    """Wait until every task the machine started before now has started
    (tasks start in the order they were asked for)."""
    started = anyio.Event()

    async def marker() -> None:
        started.set()

    m.fork(None, marker)
    await started.wait()


# ---------------------------------------------------------------------------
# 1-3: a thread's calls apply in the order it made them, in the loop


async def test_thread_add_then_when1_always_fires() -> None:
    m = abcd()
    async with m:

        def work() -> am.WhenEvent:
            assert m.add1("A") is am.Result.QUEUED
            return m.when1("A")

        for _ in range(100):
            ev = await anyio.to_thread.run_sync(work)
            await ev
            assert m.is1("A")
            m.remove1("A")


async def test_thread_remove_then_when_not1_always_fires() -> None:
    m = abcd()
    async with m:

        def work() -> am.WhenEvent:
            m.remove1("A")
            return m.when_not1("A")

        for _ in range(100):
            m.add1("A")
            ev = await anyio.to_thread.run_sync(work)
            await ev
            assert not m.is1("A")


async def test_thread_add_then_ctx_and_fork_see_the_add() -> None:
    m = abcd()
    seen: list[bool] = []
    ran = [anyio.Event()]

    async def job() -> None:
        seen.append(m.is1("A"))
        ran[0].set()

    async with m:

        def work() -> am.StateCtx:
            m.add1("A")
            ctx = m.new_state_ctx("A")
            m.fork(None, job)
            return ctx

        for i in range(100):
            ctx = await anyio.to_thread.run_sync(work)
            assert ctx.tick == 2 * i + 1, "the ctx was made after the add"
            assert not ctx.expired
            await ran[0].wait()
            ran[0] = anyio.Event()
            assert seen[-1] is True
            m.remove1("A")
            assert ctx.expired
    assert seen == [True] * 100


async def test_thread_when_ticks_counts_from_when_the_loop_takes_it() -> None:
    m = am.Machine({"M": am.State(multi=True)})
    async with m:

        def work() -> am.WhenEvent:
            m.add1("M")  # tick 1, applied before the when_ticks below
            ev = m.when_ticks("M", 2)
            m.eval(lambda: None)  # returns once the loop took both
            return ev

        ev = await anyio.to_thread.run_sync(work)
        assert not ev.is_set()
        m.add1("M")  # 3
        assert ev.is_set()


async def test_dry_run_from_a_thread_negotiates_in_the_loop() -> None:
    where: list[int] = []

    class H:
        def AEnter(self, e: am.Event) -> bool:
            where.append(threading.get_ident())
            return bool(e.args.get("ok"))

    async with abcd(handlers=H()) as m:
        loop_thread = threading.get_ident()

        def work() -> tuple[am.Result, am.Result]:
            return m.can_add1("A", {"ok": True}), m.can_add(["A"])

        ok, no = await anyio.to_thread.run_sync(work)
        assert (ok, no) == (am.Result.EXECUTED, am.Result.CANCELED)
        assert where == [loop_thread, loop_thread]
        assert not m.is1("A")


async def test_toggle_and_add_err_from_a_thread_are_decided_in_the_loop() -> None:
    errors: list[tuple[int, BaseException]] = []
    m = abcd()
    m.on_error = lambda mach, exc: errors.append((threading.get_ident(), exc))
    async with m:
        loop_thread = threading.get_ident()
        boom = ValueError("boom")

        def work() -> list[am.Result]:
            return [m.add1("A"), m.toggle1("A"), m.toggle1("B"), m.add_err(boom)]

        results = await anyio.to_thread.run_sync(work)
        assert results == [am.Result.QUEUED] * 4
        await m.when_err()
        assert m.active_states == ["B", am.EXCEPTION]
        assert errors == [(loop_thread, boom)]
        assert m.err is boom


# ---------------------------------------------------------------------------
# 5: threads that run their own loop


def _own_loop_calls(m: am.Machine, lib: str) -> dict[str, Any]:
    """From a thread with its own `lib` loop: every kind of call."""
    out: dict[str, Any] = {}

    async def main() -> None:
        out["add"] = m.add1("A")
        out["when"] = m.when1("A")
        await out["when"]
        out["ctx"] = ctx = m.new_state_ctx("A")
        out["eval"] = m.eval(lambda: out.setdefault("in_eval", m.is1("A")))
        out["can"] = m.can_remove1("A")
        forked = threading.Event()

        async def job() -> None:
            forked.set()

        m.fork(None, job)
        # wait for the removal, as a waiter of this loop
        gone = m.when_not1("A")
        m.remove1("A")
        await gone
        # a ctx used as a cancel scope in this loop: cancelled by expiry
        # there (B's ctx, so the removal of A above doesn't count)
        m.add1("B")
        ctx_b = m.new_state_ctx("B")
        m.remove1("B")
        with ctx_b:
            await anyio.sleep_forever()
        out["ctx_b_cancelled"] = True
        await ctx.wait()
        out["forked"] = forked.is_set()

    if lib == "trio":
        trio.run(main)
    else:
        asyncio.run(main())
    return out


@pytest.mark.parametrize("other", ["asyncio", "trio"])
async def test_a_thread_with_its_own_loop(other: str) -> None:
    m = abcd()
    async with m:
        out = await anyio.to_thread.run_sync(_own_loop_calls, m, other)
        assert out["add"] is am.Result.QUEUED
        assert out["when"].is_set()
        assert out["in_eval"] is True and out["eval"] is True
        assert out["can"] is am.Result.EXECUTED
        assert out["ctx"].expired
        assert out["ctx_b_cancelled"] is True
        assert out["forked"] is True
        assert m.tick("A") == 2 and m.tick("B") == 2


# ---------------------------------------------------------------------------
# 4: trio guest mode on an asyncio host


def _run_guest(trio_main: Callable[[], Any], host_side: Any = None) -> Any:
    """Run `trio_main` as a trio guest on an asyncio host; `host_side(box)`
    runs as an asyncio task of the host meanwhile."""

    async def host() -> Any:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        trio.lowlevel.start_guest_run(
            trio_main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=done.set_result,
        )
        if host_side is not None:
            await host_side()
        outcome = await asyncio.wait_for(done, TIMEOUT)
        return outcome.unwrap()

    return asyncio.run(host())


def test_guest_mode_when_events_and_ctx_scopes_per_task() -> None:
    async def main() -> list[str]:
        got: list[str] = []
        m = abcd()
        async with m:
            m.add1("A")
            ctx = m.new_state_ctx("A")

            async def waiter(name: str) -> None:
                with ctx:
                    await m.when1("B")
                    got.append(name)
                    await anyio.sleep_forever()  # until A ends

            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter, "x")
                tg.start_soon(waiter, "y")
                await anyio.wait_all_tasks_blocked()
                m.add1("B")
                await anyio.wait_all_tasks_blocked()
                m.remove1("A")  # both scopes, one per task, cancelled
        return sorted(got)

    assert _run_guest(main) == ["x", "y"]


def test_guest_mode_host_tasks_call_through_the_inbox() -> None:
    box: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> dict[str, Any]:
        m = abcd()
        box["m"] = m
        async with m:
            ready.set()
            await m.when1("D")  # the host says when
            m.remove1("D")
            box["final"] = str(m)
        return box

    async def host_side() -> None:
        await asyncio.to_thread(ready.wait, TIMEOUT)
        m: am.Machine = box["m"]
        assert not m.runs_inline()
        ev = m.when1("A")  # a host task waits on the guest's machine
        assert m.add1("A") is am.Result.QUEUED
        await ev
        assert m.is1("A")
        with pytest.raises(RuntimeError, match="guest run"):
            m.eval(lambda: None)
        assert m.remove1("A") is am.Result.QUEUED
        await m.when_not1("A")
        m.add1("D")

    out = _run_guest(main, host_side)
    assert out["final"] == "()"


# ---------------------------------------------------------------------------
# 6: expired contexts never start work


async def test_async_state_handler_of_an_ended_state_never_starts() -> None:
    class H:
        async def WorkingState(self, e: am.Event) -> None:
            e.machine.add1("Done")  # before any await: must not run
            await anyio.lowlevel.checkpoint()

    m = am.Machine({"Working": am.State(), "Done": am.State()}, handlers=H())
    async with m:
        for _ in range(20):
            m.add1("Working")
            m.remove1("Working")
            await settle(m)
            assert m.active_states == []


async def test_handler_event_ctx_for_sync_and_async_handlers() -> None:
    ctxs: dict[str, am.StateCtx | None] = {}
    done = anyio.Event()

    class H:
        def AEnter(self, e: am.Event) -> None:
            ctxs["AEnter"] = e.ctx

        def AState(self, e: am.Event) -> None:
            ctxs["AState"] = e.ctx

        async def BState(self, e: am.Event) -> None:
            ctxs["BState"] = e.ctx
            done.set()

        def AEnd(self, e: am.Event) -> None:
            ctxs["AEnd"] = e.ctx

        def AnyState(self, e: am.Event) -> None:
            ctxs.setdefault("AnyState", e.ctx)

    async with abcd(handlers=H()) as m:
        m.add(["A", "B"])
        await done.wait()
        a, b = ctxs["AState"], ctxs["BState"]
        assert ctxs["AEnter"] is None and ctxs["AnyState"] is None
        assert a is not None and (a.state, a.tick, a.expired) == ("A", 1, False)
        assert b is not None and (b.state, b.tick, b.expired) == ("B", 1, False)
        assert a is m.new_state_ctx("A")
        m.remove1("A")
        assert a.expired
        end = ctxs["AEnd"]
        assert end is not None and (end.state, end.tick, end.expired) == ("A", 2, False)


# ---------------------------------------------------------------------------
# 7-8: the errors of error handlers are reported once, never looped


async def test_async_exception_state_that_raises_runs_once() -> None:
    runs: list[int] = []
    reported: list[BaseException] = []

    class H:
        async def ExceptionState(self, e: am.Event) -> None:
            runs.append(1)
            raise RuntimeError("handler of errors failed")

    m = abcd(handlers=H())
    m.on_error = lambda mach, exc: reported.append(exc)
    async with m:
        first = KeyError("first")
        m.add_err(first)
        await settle(m)
        await settle(m)  # a second round would have started by now
        assert runs == [1]
        assert m.err is first
        assert [type(e) for e in reported] == [KeyError, RuntimeError]


def test_sync_exception_state_that_raises_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reported: list[BaseException] = []

    class H:
        def ExceptionState(self, e: am.Event) -> None:
            raise RuntimeError("handler of errors failed")

    m = abcd(handlers=H())
    m.on_error = lambda mach, exc: reported.append(exc)
    first = KeyError("first")
    with caplog.at_level(logging.ERROR, logger="asyncmachine"):
        assert m.add_err(first) is am.Result.CANCELED
    assert m.string_all() == "() [A:0 B:0 C:0 D:0 Exception:2]"
    assert m.err is first  # no nesting: the first error stays the error
    assert [type(e) for e in reported] == [KeyError, RuntimeError]
    records = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(records) == 1
    assert "ExceptionState" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert records[0].exc_info[1] is reported[1]


def test_handler_errors_are_logged_at_error_with_the_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class H:
        def BState(self, e: am.Event) -> None:
            raise ValueError("BState panic")

    m = abcd(handlers=H())
    with caplog.at_level(logging.ERROR, logger="asyncmachine"):
        m.add1("B")
    [rec] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "H.BState" in rec.getMessage() and "BState panic" in rec.getMessage()
    assert rec.exc_info is not None and isinstance(rec.exc_info[1], ValueError)
    assert getattr(rec, "machine_id", None) == m.id
    assert m.is_err()


# ---------------------------------------------------------------------------
# 9: start order


async def test_async_final_handlers_start_in_handler_order() -> None:
    order: list[str] = []

    def make(name: str) -> Any:
        async def handler(self: Any, e: am.Event) -> None:
            order.append(name)
            await anyio.sleep_forever()

        return handler

    async def any_state(self: Any, e: am.Event) -> None:
        order.append("Any")  # AnyState has no context: it just returns

    names = ["A", "B", "C", "D"]
    H = type("H", (), {f"{n}State": make(n) for n in names})
    H.AnyState = any_state  # type: ignore[attr-defined]
    async with abcd(handlers=H()) as m:
        for _ in range(25):
            order.clear()
            m.add(names)
            await settle(m)
            assert order == [*names, "Any"]
            m.remove(names)  # their contexts expire: the tasks end
            await settle(m)  # the AnyState of the removal


async def test_forks_start_in_fork_order() -> None:
    order: list[int] = []

    async def job(i: int) -> None:
        order.append(i)

    async with abcd() as m:
        for i in range(50):
            m.fork(None, job, i)
        await settle(m)
        assert order == list(range(50))


# ---------------------------------------------------------------------------
# 10: waits bound to the ctx of the fork they run in


@pytest.mark.parametrize("how", ["wait", "when1", "ctx.wait"])
async def test_waits_in_a_fork_of_the_same_ctx_are_cancelled(how: str) -> None:
    outcomes: list[str] = []
    for _ in range(20):
        m = abcd()
        async with m:
            m.add1("A")
            ctx = m.new_state_ctx("A")
            started = anyio.Event()
            done = anyio.Event()

            async def job(
                m: am.Machine = m,
                ctx: am.StateCtx = ctx,
                started: anyio.Event = started,
                done: anyio.Event = done,
            ) -> None:
                started.set()
                try:
                    if how == "wait":
                        r = await helpers.wait(60, ctx)
                    elif how == "when1":
                        await m.when1("B", ctx)
                        r = not ctx.expired
                    else:
                        await ctx.wait()
                        r = False
                    outcomes.append(f"returned {r}")
                except anyio.get_cancelled_exc_class():
                    outcomes.append("cancelled")
                    raise
                finally:
                    done.set()

            m.fork(ctx, job)
            await started.wait()
            m.remove1("A")
            await done.wait()
    assert set(outcomes) == {"cancelled"}


async def test_waits_outside_a_bound_task_return_false_on_expiry() -> None:
    m = abcd()
    async with m:
        m.add1("A")
        ctx = m.new_state_ctx("A")
        results: list[bool] = []

        async def waiting() -> None:
            results.append(await helpers.wait(60, ctx))
            await m.when1("B", ctx)
            results.append(ctx.expired)

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiting)
            await anyio.wait_all_tasks_blocked()
            m.remove1("A")
        assert results == [False, True]


# ---------------------------------------------------------------------------
# 11: a thread's mutation never blocks


async def test_thread_mutation_returns_while_a_handler_blocks() -> None:
    returned = threading.Event()
    outcome: list[Any] = []

    def worker(m: am.Machine) -> None:
        outcome.append(m.add1("B"))
        outcome.append(m.when1("B"))
        returned.set()

    class H:
        def AState(self, e: am.Event) -> None:
            # a sync handler waiting for a thread that mutates the machine
            t = threading.Thread(target=worker, args=(e.machine,))
            t.start()
            outcome.append(returned.wait(TIMEOUT))
            t.join()

    async with abcd(handlers=H()) as m:
        m.add1("A")
        assert outcome[0] is am.Result.QUEUED
        assert outcome[2] is True, "the thread's add1 blocked"
        await outcome[1]
        assert m.active_states == ["A", "B"]


async def test_threads_calling_a_disposed_machine_return_at_once() -> None:
    for _ in range(40):
        stop = threading.Event()
        results: list[Any] = []

        def worker(
            m: am.Machine,
            stop: threading.Event = stop,
            results: list[Any] = results,
        ) -> None:
            while not stop.is_set():
                m.add1("A")
                m.remove1("A")
            # after disposal: all neutral, none blocks
            results.append(
                (
                    m.add1("A"),
                    m.eval(lambda: None),
                    m.can_add1("A"),
                    m.new_state_ctx("A").expired,
                    m.when1("B").is_set(),
                )
            )

        m = abcd()
        threads = [threading.Thread(target=worker, args=(m,)) for _ in range(3)]
        async with m:
            for t in threads:
                t.start()
            await anyio.lowlevel.checkpoint()
        stop.set()
        for t in threads:
            t.join(TIMEOUT)  # joined from the loop, as users do
            assert not t.is_alive()
        assert (
            results == [(am.Result.CANCELED, False, am.Result.CANCELED, True, True)] * 3
        )


async def test_eval_from_a_thread_returns_false_when_the_machine_stops() -> None:
    m = abcd()
    entered = threading.Event()
    release = threading.Event()
    out: list[bool] = []

    class H:
        def AState(self, e: am.Event) -> None:
            entered.set()
            release.wait(TIMEOUT)  # the loop is busy; the eval waits
            e.machine.dispose()

    m.bind_handlers(H())

    def worker() -> None:
        entered.wait(TIMEOUT)
        t = threading.Thread(target=lambda: out.append(m.eval(lambda: None)))
        t.start()
        release.set()
        t.join(TIMEOUT)

    async with m:
        th = threading.Thread(target=worker)
        th.start()
        m.add1("A")
    th.join(TIMEOUT)
    assert out == [False]


async def test_a_flooding_thread_waits_for_the_loop_to_catch_up() -> None:
    """Backpressure: the inbox holds at most 10,000 calls; a thread that far
    ahead waits (nothing is dropped, memory stays bounded)."""
    n = 15_000
    count = [0]
    release = threading.Event()

    def flood(m: am.Machine) -> None:
        for _ in range(n):
            m.add1("M")
            count[0] += 1

    class H:
        def AState(self, e: am.Event) -> None:
            t = threading.Thread(target=flood, args=(e.machine,))
            t.start()
            # the loop is busy in this handler: the thread fills the inbox,
            # then waits for room (a fixed join of 0.5 s was too short for
            # 10,000 calls on a loaded machine: the cause of a flake)
            deadline = time.monotonic() + TIMEOUT
            while not e.machine._inbox_full and time.monotonic() < deadline:
                t.join(0.01)
            assert t.is_alive()
            assert e.machine._inbox_full == 1
            assert count[0] == 10_000
            release.set()
            e.machine.fork(None, _join_later, t)

    async def _join_later(t: threading.Thread) -> None:
        await anyio.to_thread.run_sync(t.join)

    m = am.Machine({"A": am.State(), "M": am.State(multi=True)}, handlers=H())
    async with m:
        m.add1("A")
        assert release.is_set()
        await m.when_time1("M", 1 + 2 * (n - 1))
        assert count[0] == n


def _inbox_tasks(m: am.Machine) -> int:
    return sum(t.name == f"{m.id}:inbox" for t in anyio.get_running_tasks())


async def test_the_inbox_task_starts_with_the_first_call_from_outside() -> None:
    """A running machine runs no task of its own until a call comes from
    outside its loop; the first such call starts the inbox task, once."""
    m = abcd()
    async with m:
        await anyio.lowlevel.checkpoint()
        assert _inbox_tasks(m) == 0
        m.add1("A")  # from the loop: inline
        assert _inbox_tasks(m) == 0

        def work() -> None:
            for s in "BCD":
                assert m.add1(s) is am.Result.QUEUED

        await anyio.to_thread.run_sync(work)
        await m.when1("D")
        assert m.is_(["A", "B", "C", "D"])
        assert _inbox_tasks(m) == 1
        await anyio.to_thread.run_sync(m.remove1, "A")
        await m.when_not1("A")
        assert _inbox_tasks(m) == 1
    assert _inbox_tasks(m) == 0


_where: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="")


async def test_calls_from_outside_run_in_the_context_of_async_with() -> None:
    """The loop applies calls from outside in the context variables of the
    task that entered `async with`, not in those of the calling thread."""
    seen: list[str] = []

    class H:
        def AState(self, e: am.Event) -> None:
            seen.append(_where.get())

    m = abcd(handlers=H())
    token = _where.set("async with")
    try:
        async with m:

            def work() -> None:
                _where.set("thread")
                m.add1("A")

            th = threading.Thread(target=work)
            th.start()
            await m.when1("A")
            await anyio.to_thread.run_sync(th.join)
    finally:
        _where.reset(token)
    assert seen == ["async with"]


# ---------------------------------------------------------------------------
# 12: options


@pytest.mark.parametrize("bad", ["x", -1, 0, math.nan, math.inf, True])
def test_bad_handler_timeout_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="handler_timeout"):
        abcd(handler_timeout=bad)
    m = abcd(handler_timeout=0.5)
    with pytest.raises(ValueError, match="handler_timeout"):
        m.handler_timeout = bad
    assert m.handler_timeout == 0.5


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"panic_to_exception": "yes"}, "panic_to_exception"),
        ({"log_stack_trace": 1}, "log_stack_trace"),
        ({"log_level": 9}, "log_level"),
        ({"logger": "stdout"}, "logger"),
        ({"queue_limit": True}, "queue_limit"),
    ],
)
def test_bad_options_are_refused(kw: dict[str, Any], match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        abcd(**kw)


# ---------------------------------------------------------------------------
# the event primitive


async def test_when_event_is_a_plain_event_too() -> None:
    ev = am.WhenEvent()
    assert not ev.is_set() and ev.statistics().tasks_waiting == 0
    woke: list[int] = []

    async def waiter(i: int) -> None:
        await ev.wait()
        woke.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(waiter, i)
        await anyio.wait_all_tasks_blocked()
        assert ev.statistics().tasks_waiting == 3
        ev.set()
        ev.set()  # idempotent
    assert sorted(woke) == [0, 1, 2]
    assert ev.is_set() and ev.statistics().tasks_waiting == 0
    await ev  # a set event is a checkpoint


async def test_when_event_from_a_thread_can_be_waited_in_the_loop_and_there() -> None:
    m = abcd()
    async with m:

        def in_thread() -> tuple[am.WhenEvent, bool]:
            ev = m.when1("C")
            return ev, ev.is_set()

        ev, was_set = await anyio.to_thread.run_sync(in_thread)
        assert was_set is False
        # the loop subscribed it; a loop task waits on it
        async with anyio.create_task_group() as tg:
            tg.start_soon(ev.wait)
            await anyio.wait_all_tasks_blocked()
            assert ev.statistics().tasks_waiting == 1
            m.add1("C")


# every async test gets a deadline
bound_async_tests(globals(), TIMEOUT)
