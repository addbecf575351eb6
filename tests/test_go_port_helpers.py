"""Ported from asyncmachine-go: pkg/helpers (help.go's documented behaviour,
README.md's examples, the former help_test.go: TestArgsToLogMap),
pkg/helpers/testing (the waiting wrappers), examples/basic (WaitForErrAll)
and the uses in pkg/pubsub and tools/debugger tests (NewReqAdd1, Add1Sync,
Add1Async).

Go's waiting helpers take a timeout and return `ErrTimeout`; here a
deadline is an `anyio.fail_after` around the call (TimeoutError), and an
expired state context returns False instead of `ctx.Err()`.
"""

from __future__ import annotations

from types import SimpleNamespace

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

import asyncmachine as am
import asyncmachine.helpers as amhelp
from deadline import bound_async_tests

TIMEOUT = 10


def no_rels(id: str = "m", *extra: str) -> am.Machine:
    """Go's utils.NewNoRels: A, B, C, D without relations (plus `extra`)."""
    return am.Machine({n: am.State() for n in ("A", "B", "C", "D", *extra)}, id=id)


# ----------------------------------------------------------- examples/basic


class FileHandlers:
    """examples/basic: ProcessingFile (async work) ends in FileProcessed."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def ProcessingFileEnter(self, e: am.Event) -> bool:
        return True

    async def ProcessingFileState(self, e: am.Event) -> None:
        await anyio.lowlevel.checkpoint()
        if self.fail:
            e.machine.add_err(FileNotFoundError("README.md"))
        else:
            e.machine.add1("FileProcessed")


BASIC_SCHEMA = {
    "ProcessingFile": am.State(add=["InProgress"], remove=["FileProcessed"]),
    "FileProcessed": am.State(remove=["ProcessingFile", "InProgress"]),
    "InProgress": am.State(auto=True, require=["ProcessingFile"]),
}


async def test_example_basic_wait_for_err_all() -> None:
    async with am.Machine(BASIC_SCHEMA, handlers=FileHandlers()) as mach:
        mach.add1("ProcessingFile")
        with anyio.fail_after(5):
            ok = await amhelp.wait_for_err_all(mach, mach.when1("FileProcessed"))
        assert ok and mach.active_states == ["FileProcessed"]


async def test_example_basic_wait_for_err_all_error() -> None:
    async with am.Machine(BASIC_SCHEMA, handlers=FileHandlers(fail=True)) as mach:
        mach.add1("ProcessingFile")
        with anyio.fail_after(5), pytest.raises(amhelp.ExceptionStateError) as info:
            await amhelp.wait_for_err_all(mach, mach.when1("FileProcessed"))
        assert isinstance(info.value.err, FileNotFoundError)
        assert info.value.machine_id == mach.id


# ------------------------------------------------------------ waiting helpers


async def test_wait_for_all_timeout_is_a_deadline() -> None:
    """WaitForAll: nil once all chans closed, a timeout when time is up (here
    TimeoutError from anyio.fail_after), no chans: nil at once."""
    async with no_rels() as mach:
        assert await amhelp.wait_for_all()
        mach.add1("A")
        with anyio.fail_after(0):  # already-met waits need no time
            assert await amhelp.wait_for_all(mach.when1("A"), mach.when_not1("B"))
        with pytest.raises(TimeoutError), anyio.fail_after(0):
            await amhelp.wait_for_all(mach.when1("A"), mach.when1("B"))
        with pytest.raises(TimeoutError), anyio.fail_after(0):
            await amhelp.wait_for_any(mach.when1("C"), mach.when1("D"))


async def test_waiting_with_an_expired_state_ctx() -> None:
    """ "It's advised to check the state ctx after this call": an expired
    ctx ends the wait (Go: ctx.Err(), here False)."""
    async with no_rels() as mach:
        mach.add1("A")
        ctx = mach.new_state_ctx("A")

        async def later() -> None:
            mach.remove1("A")

        mach.fork(None, later)
        assert await amhelp.wait_for_all(mach.when1("B"), ctx=ctx) is False
        assert ctx.expired
        assert await amhelp.wait_for_any(mach.when1("B"), ctx=ctx) is False
        assert await amhelp.wait_for_err_any(mach, mach.when1("B"), ctx=ctx) is False
        # Wait: false when ctx is done, true once the duration passed
        assert await amhelp.wait(10, ctx) is False
        assert await amhelp.wait(0) is True


async def test_wait_for_any_readme_success_or_error() -> None:
    """ "Wait for any of multiple channels": Success or Error."""
    async with am.Machine({"Success": am.State(), "Error": am.State()}) as mach:

        async def work() -> None:
            mach.add1("Error")

        mach.fork(None, work)
        with anyio.fail_after(5):
            assert await amhelp.wait_for_any(mach.when1("Success"), mach.when1("Error"))
        assert mach.is1("Error") and not mach.is1("Success")


async def test_group_when1_readme_wait_for_all_clients() -> None:
    """README: wait for all clients to be ready, with GroupWhen1; a machine
    without the state is an error naming it."""
    async with no_rels("c1") as c1, no_rels("c2") as c2, no_rels("c3") as c3:
        clients = [c1, c2, c3]

        async def start() -> None:
            for c in clients:
                c.add1("A")

        mach_group = amhelp.group_when1(clients, "A")
        c1.fork(None, start)
        with anyio.fail_after(5):
            assert await amhelp.wait_for_all(*mach_group)
        with pytest.raises(am.StateNameError, match="other"):
            amhelp.group_when1([c1, am.Machine({}, id="other")], "A")


async def test_wait_for_err_all_exception_already_active() -> None:
    """WaitForErrAll with Foo and Bar, or Exception."""
    async with no_rels() as mach:
        mach.add_err(RuntimeError("x"))
        with pytest.raises(amhelp.ExceptionStateError, match="RuntimeError"):
            await amhelp.wait_for_err_all(mach, mach.when1("A"), mach.when1("B"))


async def test_interval_stops_on_false() -> None:
    """Interval: fn returning false stops it, with nil (here True)."""
    calls: list[int] = []

    def fn() -> bool:
        calls.append(1)
        return len(calls) < 3

    with anyio.fail_after(5):
        assert await amhelp.interval(fn, 0.001)
    assert len(calls) == 3


# -------------------------------------------------------------- sync calls


class ScrollHandlers:
    """tools/debugger: ScrollToMutTx starts work that ends in ScrollToTx."""

    async def ScrollToMutTxState(self, e: am.Event) -> None:
        await anyio.lowlevel.checkpoint()
        e.machine.add1("ScrollToTx", e.args)


SCROLL_SCHEMA = {
    "ScrollToMutTx": am.State(remove=["ScrollToTx"]),
    "ScrollToTx": am.State(remove=["ScrollToMutTx"]),
    "Tick": am.State(multi=True),
    "Selected": am.State(),
    "Locked": am.State(),
}


async def test_readme_add1_sync() -> None:
    """README: Add1Sync then Is1 is true; never "queued"."""

    class Guard:
        def SelectedEnter(self, e: am.Event) -> bool:
            return not e.machine.is1("Locked")

    async with am.Machine(SCROLL_SCHEMA, handlers=Guard()) as mach:
        assert await amhelp.add1_sync(mach, "Selected", {"state": "A"}) is True
        assert mach.is1("Selected")
        mach.remove1("Selected")
        mach.add1("Locked")
        assert await amhelp.add1_sync(mach, "Selected") is False
        assert await amhelp.remove1_sync(mach, "Locked") is True
        assert not mach.is1("Locked")

        # from another thread, where a plain add only says QUEUED
        def other_thread() -> list[object]:
            async def client() -> list[object]:
                return [
                    mach.add1("Locked"),
                    await amhelp.add1_sync(mach, "Selected"),
                    await amhelp.remove_sync(mach, ["Locked"]),
                    await amhelp.add_sync(mach, ["Selected"]),
                ]

            return anyio.run(client)

        res = await anyio.to_thread.run_sync(other_thread)
        assert res == [am.Result.QUEUED, False, True, True]
        assert mach.active_states == ["Selected"]


async def test_readme_add1_async() -> None:
    """README: Add1Async waits for ScrollToTx, triggered by ScrollToMutTx."""
    async with am.Machine(SCROLL_SCHEMA, handlers=ScrollHandlers()) as mach:
        with anyio.fail_after(5):
            ok = await amhelp.add1_async(
                mach, "ScrollToTx", "ScrollToMutTx", {"state": "A", "fwd": True}
            )
        assert ok and mach.is1("ScrollToTx")
        # again: ScrollToTx was active, its next activation counts
        tick = mach.tick("ScrollToTx")
        with anyio.fail_after(5):
            assert await amhelp.add1_async(mach, "ScrollToTx", "ScrollToMutTx")
        assert mach.tick("ScrollToTx") == tick + 2


async def test_add_async_multi_wait_state_and_cancel() -> None:
    """AddAsync: the wait state can be Multi; a canceled add is false."""

    class H:
        def ScrollToMutTxState(self, e: am.Event) -> None:
            e.machine.add1("Tick")

        def LockedEnter(self, e: am.Event) -> bool:
            return False

    async with am.Machine(SCROLL_SCHEMA, handlers=H()) as mach:
        mach.add1("Tick")
        with anyio.fail_after(5):
            assert await amhelp.add_async(mach, "Tick", ["ScrollToMutTx"])
        assert mach.tick("Tick") == 3
        assert await amhelp.add1_async(mach, "Tick", "Locked") is False


# ----------------------------------------------------------- failsafe requests


async def test_new_req_add1_run() -> None:
    """pubsub_test.go: NewReqAdd1(mach, Joining, nil).Run(ctx) — the
    defaults (10 retries, 100ms delay, 5s backoff, 5s max duration); a
    mutation that is accepted at once needs no retry."""
    mach = am.Machine({"Joining": am.State(), "Start": am.State()})
    req = amhelp.req_add1(mach, "Joining")
    assert (req.retries, req.delay, req.backoff, req.max_duration) == (
        10,
        0.1,
        5.0,
        5.0,
    )
    assert await req.run() is am.Result.EXECUTED
    assert mach.is1("Joining")
    # Clone: the same policy for another mutation
    rm = amhelp.req_remove1(mach, "Joining", retries=0)
    assert await rm.run() is am.Result.EXECUTED and not mach.is1("Joining")
    # an expired ctx ends the request
    ctx = mach.new_state_ctx("Start")
    mach.add1("Start")
    assert await req.run(ctx) is am.Result.CANCELED


# ------------------------------------------------------------------ misc


def test_activations() -> None:
    """Activations: (ticks + 1) / 2."""
    mach = am.Machine({"Tick": am.State(multi=True)})
    for _ in range(3):
        mach.add1("Tick")
    assert amhelp.activations(mach.tick("Tick")) == 3
    assert amhelp.is_multi(mach, "Tick")


def test_remove_multi_go_form() -> None:
    """RemoveMulti(mach, state): a final handler removing the Multi state."""
    mach = am.Machine({"Tick": am.State(multi=True)})
    other = am.Machine({"Tick": am.State(multi=True)}, id="other")
    other.add1("Tick")
    mach.bind_handlers(SimpleNamespace(TickState=amhelp.remove_multi(other, "Tick")))
    mach.add1("Tick")
    assert mach.is1("Tick") and not other.is1("Tick")
    assert repr(amhelp.remove_multi(other, "Tick")) == "remove_multi(other, 'Tick')"
    with pytest.raises(am.StateNameError, match="Nope"):
        amhelp.remove_multi(other, "Nope")
    with pytest.raises(TypeError, match="one state"):
        amhelp.remove_multi("Tick", "Tick")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="state name"):
        amhelp.remove_multi(other, 1)  # type: ignore[call-overload]


def test_cond() -> None:
    """Cond: all parts must hold; Check of a nil machine is false."""
    mach = no_rels()
    mach.add(["A", "B"])
    cond = amhelp.Cond(is_=["A"], any1=["B", "C"], not_=["D"], clock={"A": 1})
    assert cond.check(mach) and not cond.is_empty()
    assert not cond.check(None)
    assert not amhelp.Cond(clock={"B": 3}).check(mach)
    assert amhelp.Cond().is_empty()


def test_tag_value() -> None:
    """TagValue: the value of "key:value", the key of a bare tag, "" when
    missing; TagValueInt: -1 when missing."""
    tags = ["manual", "group:main", "port:8080"]
    assert amhelp.tag_value(tags, "group") == "main"
    assert amhelp.tag_value(tags, "manual") == "manual"
    assert amhelp.tag_value(tags, "nope") == ""
    assert amhelp.tag_value_int(tags, "port") == 8080
    assert amhelp.tag_value_int(tags, "nope") == -1
    with pytest.raises(ValueError, match="group"):
        amhelp.tag_value_int(tags, "group")


def test_ask_add_and_cant_add() -> None:
    """AskAdd mutates only when CantAdd says it is possible."""
    mach = am.Machine({"Start": am.State(), "Ready": am.State(require=["Start"])})
    assert amhelp.cant_add1(mach, "Ready")
    assert amhelp.ask_add1(mach, "Ready") is am.Result.CANCELED
    assert mach.tick("Ready") == 0
    assert amhelp.ask_add(mach, ["Start", "Ready"]) is am.Result.EXECUTED
    assert not amhelp.cant_remove1(mach, "Start")
    assert amhelp.ask_remove1(mach, "Ready") is am.Result.EXECUTED


def test_eval_getter() -> None:
    """EvalGetter: a value read between transitions; an error when the eval
    could not run."""
    mach = no_rels()
    mach.add1("A")
    assert amhelp.eval_get(mach, lambda: mach.active_states) == ["A"]
    mach.dispose()
    with pytest.raises(amhelp.EvalError, match="get-a"):
        amhelp.eval_get(mach, lambda: 1, source="get-a")


@amhelp.args_class
class Args:
    """help_test.go's Args: one log-tagged field, one plain."""

    log: str = amhelp.arg(log="log1")
    plain: str = amhelp.arg()


def test_args_to_log_map() -> None:
    """TestArgsToLogMap: only log-tagged fields, under their tag."""
    args = am.pass_args(Args(log="log", plain="plain"))
    assert amhelp.args_log_fields(args) == {"log1": "log"}
    assert amhelp.parse_args(Args, args) == Args(log="log", plain="plain")


bound_async_tests(globals(), TIMEOUT)
