"""Threads and the loop, against a model (hypothesis).

Two foreign threads and a loop task run random scripts of calls into one
running machine, interleaved by the OS. Each actor owns its own states, so
a sequential model of each actor's script predicts every answer the actor
gets, whatever the interleaving: that checks that each actor's calls apply
in the order it made them, that nothing is lost, and that no wait hangs.
Then a flood: 4 threads x 25,000 mutations, with exact tick sums.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asyncmachine as am
from deadline import bound_async_tests

TIMEOUT = 30
ACTORS = ("L", "T1", "T2")  # the loop task and two threads

OPS = st.sampled_from(
    ["add", "remove", "toggle", "add_multi", "when", "when_not", "ctx", "fork",
     "fork_ctx", "eval", "when_time", "can_add"]
)  # fmt: skip


def schema() -> am.Schema:
    out: dict[str, am.State] = {}
    for a in ACTORS:
        out[f"A{a}"] = am.State()
        out[f"M{a}"] = am.State(multi=True)
    return out


@dataclass
class Report:
    """What one actor saw, checked against its model afterwards."""

    problems: list[str] = field(default_factory=list)
    events: list[tuple[str, am.WhenEvent]] = field(default_factory=list)
    forks: int = 0
    ticks: dict[str, int] = field(default_factory=dict)


class Actor:
    """Runs one actor's calls and checks each answer against its model."""

    def __init__(self, m: am.Machine, name: str, rep: Report) -> None:
        self.m = m
        self.name = name
        self.rep = rep
        self.a, self.mm = f"A{name}", f"M{name}"
        self.model = {self.a: 0, self.mm: 0}
        rep.ticks = self.model

    async def job(self, ctx: am.StateCtx | None) -> None:
        m = self.m
        if ctx is not None and (ctx.expired or m.tick(ctx.state) != ctx.tick):
            self.rep.problems.append(f"{self.name}: a fork started on an expired ctx")
        self.rep.forks += 1

    def _tick(self, state: str, activate: bool | None) -> None:
        """The model: add (True), remove (False) or toggle (None)."""
        on = self.model[state] & 1
        if activate is None or bool(on) != activate:
            self.model[state] += 1

    def step(self, i: int, op: str) -> None:
        m, a, mm, model, rep = self.m, self.a, self.mm, self.model, self.rep
        where = f"{self.name} op {i} {op}"
        res: am.Result | None = None
        if op == "add":
            res = m.add1(a)
            self._tick(a, True)
        elif op == "remove":
            res = m.remove1(a)
            self._tick(a, False)
        elif op == "toggle":
            res = m.toggle1(a)
            self._tick(a, None)
        elif op == "add_multi":
            res = m.add1(mm)
            model[mm] += 2 if model[mm] & 1 else 1
        elif op == "when":
            m.add1(a)
            self._tick(a, True)
            rep.events.append((where, m.when1(a)))
        elif op == "when_not":
            m.remove1(a)
            self._tick(a, False)
            rep.events.append((where, m.when_not1(a)))
        elif op == "when_time":
            rep.events.append((where, m.when_time1(mm, model[mm])))
        elif op == "ctx":
            ctx = m.new_state_ctx(a)
            if ctx.tick != model[a] or ctx.expired:
                rep.problems.append(f"{where}: ctx {ctx.tick} vs model {model[a]}")
        elif op in ("fork", "fork_ctx"):
            fctx = m.new_state_ctx(a) if op == "fork_ctx" else None
            m.fork(fctx, self.job, fctx)
            if fctx is None:
                rep.events.append((where, _fork_marker(m)))
        elif op == "eval":
            seen: dict[str, int] = {}
            ok = m.eval(lambda: seen.update(m.clock([a, mm])))
            if not ok or seen != model:
                rep.problems.append(f"{where}: eval saw {seen}, model {model}")
        elif op == "can_add":
            got = m.can_add1(a)
            if got is not am.Result.EXECUTED:
                rep.problems.append(f"{where}: can_add gave {got!r}")
        else:  # pragma: no cover - the strategy has no other ops
            raise AssertionError(op)
        if res is not None:
            want = am.Result.EXECUTED if m.runs_inline() else am.Result.QUEUED
            if res is not want:
                rep.problems.append(f"{where}: {res!r}, expected {want!r}")


def run_thread(actor: Actor, script: list[str]) -> None:
    for i, op in enumerate(script):
        actor.step(i, op)


def _fork_marker(m: am.Machine) -> am.WhenEvent:
    """An event the loop sets once the tasks forked so far have started."""
    ev = am.WhenEvent()
    m.fork(None, _set_it, ev)
    return ev


async def _set_it(ev: am.WhenEvent) -> None:
    ev.set()


async def drive(backend_scripts: dict[str, list[str]]) -> None:
    m = am.Machine(schema())
    reports = {a: Report() for a in ACTORS}
    async with m:
        async with anyio.create_task_group() as tg:
            for name in ("T1", "T2"):
                actor = Actor(m, name, reports[name])
                tg.start_soon(
                    anyio.to_thread.run_sync, run_thread, actor, backend_scripts[name]
                )
            loop_actor = Actor(m, "L", reports["L"])
            for i, op in enumerate(backend_scripts["L"]):
                loop_actor.step(i, op)
                await anyio.lowlevel.checkpoint()  # let the threads' calls in
        with anyio.fail_after(TIMEOUT):
            for rep in reports.values():
                for _where, ev in rep.events:
                    await ev  # none may hang
            # every call made by now has been applied: a last eval per thread
            await anyio.to_thread.run_sync(m.eval, lambda: None)
        problems = [p for rep in reports.values() for p in rep.problems]
        assert problems == []
        for actor, rep in reports.items():
            for state, tick in rep.ticks.items():
                assert m.tick(state) == tick, (actor, state, str(m))
        total_forks = sum(
            s.count("fork") + s.count("fork_ctx") for s in backend_scripts.values()
        )
        started = sum(rep.forks for rep in reports.values())
        assert started <= total_forks


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=25, deadline=None)
@given(
    scripts=st.fixed_dictionaries(
        {a: st.lists(OPS, max_size=25) for a in ACTORS},
    )
)
def test_threads_and_loop_interleave_against_a_model(
    backend: str, scripts: dict[str, list[str]]
) -> None:
    anyio.run(drive, scripts, backend=backend)


async def test_four_threads_of_25000_mutations_tick_sums_are_exact() -> None:
    n, threads = 25_000, 4
    m = am.Machine({"M": am.State(multi=True), "A": am.State(), "B": am.State()})
    counts: list[dict[str, Any]] = []

    def work(i: int) -> None:
        queued = 0
        for j in range(n):
            if j % 5 == 4:
                res = m.toggle1("A" if i % 2 else "B")
            else:
                res = m.add1("M")
            queued += res is am.Result.QUEUED
        counts.append({"queued": queued})

    async with m:
        async with anyio.create_task_group() as tg:
            for i in range(threads):
                tg.start_soon(anyio.to_thread.run_sync, work, i)
        multi_adds = threads * (n - n // 5)
        with anyio.fail_after(TIMEOUT):
            await m.when_time1("M", 1 + 2 * (multi_adds - 1))
            await anyio.to_thread.run_sync(m.eval, lambda: None)
        assert [c["queued"] for c in counts] == [n] * threads
        assert m.tick("M") == 1 + 2 * (multi_adds - 1)
        toggles = 2 * (n // 5)  # per state: two threads toggle each
        assert m.tick("A") == toggles and m.tick("B") == toggles
        assert not m.is_err()


def test_threads_hold_no_lock_when_the_machine_is_idle() -> None:
    """A machine without a loop belongs to the thread that uses it: calls
    from a thread run inline (there is no inbox to go through)."""
    m = am.Machine(schema())
    out: list[am.Result] = []
    t = threading.Thread(target=lambda: out.append(m.add1("AT1")))
    t.start()
    t.join()
    assert out == [am.Result.EXECUTED]
    assert m.runs_inline()


bound_async_tests(globals(), TIMEOUT)
