"""Forks, async final handlers' errors, and the `async with` lifecycle
(the manual's "Machine" and "Handlers"; docs/design/semantics.md §5.6, §8,
§10.1; the anyio traps listed in docs/testing.md).
"""

from __future__ import annotations

import gc
import warnings
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


def all_subs_gone(m: am.Machine) -> bool:
    return m.pending_waits == 0


class Boom(Exception):
    pass


# ---------------------------------------------------------------------------
# fork


async def test_fork_runs_with_args_in_the_machine_task_group() -> None:
    got: list[Any] = []
    done = anyio.Event()

    async def job(a: int, b: str) -> None:
        await anyio.lowlevel.checkpoint()
        got.append((a, b))
        done.set()

    async with no_rels() as m:
        assert m.running
        m.fork(None, job, 1, "x")
        with anyio.fail_after(TIMEOUT):
            await done.wait()
    assert got == [(1, "x")]
    assert not m.running


async def test_fork_error_becomes_mach_err_unwrapped() -> None:
    err = Boom("in fork")

    async def job() -> None:
        await anyio.lowlevel.checkpoint()
        raise err

    async with no_rels() as m:
        w = m.when_err()
        m.fork(None, job)
        with anyio.fail_after(TIMEOUT):
            await w
        assert m.err is err
        assert m.is_err()


async def test_fork_error_from_a_nested_task_group_is_unwrapped() -> None:
    err = Boom("deep")

    async def child() -> None:
        await anyio.lowlevel.checkpoint()
        raise err

    async def job() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
            await anyio.sleep_forever()

    async with no_rels(["A"]) as m:
        w = m.when_err()
        m.fork(m.new_state_ctx("A"), job)
        with anyio.fail_after(TIMEOUT):
            await w
        assert m.err is err, repr(m.err)
        assert not isinstance(m.err, BaseExceptionGroup)
        assert m.is1("A")


async def test_fork_error_args_carry_the_error() -> None:
    seen: dict[str, Any] = {}
    err = Boom("x")

    class H:
        def ExceptionState(self, e: am.Event) -> None:
            seen["err"] = e.args.get("err")

    async def job() -> None:
        raise err

    async with no_rels(handlers=H()) as m:
        w = m.when_err()
        m.fork(None, job)
        with anyio.fail_after(TIMEOUT):
            await w
    assert seen["err"] is err


async def test_fork_outside_async_with_raises() -> None:
    m = no_rels()

    async def job() -> None:
        await anyio.lowlevel.checkpoint()

    with pytest.raises(RuntimeError):
        m.fork(None, job)
    assert not m.is_err()


async def test_fork_after_dispose_raises_disposed() -> None:
    async def job() -> None:
        await anyio.lowlevel.checkpoint()

    m = no_rels()
    async with m:
        m.fork(None, job)
    with pytest.raises(am.MachineDisposedError):
        m.fork(None, job)

    m2 = no_rels()
    m2.dispose()
    with pytest.raises(am.MachineDisposedError):
        m2.fork(None, job)


async def test_fork_after_dispose_inside_the_block_raises() -> None:
    async def job() -> None:
        await anyio.lowlevel.checkpoint()

    m = no_rels()
    raised: list[type[BaseException]] = []
    async with m:
        m.dispose()
        try:
            m.fork(None, job)
        except am.MachineDisposedError as exc:
            raised.append(type(exc))
    assert raised == [am.MachineDisposedError]


# ---------------------------------------------------------------------------
# async final handlers: errors


async def test_async_state_handler_error_becomes_mach_err() -> None:
    err = Boom("AState")

    class H:
        async def AState(self, e: am.Event) -> None:
            await anyio.lowlevel.checkpoint()
            raise err

    async with no_rels(handlers=H()) as m:
        w = m.when_err()
        assert m.add1("A") == am.Result.EXECUTED
        with anyio.fail_after(TIMEOUT):
            await w
        assert m.err is err
        # the finished transition is not rolled back (§5.6)
        assert m.active_states == ["A", am.EXCEPTION]


async def test_async_handler_group_error_is_unwrapped() -> None:
    err = Boom("grouped")

    async def fail() -> None:
        raise err

    class H:
        async def AState(self, e: am.Event) -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(fail)
                await anyio.sleep_forever()

    async with no_rels(handlers=H()) as m:
        w = m.when_err()
        m.add1("A")
        with anyio.fail_after(TIMEOUT):
            await w
        assert m.err is err, repr(m.err)


async def test_async_any_state_and_end_errors_become_mach_err() -> None:
    errs = [Boom("AnyState"), Boom("AEnd")]

    class H:
        async def AnyState(self, e: am.Event) -> None:
            if e.transition.called_states == ["B"]:
                raise errs[0]

        async def AEnd(self, e: am.Event) -> None:
            raise errs[1]

    async with no_rels(handlers=H()) as m:
        m.add1("A")
        w = m.when_err()
        m.add1("B")
        with anyio.fail_after(TIMEOUT):
            await w
        assert m.err is errs[0]
        m.remove1(am.EXCEPTION)
        w = m.when_err()
        m.remove1("A")
        with anyio.fail_after(TIMEOUT):
            await w
        assert m.err is errs[1]


def test_async_handler_without_async_with_is_a_runtime_error() -> None:
    """§5.6: not running -> reported as a handler error (§8.3) with a
    RuntimeError; `XState` raising rolls X back (§8.3 rule 3)."""
    calls: list[str] = []

    class H:
        async def AState(self, e: am.Event) -> None:
            calls.append("AState")  # never started

    m = no_rels(handlers=H())
    assert m.add1("A") == am.Result.CANCELED
    assert isinstance(m.err, RuntimeError)
    assert m.is_err()
    assert not m.is1("A")
    assert m.tick("A") == 2
    assert calls == []


async def test_async_handler_on_a_machine_not_entered_inside_a_loop() -> None:
    class H:
        async def AnyState(self, e: am.Event) -> None:
            await anyio.lowlevel.checkpoint()

    m = no_rels(handlers=H())
    m.add1("A")
    assert isinstance(m.err, RuntimeError)
    assert m.is_err()
    assert m.is1("A"), "AnyState raising does not roll back (§8.3 rule 4)"


def test_async_handler_after_leaving_async_with_does_not_run() -> None:
    calls: list[str] = []

    class H:
        async def AState(self, e: am.Event) -> None:
            calls.append("AState")

    async def main() -> am.Machine:
        m = no_rels(handlers=H())
        async with m:
            pass
        return m

    m = anyio.run(main)
    assert m.add1("A") == am.Result.CANCELED
    assert calls == []


# ---------------------------------------------------------------------------
# `async with` lifecycle


async def test_leaving_normally_disposes_cancels_and_wakes() -> None:
    cancelled = anyio.Event()
    started = anyio.Event()
    woke: list[bool] = []

    async def job() -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    m = no_rels()
    async with anyio.create_task_group() as outside, m as entered:
        assert entered is m
        ev = m.when1("A")
        ev_q = m.when_query(lambda c: False)
        disposed = m.when_disposed()
        waiting = anyio.Event()

        async def waiter() -> None:
            waiting.set()
            await ev
            woke.append(m.is1("A"))

        outside.start_soon(waiter)
        await waiting.wait()
        m.fork(None, job)
        await started.wait()
    assert m.disposed
    assert not m.running
    assert cancelled.is_set()
    assert ev.is_set()
    assert ev_q.is_set()
    assert disposed.is_set()
    assert woke == [False], "woken by disposal, not by A"
    assert all_subs_gone(m)
    assert m.add1("A") == am.Result.CANCELED


async def test_leaving_by_error_propagates_it_unwrapped() -> None:
    err = Boom("user")
    cancelled = anyio.Event()
    started = anyio.Event()

    async def job() -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    m = no_rels()
    with pytest.raises(Boom) as info:
        async with m:
            ev = m.when1("A")
            m.fork(None, job)
            await started.wait()
            raise err
    assert info.value is err
    assert info.type is Boom, "not an ExceptionGroup"
    assert m.disposed
    assert cancelled.is_set()
    assert ev.is_set()
    assert m.err is None, "the user's error is not the machine's"


async def test_leaving_by_error_before_any_await() -> None:
    m = no_rels()
    with pytest.raises(KeyError):
        async with m:
            raise KeyError("k")
    assert m.disposed


async def test_leaving_by_error_with_a_failing_fork_pending() -> None:
    """Only the user's error comes out; the fork's would-be error is moot."""
    m = no_rels()

    async def job() -> None:
        await anyio.lowlevel.checkpoint()
        raise Boom("fork")

    with pytest.raises(ValueError, match="user"):
        async with m:
            m.fork(None, job)
            raise ValueError("user")
    assert m.disposed


async def test_outer_cancel_scope_cancels_cleanly() -> None:
    cancelled = anyio.Event()
    started = anyio.Event()
    reached: list[str] = []

    async def job() -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    m = no_rels()
    with anyio.CancelScope() as outer:
        async with m:
            ev = m.when1("A")
            m.fork(None, job)
            await started.wait()
            outer.cancel()
            await anyio.sleep_forever()
            reached.append("block")
        await anyio.lowlevel.checkpoint()
        reached.append("after")
    assert outer.cancelled_caught
    assert reached == []
    assert m.disposed
    assert cancelled.is_set()
    assert ev.is_set()
    assert m.err is None


async def test_outer_deadline_around_async_with() -> None:
    m = no_rels()
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.01):
            async with m:
                await m.when1("A")
    assert m.disposed


async def test_dispose_inside_the_block_cancels_the_rest_of_it() -> None:
    m = no_rels()
    reached: list[str] = []
    async with m:
        m.dispose()
        reached.append("sync part")
        await anyio.lowlevel.checkpoint()
        reached.append("after await")
    assert reached == ["sync part"]
    assert m.disposed


async def test_dispose_from_a_handler_inside_the_block() -> None:
    class H:
        def AState(self, e: am.Event) -> None:
            e.machine.dispose()

    m = no_rels(handlers=H())
    reached: list[str] = []
    async with m:
        ev = m.when1("B")
        m.add1("A")
        await anyio.lowlevel.checkpoint()
        reached.append("after await")
    assert reached == []
    assert m.disposed
    assert ev.is_set()


async def test_entering_a_disposed_machine_raises() -> None:
    m = no_rels()
    m.dispose()
    with pytest.raises(am.MachineDisposedError):
        async with m:
            pass

    m2 = no_rels()
    async with m2:
        pass
    with pytest.raises(am.MachineDisposedError):
        async with m2:
            pass


async def test_async_with_constructor_form() -> None:
    async with am.Machine({"A": am.State()}) as m:
        m.add1("A")
        await m.when1("A")
    assert m.disposed


def test_no_warnings_leak_from_a_full_lifecycle() -> None:
    """Streams closed, coroutines awaited, no ResourceWarning at gc."""

    class H:
        async def AState(self, e: am.Event) -> None:
            await anyio.sleep_forever()

    async def main() -> None:
        m = no_rels(handlers=H())
        async with m:
            m.add1("A")
            m.fork(m.new_state_ctx("A"), anyio.sleep_forever)
            await anyio.to_thread.run_sync(m.add1, "B")
            await m.when1("B")
            with anyio.move_on_after(0):
                await m.when1("C")
        m2 = no_rels()
        with pytest.raises(Boom):
            async with m2:
                raise Boom

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for backend in ("asyncio", "trio"):
            anyio.run(main, backend=backend)
        gc.collect()
    assert [str(w.message) for w in caught] == []


# every async test gets a deadline
bound_async_tests(globals(), TIMEOUT)
