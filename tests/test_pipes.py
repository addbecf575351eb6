"""asyncmachine.pipes: states of one machine drive states of another (Go:
pkg/states/pipes). Several pipes on one machine, busy targets, running
machines in one loop and in two threads, errors, closing and disposal."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

import asyncmachine as am
from asyncmachine import pipes
from deadline import bound_async_tests

TIMEOUT = 10


def machine(id: str, *names: str, **kw: Any) -> am.Machine:
    schema = {n: am.State() for n in names}
    if "ErrNet" in names:
        schema["ErrNet"] = am.State(require=["Exception"])
    return am.Machine(schema, id=id, **kw)


# ------------------------------------------------------------ basic pipes


def test_bind_adds_and_removes() -> None:
    src = machine("src", "Foo", "Bar")
    dst = machine("dst", "Foo", "On", "Off")
    pipe = pipes.bind(src, dst, "Foo")
    src.add1("Foo")
    assert dst.is1("Foo")
    src.remove1("Foo")
    assert not dst.is1("Foo")
    assert dst.tick("Foo") == 2
    # custom names for activation and deactivation
    pipes.bind(src, dst, "Bar", "On", "Off")
    dst.add1("Off")
    src.add1("Bar")
    assert dst.is_(["On", "Off"])
    src.remove1("Bar")
    assert dst.active_states == ["On"]
    assert repr(pipe) == "<Pipe bind Foo->Foo/Foo src->dst open>"
    assert pipe.source is src and pipe.target is dst and not pipe.closed


def test_pipe_add_and_pipe_remove_are_one_way() -> None:
    src = machine("src", "Foo", "Bar")
    dst = machine("dst", "Foo", "Baz")
    pipes.pipe_add(src, dst, "Foo")
    pipes.pipe_remove(src, dst, "Bar", "Baz")
    src.add1("Foo")
    src.remove1("Foo")
    assert dst.is1("Foo")  # no remove pipe for Foo
    dst.add1("Baz")
    src.add1("Bar")
    assert dst.is1("Baz")  # no add pipe for Bar
    src.remove1("Bar")
    assert not dst.is1("Baz")


def test_args_are_copied_to_the_target() -> None:
    seen: list[dict[str, Any]] = []

    class H:
        def FooState(self, e: am.Event) -> None:
            seen.append(e.args)

    src = machine("src", "Foo")
    dst = machine("dst", "Foo", handlers=H())
    pipes.bind(src, dst, "Foo")
    args = {"id": 7}
    src.add1("Foo", args)
    assert seen == [args] and seen[0] is not args


def test_several_pipes_on_one_source_and_user_handlers_compose() -> None:
    calls: list[str] = []

    class User:
        def FooState(self, e: am.Event) -> None:
            calls.append("user")

    src = machine("src", "Foo", "Bar", "Ready", handlers=User())
    t1 = machine("t1", "Foo", "Baz", "Ready")
    t2 = machine("t2", "Foo", "Ready")
    p1 = pipes.bind(src, t1, "Foo")
    pipes.bind(src, t2, "Foo")
    pipes.bind(src, t1, "Bar", "Baz")
    pipes.bind_ready(src, t1)
    pipes.pipe_add(src, t2, "Bar", "Ready")
    src.add(["Foo", "Bar", "Ready"])
    assert calls == ["user"]
    assert t1.active_states == ["Foo", "Baz", "Ready"]
    assert t2.active_states == ["Foo", "Ready"]
    src.remove(["Foo", "Ready"])
    assert t1.active_states == ["Baz"]
    assert t2.active_states == ["Ready"]
    # closing one pipe leaves the others
    p1.close()
    assert p1.closed and p1.binding_id not in src.binding_ids
    p1.close()  # twice is fine
    src.add1("Foo")
    assert not t1.is1("Foo") and t2.is1("Foo")
    assert calls == ["user", "user"]


def test_bind_many_start_and_sync() -> None:
    src = machine("src", "A", "B", "Start")
    dst = machine("dst", "A", "B", "X", "Y", "Start", "Stopped")
    pipes.bind_many(src, dst, ["A", "B"], ["X", "Y"])
    pipes.bind_start(src, dst, "Start", "Stopped")
    src.add(["A", "B", "Start"])
    assert dst.active_states == ["X", "Y", "Start"]
    src.remove(["A", "Start"])
    assert dst.active_states == ["Y", "Start"]  # Stopped was removed, not Start
    # same names by default; sync copies the current activity once
    dst2 = machine("dst2", "A", "B")
    dst2.add1("A")
    assert pipes.sync(src, dst2, ["A", "B"]) == 2
    assert dst2.active_states == ["B"]
    pipes.bind_many(src, dst2, ["A"])
    src.add1("A")
    assert dst2.active_states == ["A", "B"]
    assert pipes.sync(src, dst, ["A"], ["Y"]) == 1
    assert dst.is1("Y")
    src.remove1("A")
    dst.add1("Y")
    assert pipes.sync(src, dst, ["A"], ["Y"]) == 1
    assert not dst.is1("Y")


def test_bind_any_mirrors_the_whole_machine() -> None:
    src = machine("src", "A", "B")
    dst = machine("dst", "A", "B", "Local")
    pipes.bind_any(src, dst)
    dst.add1("Local")
    src.add(["A", "B"])
    assert dst.active_states == ["A", "B", "Local"]
    src.remove1("A")
    assert dst.active_states == ["B", "Local"]
    ticks = dst.time()
    src.add1("B")  # nothing changes in src: no mutation of dst
    assert dst.time() == ticks
    with pytest.raises(am.StateNameError, match="B"):
        pipes.bind_any(src, machine("small", "A"))


# -------------------------------------------------------------------- errors


def test_bind_err_pipes_the_error() -> None:
    src = machine("src", "A")
    dst = machine("dst", "A", "ErrNet")
    pipes.bind_err(src, dst)
    boom = ValueError("boom")
    src.add_err(boom)
    assert dst.is_err() and dst.err is boom
    # to an error state of the target: it also activates Exception
    dst2 = machine("dst2", "ErrNet")
    pipes.bind_err(src, dst2, "ErrNet")
    boom2 = KeyError("k")
    src.add_err(boom2)
    assert dst2.is_(["ErrNet", "Exception"]) and dst2.err is boom2


def test_error_states_are_piped_with_their_error() -> None:
    src = machine("src", "ErrNet")
    dst = machine("dst", "ErrNet")
    pipes.bind(src, dst, "ErrNet")
    err = ConnectionError("reset")
    src.add_err_state("ErrNet", err)
    assert dst.is_(["ErrNet", "Exception"]) and dst.err is err
    src.remove(["ErrNet", "Exception"])
    assert not dst.is1("ErrNet")
    # an error state added without an error still brings Exception along
    dst.remove1("Exception")
    src.err = None
    src.add1("Exception")
    src.add1("ErrNet")
    assert dst.is_(["ErrNet", "Exception"])
    # Exception itself, without an error
    dst3 = machine("dst3", "A")
    pipes.pipe_add(src, dst3, "Exception")
    src.remove1("Exception")
    src.add1("Exception")
    assert dst3.is1("Exception")


# ------------------------------------------------------------ busy targets


def test_a_busy_target_queues_the_piped_mutation() -> None:
    """dst's handler mutates src, whose pipe mutates dst while dst is still
    in its own transition: the piped add is queued and runs next."""
    order: list[str] = []
    results: list[am.Result] = []

    class Dst:
        def BarState(self, e: am.Event) -> None:
            order.append("BarState start")
            src.add1("Foo")
            order.append("BarState end")

        def FooState(self, e: am.Event) -> None:
            order.append("FooState")

    class Src:
        def FooState(self, e: am.Event) -> None:
            results.append(dst.queue_len)

    src = machine("src", "Foo")
    dst = machine("dst", "Foo", "Bar", handlers=Dst())
    pipes.bind(src, dst, "Foo")
    src.bind_handlers(Src())
    dst.add1("Bar")
    assert order == ["BarState start", "BarState end", "FooState"]
    assert results == [1]  # queued in dst while src handled Foo
    assert dst.active_states == ["Foo", "Bar"]


def test_pipes_in_both_directions_settle() -> None:
    a = machine("a", "Foo")
    b = machine("b", "Foo")
    pipes.bind(a, b, "Foo")
    pipes.bind(b, a, "Foo")
    a.add1("Foo")
    assert a.is1("Foo") and b.is1("Foo")
    assert (a.tick("Foo"), b.tick("Foo")) == (1, 1)
    b.remove1("Foo")
    assert not a.is1("Foo") and not b.is1("Foo")
    assert (a.tick("Foo"), b.tick("Foo")) == (2, 2)


# ------------------------------------------------------------ running machines


async def test_pipes_across_two_running_machines() -> None:
    class Worker:
        async def WorkingState(self, e: am.Event) -> None:
            await anyio.lowlevel.checkpoint()
            e.machine.add1("Ready")

    src = am.Machine(
        {"Working": am.State(), "Ready": am.State(require=["Working"])},
        id="worker",
        handlers=Worker(),
    )
    dst = machine("dst", "WorkerReady", "WorkerBusy")
    async with src, dst:
        pipes.bind_ready(src, dst, "WorkerReady")
        pipes.bind(src, dst, "Working", "WorkerBusy")
        src.add1("Working")
        assert dst.is1("WorkerBusy")
        with anyio.fail_after(TIMEOUT):
            await dst.when1("WorkerReady")
        src.remove1("Working")
        assert dst.active_states == []


async def test_a_source_in_another_thread_pipes_through_the_inbox() -> None:
    dst = machine("dst", "Foo")
    results: list[am.Result] = []
    threads: set[int] = set()

    class Probe:
        def FooState(self, e: am.Event) -> None:
            threads.add(threading.get_ident())

    dst.bind_handlers(Probe())
    async with dst:
        src = machine("src", "Foo")

        class Spy:
            def FooState(self, e: am.Event) -> None:
                results.append(e.machine.tick("Foo"))

        pipes.bind(src, dst, "Foo")
        src.bind_handlers(Spy())
        # src is used by another thread (without a loop); dst runs here
        await anyio.to_thread.run_sync(src.add1, "Foo")
        with anyio.fail_after(TIMEOUT):
            await dst.when1("Foo")
        assert threads == {threading.get_ident()}
        assert results == [1]


# ------------------------------------------------------------- disposal


def test_disposed_target_closes_the_pipe() -> None:
    src = machine("src", "Foo")
    dst = machine("dst", "Foo")
    other = machine("other", "Foo")
    pipe = pipes.bind(src, dst, "Foo")
    keep = pipes.bind(src, other, "Foo")
    dst.dispose()
    assert pipe.closed and not keep.closed
    assert pipe.binding_id in src.binding_ids  # detached by src itself, later
    assert src.add1("Foo") is am.Result.EXECUTED
    assert pipe.binding_id not in src.binding_ids
    assert other.is1("Foo") and not src.is_err()
    src.remove1("Foo")
    assert not other.is1("Foo")
    # remove pipes and whole-machine mirrors detach themselves the same way
    dst2 = machine("dst2", "Foo")
    p_remove = pipes.pipe_remove(src, dst2, "Foo")
    p_any = pipes.bind_any(src, dst2)
    src.add1("Foo")
    assert dst2.is1("Foo")
    dst2.dispose()
    src.remove1("Foo")
    assert p_remove.binding_id not in src.binding_ids
    assert p_any.binding_id not in src.binding_ids


def test_disposed_source_closes_the_pipe() -> None:
    src = machine("src", "Foo")
    dst = machine("dst", "Foo")
    pipe = pipes.pipe_remove(src, dst, "Foo")
    src.dispose()
    assert pipe.closed
    pipe.close()  # nothing left to detach
    assert repr(pipe).endswith("closed>")


# ------------------------------------------------------------- bad input


def test_bad_input_raises_before_anything_is_bound() -> None:
    src = machine("src", "Foo", "Bar")
    dst = machine("dst", "Foo")
    with pytest.raises(am.StateNameError, match="'Nope' in machine src"):
        pipes.bind(src, dst, "Nope")
    with pytest.raises(am.StateNameError, match="'Bar' in machine dst"):
        pipes.bind(src, dst, "Bar")
    with pytest.raises(am.StateNameError, match="dst"):
        pipes.bind(src, dst, "Foo", "Foo", "Nope")
    with pytest.raises(am.StateNameError, match="dst"):
        pipes.pipe_add(src, dst, "Foo", "Nope")
    with pytest.raises(am.StateNameError, match="dst"):
        pipes.bind_err(src, dst, "Nope")
    with pytest.raises(TypeError, match="state name"):
        pipes.bind(src, dst, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two different"):
        pipes.bind(src, src, "Foo")
    with pytest.raises(TypeError, match="target must be a Machine"):
        pipes.bind(src, object(), "Foo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 source states but 1"):
        pipes.bind_many(src, dst, ["Foo", "Bar"], ["Foo"])
    with pytest.raises(TypeError, match="string"):
        pipes.bind_many(src, dst, "Foo")
    with pytest.raises(TypeError, match="string"):
        pipes.sync(src, dst, ["Foo"], "Foo")
    with pytest.raises(am.StateNameError):
        pipes.bind_ready(src, dst)
    assert src.binding_ids == []
    dst.dispose()
    with pytest.raises(am.MachineDisposedError, match="target machine dst"):
        pipes.bind(src, dst, "Foo")


def test_public_names() -> None:
    assert pipes.Pipe.__module__ == "asyncmachine.pipes"
    for name in pipes.__all__:
        assert hasattr(pipes, name), name


bound_async_tests(globals(), TIMEOUT)
