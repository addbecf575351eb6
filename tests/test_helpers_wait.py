"""asyncmachine.helpers: waiting on several events, `wait`, `interval`,
`group_when1` (Go: amhelp.WaitForAll, WaitForAny, WaitForErrAll, Wait,
Interval, GroupWhen1). Time-based tests run on trio's MockClock."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio.testing

import asyncmachine as am
import asyncmachine.helpers as amhelp
from deadline import bound_async_tests

TIMEOUT = 10


def mach(**kw: Any) -> am.Machine:
    return am.Machine({s: am.State() for s in ("A", "B", "C", "Err")}, **kw)


def run_mock_trio(fn: Any) -> Any:
    clock = trio.testing.MockClock(autojump_threshold=0)
    return anyio.run(fn, backend="trio", backend_options={"clock": clock})


# ---------------------------------------------------------------- wait_for_all


async def test_wait_for_all_already_set_returns_at_once() -> None:
    m = mach()
    m.add(["A", "B"])
    assert await amhelp.wait_for_all(m.when1("A"), m.when1("B")) is True
    assert await amhelp.wait_for_all() is True


async def test_wait_for_all_waits_for_every_event() -> None:
    async with mach() as m:
        done: list[bool] = []

        async def waiter() -> None:
            done.append(await amhelp.wait_for_all(m.when1("A"), m.when1("B")))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            m.add1("A")
            await anyio.wait_all_tasks_blocked()
            assert done == []
            m.add1("B")
        assert done == [True]
        # the subscriptions are gone
        assert m.pending_waits == 0


async def test_wait_for_all_accepts_anyio_events() -> None:
    ev = anyio.Event()
    async with anyio.create_task_group() as tg:
        out: list[bool] = []

        async def waiter() -> None:
            out.append(await amhelp.wait_for_all(ev))

        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        ev.set()
    assert out == [True]


async def test_wait_for_all_ctx_expiry_returns_false() -> None:
    async with mach() as m:
        m.add1("C")
        ctx = m.new_state_ctx("C")
        out: list[bool] = []

        async def waiter() -> None:
            out.append(await amhelp.wait_for_all(m.when1("A"), ctx=ctx))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            m.remove1("C")
        assert out == [False]
        assert not m.is1("A")
        # an expired ctx returns False at once, unless all are set
        assert await amhelp.wait_for_all(m.when1("A"), ctx=ctx) is False
        m.add1("A")
        assert await amhelp.wait_for_all(m.when1("A"), ctx=ctx) is True
        assert m.pending_waits == 0


async def test_wait_for_all_deadline_by_fail_after() -> None:
    async with mach() as m:
        with pytest.raises(TimeoutError), anyio.fail_after(0.01):
            await amhelp.wait_for_all(m.when1("A"))
        assert m.pending_waits == 0


def test_wait_for_all_timeout_on_mock_clock() -> None:
    async def main() -> float:
        async with mach() as m:
            start = anyio.current_time()
            with pytest.raises(TimeoutError), anyio.fail_after(3600):
                await amhelp.wait_for_all(m.when1("A"), m.when1("B"))
            return anyio.current_time() - start

    assert run_mock_trio(main) == pytest.approx(3600)


async def test_wait_for_all_bad_input() -> None:
    m = mach()
    with pytest.raises(TypeError, match="when-events"):
        await amhelp.wait_for_all(m.when1("A"), "B")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="state context"):
        await amhelp.wait_for_all(m.when1("A"), ctx=object())  # type: ignore[arg-type]


# ---------------------------------------------------------------- wait_for_any


async def test_wait_for_any_first_event_wins() -> None:
    async with mach() as m:
        out: list[bool] = []

        async def waiter() -> None:
            out.append(await amhelp.wait_for_any(m.when1("A"), m.when1("B")))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            m.add1("B")
        assert out == [True]
        assert not m.is1("A")
        # the other waiter's subscription was dropped
        assert m.pending_waits == 0


async def test_wait_for_any_already_set_and_ctx() -> None:
    async with mach() as m:
        m.add1("A")
        assert await amhelp.wait_for_any(m.when1("A"), m.when1("B")) is True
        ctx = m.new_state_ctx("A")
        out: list[bool] = []

        async def waiter() -> None:
            out.append(await amhelp.wait_for_any(m.when1("B"), m.when1("C"), ctx=ctx))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            m.remove1("A")
        assert out == [False]
        with pytest.raises(ValueError, match="at least one"):
            await amhelp.wait_for_any()


# ------------------------------------------------------------ wait_for_err_*


async def test_wait_for_err_all_raises_when_exception_activates() -> None:
    async with mach() as m:
        out: list[object] = []

        async def waiter() -> None:
            try:
                await amhelp.wait_for_err_all(m, m.when1("A"), m.when1("B"))
            except amhelp.ExceptionStateError as exc:
                out.append(exc)

        boom = ValueError("boom")
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            m.add1("A")
            m.add_err(boom)
            m.remove1("Exception")  # handled at once: still reported
        assert len(out) == 1
        exc = out[0]
        assert isinstance(exc, amhelp.ExceptionStateError)
        assert exc.err is boom and exc.__cause__ is boom
        assert exc.machine_id == m.id and "boom" in str(exc)


async def test_wait_for_err_all_success_and_active_exception() -> None:
    async with mach() as m:
        out: list[bool] = []

        async def waiter() -> None:
            out.append(await amhelp.wait_for_err_all(m, m.when1("A")))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            m.add1("A")
        assert out == [True]
        # Exception already active and the events not set: fails at once
        m.add_err(KeyError("k"))
        with pytest.raises(amhelp.ExceptionStateError):
            await amhelp.wait_for_err_all(m, m.when1("B"))
        # all set already: success wins
        assert await amhelp.wait_for_err_all(m, m.when1("A")) is True


async def test_wait_for_err_any() -> None:
    async with mach() as m:
        out: list[object] = []

        async def waiter() -> None:
            try:
                out.append(await amhelp.wait_for_err_any(m, m.when1("A"), m.when1("B")))
            except amhelp.ExceptionStateError as exc:
                out.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            m.add1("B")
        assert out == [True]
        m.remove1("B")
        out.clear()
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            m.add_err(OSError("x"))
        assert len(out) == 1 and isinstance(out[0], amhelp.ExceptionStateError)
        with pytest.raises(ValueError, match="at least one"):
            await amhelp.wait_for_err_any(m)
        with pytest.raises(TypeError, match="Machine"):
            await amhelp.wait_for_err_all(object(), m.when1("A"))  # type: ignore[arg-type]


async def test_wait_for_err_all_disposal_is_not_an_error() -> None:
    m = mach()
    out: list[object] = []

    async def waiter() -> None:
        out.append(await amhelp.wait_for_err_all(m, m.when1("A")))

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        m.dispose()
    # disposal sets every pending event (docs/design/semantics.md §10.1): no error raised
    assert out == [True]


# ------------------------------------------------------------------- wait


def test_wait_sleeps_or_returns_early_on_ctx() -> None:
    async def main() -> list[object]:
        out: list[object] = []
        async with mach() as m:
            start = anyio.current_time()
            out.append(await amhelp.wait(30))
            out.append(anyio.current_time() - start)
            m.add1("A")
            ctx = m.new_state_ctx("A")

            async def later() -> None:
                await anyio.sleep(5)
                m.remove1("A")

            m.fork(None, later)
            start = anyio.current_time()
            out.append(await amhelp.wait(3600, ctx))
            out.append(anyio.current_time() - start)
            out.append(await amhelp.wait(1, ctx))  # expired already
        return out

    assert run_mock_trio(main) == [True, 30, False, 5, False]


async def test_wait_with_live_ctx_returns_true() -> None:
    m = mach()
    m.add1("A")
    assert await amhelp.wait(0, m.new_state_ctx("A")) is True


# --------------------------------------------------------------- interval


def test_interval_until_duration() -> None:
    async def main() -> list[float]:
        calls: list[float] = []
        start = anyio.current_time()

        def fn() -> None:
            calls.append(anyio.current_time() - start)

        assert await amhelp.interval(fn, 10, duration=35) is True
        return calls

    assert run_mock_trio(main) == [10, 20, 30]


def test_interval_stopped_by_fn_and_async_fn() -> None:
    async def main() -> list[int]:
        calls: list[int] = []

        async def fn() -> bool:
            calls.append(len(calls))
            return len(calls) < 3

        assert await amhelp.interval(fn, 1) is True
        return calls

    assert run_mock_trio(main) == [0, 1, 2]


def test_interval_ctx_expiry() -> None:
    async def main() -> tuple[bool, int, bool]:
        calls: list[int] = []
        async with mach() as m:
            m.add1("A")
            ctx = m.new_state_ctx("A")

            async def later() -> None:
                await anyio.sleep(25)
                m.remove1("A")

            m.fork(None, later)
            res = await amhelp.interval(lambda: calls.append(1), 10, ctx=ctx)
            again = await amhelp.interval(lambda: None, 10, ctx=ctx)
        return res, len(calls), again

    assert run_mock_trio(main) == (False, 2, False)


async def test_interval_bad_period() -> None:
    with pytest.raises(ValueError, match="positive"):
        await amhelp.interval(lambda: None, 0)


# ------------------------------------------------------------- group_when1


async def test_group_when1() -> None:
    async with mach(id="m1") as m1, mach(id="m2") as m2:
        events = amhelp.group_when1([m1, m2], "A")
        assert len(events) == 2
        m1.add1("A")
        assert events[0].is_set() and not events[1].is_set()
        m2.add1("A")
        assert await amhelp.wait_for_all(*events) is True
        other = am.Machine({"X": am.State()}, id="other")
        with pytest.raises(am.StateNameError, match="other"):
            amhelp.group_when1([m1, other], "A")


bound_async_tests(globals(), TIMEOUT)
