"""Handler timeouts (docs/design/semantics.md §8.4, §12.8) and time-based waiting under
trio's MockClock (time-based tests run instantly).

A sync handler that runs longer than `handler_timeout` is handled like a
raise and reported through `Exception` with `am.HandlerTimeoutError`;
async final handlers are exempt. The slow handlers below block on purpose
(`time.sleep` is the slowness under test, not a wait for an effect).
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import trio.testing

import asyncmachine as am

SLOW = 0.03
LIMIT = 0.005


def no_rels(**kw: Any) -> am.Machine:
    return am.Machine({s: am.State() for s in "ABCD"}, **kw)


def run_mock_trio(fn: Any) -> Any:
    """Run `fn` on trio with a MockClock that jumps whenever all tasks wait."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    return anyio.run(fn, backend="trio", backend_options={"clock": clock})


# ---------------------------------------------------------------------------
# handler_timeout


def test_slow_negotiation_handler_times_out() -> None:
    calls: list[str] = []

    class H:
        def AEnter(self, e: am.Event) -> bool:
            time.sleep(SLOW)
            return True

        def AState(self, e: am.Event) -> None:
            calls.append("AState")

    m = no_rels(handler_timeout=LIMIT, handlers=H())
    assert m.add1("A") == am.Result.CANCELED
    assert not m.is1("A")
    assert m.tick("A") == 0
    assert calls == []
    assert m.is_err()
    assert isinstance(m.err, am.HandlerTimeoutError)
    assert isinstance(m.err, TimeoutError)


def test_slow_handler_returning_false_still_counts_as_timeout() -> None:
    class H:
        def AEnter(self, e: am.Event) -> bool:
            time.sleep(SLOW)
            return False

    m = no_rels(handler_timeout=LIMIT, handlers=H())
    assert m.add1("A") == am.Result.CANCELED
    assert isinstance(m.err, am.HandlerTimeoutError)


def test_slow_state_handler_rolls_back_like_a_raise() -> None:
    """§8.4 + §8.3 rule 3: X and the states after X are taken out again."""
    calls: list[str] = []

    class H:
        def BState(self, e: am.Event) -> None:
            time.sleep(SLOW)

        def CState(self, e: am.Event) -> None:
            calls.append("CState")

        def AnyState(self, e: am.Event) -> None:
            calls.append("AnyState " + " ".join(e.transition.called_states))

    m = no_rels(handler_timeout=LIMIT, handlers=H())
    assert m.add(["A", "B", "C"]) == am.Result.CANCELED
    assert m.active_states == ["A", am.EXCEPTION]
    assert m.time(["A", "B", "C"]) == (1, 2, 2)
    # CState and the failed transition's AnyState never ran; the Exception
    # transition that follows has its own AnyState
    assert calls == ["AnyState Exception"]
    assert isinstance(m.err, am.HandlerTimeoutError)


def test_exception_args_of_a_timeout() -> None:
    seen: dict[str, Any] = {}

    class H:
        def AEnter(self, e: am.Event) -> bool:
            time.sleep(SLOW)
            return True

        def ExceptionState(self, e: am.Event) -> None:
            seen.update(e.args)

    m = no_rels(handler_timeout=LIMIT, handlers=H())
    m.add1("A")
    assert isinstance(seen["err"], am.HandlerTimeoutError)
    assert seen["err"] is m.err
    assert "AEnter" in seen["err_trace"]
    assert seen["panic"]["called_states"] == ["A"]


def test_fast_handlers_and_no_timeout_by_default() -> None:
    class H:
        def AEnter(self, e: am.Event) -> bool:
            return True

    m = no_rels(handler_timeout=10.0, handlers=H())
    assert m.add1("A") == am.Result.EXECUTED
    assert not m.is_err()

    class Slow:
        def BEnter(self, e: am.Event) -> bool:
            time.sleep(SLOW)
            return True

    m2 = no_rels(handlers=Slow())  # handler_timeout=None (default)
    assert m2.handler_timeout is None
    assert m2.add1("B") == am.Result.EXECUTED
    assert not m2.is_err()


def test_handler_timeout_is_settable() -> None:
    class H:
        def AEnter(self, e: am.Event) -> bool:
            time.sleep(SLOW)
            return True

    m = no_rels(handlers=H())
    m.handler_timeout = LIMIT
    assert m.add1("A") == am.Result.CANCELED
    assert isinstance(m.err, am.HandlerTimeoutError)


async def test_handler_timeout_reported_in_a_running_machine() -> None:
    class H:
        def AEnter(self, e: am.Event) -> bool:
            time.sleep(SLOW)
            return True

    async with no_rels(handler_timeout=LIMIT, handlers=H()) as m:
        w = m.when_err()
        m.add1("A")
        with anyio.fail_after(2):
            await w
        assert isinstance(m.err, am.HandlerTimeoutError)
        assert not m.is1("A")


async def test_async_final_handlers_are_exempt() -> None:
    done = anyio.Event()

    class H:
        async def AState(self, e: am.Event) -> None:
            await anyio.lowlevel.checkpoint()
            time.sleep(SLOW)  # noqa: ASYNC251 - blocks on purpose: still no timeout
            done.set()

    async with no_rels(handler_timeout=LIMIT, handlers=H()) as m:
        assert m.add1("A") == am.Result.EXECUTED
        with anyio.fail_after(2):
            await done.wait()
        await anyio.lowlevel.checkpoint()
        assert not m.is_err()
        assert m.err is None
        assert m.is1("A")


# ---------------------------------------------------------------------------
# MockClock: time-based waiting, instantly


def test_fail_after_around_a_when_leaves_no_subscription() -> None:
    async def main() -> tuple[float, am.Machine]:
        m = no_rels()
        async with m:
            start = anyio.current_time()
            with pytest.raises(TimeoutError):
                with anyio.fail_after(3600):
                    await m.when1("A")
            took = anyio.current_time() - start
            assert m.pending_waits == 0
            # and the machine still works afterwards
            ev = m.when1("A")
            m.add1("A")
            assert ev.is_set()
        return took, m

    wall = time.perf_counter()
    took, m = run_mock_trio(main)
    assert took >= 3600  # virtual time
    assert time.perf_counter() - wall < 5
    assert m.disposed


def test_async_handler_with_a_long_sleep_completes() -> None:
    """The manual's worker example with an hour of (virtual) work."""

    class Worker:
        async def WorkingState(self, e: am.Event) -> None:
            await anyio.sleep(3600)
            e.machine.add1("Done")

    async def main() -> list[str]:
        schema = {
            "Working": am.State(remove=["Done"]),
            "Done": am.State(remove=["Working"]),
        }
        async with am.Machine(schema, handlers=Worker()) as mach:
            done = mach.when1("Done")
            mach.add1("Working")
            await done
            return mach.active_states

    assert run_mock_trio(main) == ["Done"]


def test_long_sleeping_handler_cancelled_by_state_change() -> None:
    """A removal before the deadline cancels the sleeper; Done never comes."""

    class Worker:
        async def WorkingState(self, e: am.Event) -> None:
            await anyio.sleep(3600)
            e.machine.add1("Done")

    async def main() -> tuple[list[str], bool]:
        schema = {"Working": am.State(), "Done": am.State(), "Stop": am.State()}

        async def stopper(m: am.Machine) -> None:
            await anyio.sleep(60)
            m.remove1("Working")

        async with am.Machine(schema, handlers=Worker()) as m:
            m.add1("Working")
            m.fork(None, stopper, m)
            with anyio.move_on_after(7200) as scope:
                await m.when1("Done")
            return m.active_states, scope.cancelled_caught

    active, timed_out = run_mock_trio(main)
    assert active == []
    assert timed_out, "Done never came"


def test_ctx_wait_with_deadline() -> None:
    async def main() -> list[str]:
        out: list[str] = []
        m = no_rels()
        async with m:
            m.add1("A")
            ctx = m.new_state_ctx("A")
            with anyio.move_on_after(10):
                await ctx.wait()
            out.append(f"expired={ctx.expired}")

            async def later() -> None:
                await anyio.sleep(5)
                m.remove1("A")

            m.fork(None, later)
            with anyio.fail_after(10):
                await ctx.wait()
            out.append(f"expired={ctx.expired} at={anyio.current_time():.0f}")
        return out

    assert run_mock_trio(main) == ["expired=False", "expired=True at=15"]


@pytest.mark.one_backend
@pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}))],
)
async def test_when_ticks_with_a_periodic_ticker(anyio_backend: Any) -> None:
    """A forked ticker adds a Multi state every minute of virtual time."""
    m = am.Machine({"Tick": am.State(multi=True)})
    async with m:

        async def ticker() -> None:
            while True:
                await anyio.sleep(60)
                m.add1("Tick")

        start = anyio.current_time()
        m.fork(None, ticker)
        await m.when_ticks("Tick", 1)
        await m.when_time1("Tick", 19)  # 10 adds: 1 + 2 * 9
        assert m.tick("Tick") == 19
        assert anyio.current_time() - start == pytest.approx(600)
