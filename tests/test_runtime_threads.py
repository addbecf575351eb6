"""Threads and eval (the manual's "Threads",
docs/design/semantics.md §10.4).

Mutations made from a foreign thread into a running machine go through
its inbox stream and return `Result.QUEUED`; none may be lost. `eval` from
a thread runs `fn` in the loop, between transitions, and returns True.
Ports of the Go tests `TestEval`, `TestEvalNested`, `TestEvalNestedHandlers`.

Tick arithmetic: the first add of an inactive Multi state ticks +1, every
later add while it is active +2; a plain add/remove pair ticks +2.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

import asyncmachine as am
from deadline import bound_async_tests

#: a safety net against hangs
TIMEOUT = 10


def schema() -> dict[str, am.State]:
    return {
        "A": am.State(),
        "B": am.State(),
        "M": am.State(multi=True),
        "N": am.State(multi=True),
    }


def no_rels(initial: list[str] | None = None, **kw: Any) -> am.Machine:
    m = am.Machine({s: am.State() for s in "ABCD"}, **kw)
    if initial:
        m.set(initial)
    return m


# ---------------------------------------------------------------------------
# eval (Go ports)


def test_eval_go() -> None:
    """Go: TestEval."""
    m = no_rels()
    box = {"a": 0}

    def fn() -> None:
        box["a"] = 1

    assert m.eval(fn, source="test_eval_go") is True
    assert box["a"] == 1


def test_eval_nested_go() -> None:
    """Go: TestEvalNested — a nested eval returns False, no Exception."""
    m = no_rels()
    box: dict[str, Any] = {"a": 0}

    def inner() -> None:
        box["a"] += 1

    def outer() -> None:
        box["a"] += 1
        box["nested"] = m.eval(inner, source="nested")

    assert m.eval(outer, source="outer") is True, "outer eval should be true"
    assert box["nested"] is False, "nested eval should be false"
    assert box["a"] == 1
    assert not m.is_err()


async def test_eval_nested_handlers_go() -> None:
    """Go: TestEvalNestedHandlers — eval from a handler fails with an
    Exception; eval from a task forked by the handler runs."""
    box: dict[str, Any] = {"a": 0}
    done = anyio.Event()

    def bump() -> None:
        box["a"] += 1

    class H:
        def AState(self, e: am.Event) -> None:
            mach = e.machine
            box["direct"] = mach.eval(bump, source="direct")

            async def forked() -> None:
                box["forked"] = mach.eval(bump, source="forked")
                done.set()

            mach.fork(None, forked)

    async with no_rels(handlers=H()) as m:
        m.add1("A")
        with anyio.fail_after(TIMEOUT):
            await done.wait()
        assert box["direct"] is False, "direct eval should be false"
        assert box["forked"] is True, "forked eval should be true"
        assert box["a"] == 1
        assert m.is_err()
        assert isinstance(m.err, am.NestedEvalError)


def test_eval_expired_ctx_or_disposed_returns_false() -> None:
    m = no_rels(["A"])
    ctx = m.new_state_ctx("A")
    m.remove1("A")
    ran: list[int] = []
    assert m.eval(lambda: ran.append(1), ctx=ctx) is False
    m.dispose()
    assert m.eval(lambda: ran.append(2)) is False
    assert ran == []


def test_eval_error_propagates_to_the_caller() -> None:
    m = no_rels()

    def fn() -> None:
        raise KeyError("from eval")

    with pytest.raises(KeyError):
        m.eval(fn)
    assert not m.is_err()
    assert m.add1("A") == am.Result.EXECUTED  # the machine still works


def test_eval_mutations_are_queued_and_run_after() -> None:
    m = no_rels()
    seen: list[Any] = []

    def fn() -> None:
        seen.append(m.add1("A"))
        seen.append(m.is1("A"))

    assert m.eval(fn) is True
    assert seen == [am.Result.QUEUED, False]
    assert m.is1("A")


# ---------------------------------------------------------------------------
# mutations from threads


async def test_thread_add1_multi_500_loses_none() -> None:
    n = 500
    m = am.Machine(schema())
    async with m:

        def work() -> list[am.Result]:
            return [m.add1("M") for _ in range(n)]

        results = await anyio.to_thread.run_sync(work)
        assert set(results) == {am.Result.QUEUED}
        expected = 1 + 2 * (n - 1)
        with anyio.fail_after(TIMEOUT):
            await m.when_time1("M", expected)
        assert m.tick("M") == expected
        assert not m.is_err()


async def test_thread_adds_and_removes_mixed_lose_none() -> None:
    rounds = 250
    m = am.Machine(schema())
    async with m:

        def work() -> set[am.Result]:
            out: set[am.Result] = set()
            for _ in range(rounds):
                out.add(m.add1("A"))
                out.add(m.add(["M", "N"]))
                out.add(m.remove1("A"))
                out.add(m.remove1("N"))
            return out

        results = await anyio.to_thread.run_sync(work)
        assert results == {am.Result.QUEUED}
        with anyio.fail_after(TIMEOUT):
            await m.when_time(["A", "M", "N"], [2 * rounds, 2 * rounds - 1, 2 * rounds])
        # A: +1 +1 per round; M: 1, then +2 per add; N: +1 +1 per round
        assert m.time(["A", "M", "N"]) == (2 * rounds, 2 * rounds - 1, 2 * rounds)
        assert m.active_states == ["M"]


async def test_several_threads_at_once_lose_none() -> None:
    threads, n = 4, 150
    m = am.Machine(schema())
    async with m:

        def work() -> None:
            for _ in range(n):
                assert m.add1("M") == am.Result.QUEUED

        async with anyio.create_task_group() as tg:
            for _ in range(threads):
                tg.start_soon(anyio.to_thread.run_sync, work)
        expected = 1 + 2 * (threads * n - 1)
        with anyio.fail_after(TIMEOUT):
            await m.when_time1("M", expected)
        assert m.tick("M") == expected


async def test_thread_mutations_keep_their_order() -> None:
    m = am.Machine(schema())
    async with m:

        def work() -> None:
            for i in range(100):
                m.set(["A"] if i % 2 else ["B"])
            m.set(["B", "N"])

        await anyio.to_thread.run_sync(work)
        with anyio.fail_after(TIMEOUT):
            await m.when1("N")
        assert m.active_states == ["B", "N"]
        assert m.tick("A") == 100  # 50 activations, 50 deactivations


async def test_every_mutation_kind_from_a_thread_is_queued() -> None:
    m = am.Machine(schema())
    async with m:

        def work() -> list[am.Result]:
            return [
                m.add1("A"),
                m.add(["B"]),
                m.remove1("B"),
                m.remove(["A"]),
                m.set(["A", "M"]),
                m.toggle1("B"),
                m.toggle(["B"]),
                m.add_err(ValueError("from thread")),
                m.add_err_state("A", ValueError("again")),
            ]

        results = await anyio.to_thread.run_sync(work)
        assert results == [am.Result.QUEUED] * len(results)
        with anyio.fail_after(TIMEOUT):
            await m.when_time1(am.EXCEPTION, 3)
        assert m.is_(["A", "M", am.EXCEPTION])


async def test_unknown_name_from_a_thread_raises_there() -> None:
    m = am.Machine(schema())
    async with m:
        with pytest.raises(am.StateNameError):
            await anyio.to_thread.run_sync(m.add1, "Nope")
        with pytest.raises(am.StateNameError):
            await anyio.to_thread.run_sync(m.when1, "Nope")


async def test_handlers_of_thread_mutations_run_in_the_loop_thread() -> None:
    threads: list[int] = []

    class H:
        def AState(self, e: am.Event) -> None:
            threads.append(threading.get_ident())

    async with no_rels(handlers=H()) as m:
        loop_thread = threading.get_ident()
        await anyio.to_thread.run_sync(m.add1, "A")
        with anyio.fail_after(TIMEOUT):
            await m.when1("A")
        assert threads == [loop_thread]


async def test_when_and_ctx_and_fork_from_a_thread() -> None:
    done = anyio.Event()
    got: list[int] = []

    async def job(x: int) -> None:
        got.append(x)
        done.set()

    m = no_rels()
    async with m:

        def work() -> tuple[am.WhenEvent, am.StateCtx]:
            ev = m.when1("A")
            ctx = m.new_state_ctx("B")
            m.fork(None, job, 7)
            return ev, ctx

        ev, ctx = await anyio.to_thread.run_sync(work)
        assert not ev.is_set()
        assert not ctx.expired
        with anyio.fail_after(TIMEOUT):
            await done.wait()
        assert got == [7]
        m.add(["A", "B"])
        assert ev.is_set()
        assert ctx.expired


async def test_dispose_from_a_thread() -> None:
    m = no_rels()
    ev = m.when1("A")
    async with m:
        await anyio.to_thread.run_sync(m.dispose)
        await m.when_disposed()
        await anyio.sleep_forever()  # the machine's cancellation ends the block
    assert m.disposed
    assert ev.is_set()


# ---------------------------------------------------------------------------
# eval from threads


async def test_eval_from_a_thread_runs_in_the_loop_and_returns_true() -> None:
    m = no_rels()
    seen: dict[str, Any] = {}
    async with m:
        loop_thread = threading.get_ident()

        def fn() -> None:
            seen["thread"] = threading.get_ident()
            seen["tx"] = m.transition
            seen["add"] = m.add1("A")

        def work() -> bool:
            seen["worker"] = threading.get_ident()
            return m.eval(fn, source="thread")

        ok = await anyio.to_thread.run_sync(work)
        assert ok is True
        assert seen["thread"] == loop_thread
        assert seen["worker"] != loop_thread
        assert seen["tx"] is None, "between transitions"
        assert seen["add"] == am.Result.QUEUED
        assert m.is1("A"), "mutations queued by fn ran before eval returned"


async def test_eval_from_a_thread_is_serialized_with_hammering() -> None:
    """Evals interleaved with a thread's mutations never see a transition
    half-done; every mutation still lands."""
    n, evals = 400, 60
    m = am.Machine(schema())
    bad: list[str] = []

    class H:
        def MState(self, e: am.Event) -> None:
            e.machine.add1("N")  # queued: a multi-step queue per add

    m.bind_handlers(H())
    async with m:

        def probe() -> None:
            if m.transition is not None:
                bad.append("inside a transition")
            if m.queue_len:
                bad.append("queue not drained")

        def hammer() -> None:
            for _ in range(n):
                m.add1("M")

        def evaluator() -> list[bool]:
            return [m.eval(probe, source="probe") for _ in range(evals)]

        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, hammer)
            results = await anyio.to_thread.run_sync(evaluator)
        assert results == [True] * evals
        expected = 1 + 2 * (n - 1)
        with anyio.fail_after(TIMEOUT):
            await m.when_time(["M", "N"], [expected, expected])
        assert bad == []


async def test_eval_from_a_thread_on_a_disposed_machine_is_false() -> None:
    m = no_rels()
    async with m:
        pass
    ran: list[int] = []
    ok = await anyio.to_thread.run_sync(m.eval, lambda: ran.append(1))
    assert ok is False
    assert ran == []


async def test_eval_from_a_thread_sees_that_threads_earlier_mutations() -> None:
    """§10.4: eval runs in the machine's serialised queue, so it comes after
    the mutations the same thread queued before it (program order), even
    while other threads keep the inbox busy."""
    rounds, per_round = 20, 10
    m = am.Machine(schema())
    stale: list[tuple[int, int]] = []
    stop = threading.Event()
    async with m:

        def noise() -> None:
            while not stop.is_set():
                m.add1("N")

        def work() -> None:
            try:
                for r in range(rounds):
                    for _ in range(per_round):
                        m.add1("M")
                    seen: list[int] = []

                    def probe(seen: list[int] = seen) -> None:
                        seen.append(m.tick("M"))

                    assert m.eval(probe) is True
                    expected = 1 + 2 * (per_round * (r + 1) - 1)
                    if seen[0] != expected:
                        stale.append((seen[0], expected))
            finally:
                stop.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, noise)
            tg.start_soon(anyio.to_thread.run_sync, noise)
            await anyio.to_thread.run_sync(work)
        assert stale == [], f"eval saw M's tick before its own adds: {stale[:5]}"


# every async test gets a deadline
bound_async_tests(globals(), TIMEOUT)
