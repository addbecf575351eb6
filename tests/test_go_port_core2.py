"""Go tests of the machine core not ported elsewhere: the package examples of
`pkg/machine` (`ExampleNew`, `ExampleNewCommon`), the clock half of
`pkg/x/helpers` `TestTimeMatrix`, and the example programs that Go runs as
tests (`examples/*/..._test.go`), which exercise relations, auto states,
handlers, state contexts and when-methods end to end.

Each test names its Go original in the docstring. The Go examples that are
integration tests (`go run .` and grep stdout for "done") are ported as the
example's `main()` with its printed milestones asserted. Go goroutines with
`time.Sleep` standing for blocking work become forked tasks (or async final
handlers) that yield with a checkpoint: the flow is the same, with no timing.

Also here: `TestEvMutations` without Go's event-sourced `EvAdd1`/`EvRemove1`.

The other Go tests of `pkg/machine` are ported in tests/test_go_port.py,
test_go_port_misc.py, test_runtime_when.py, test_runtime_ctx.py and
test_runtime_threads.py; the ones left out (Go-only API: `Switch`,
`DisposeForce`, `Export`/`Import`, `VerifyStates`, `RelationsOf`/
`RelationsBetween`, handler deadlines, `Time` methods, `AMerge`, state utils,
step and relation enums) are listed, with reasons, in those files' docstrings.

Go example tests NOT ported, and why:

- examples/mach_template TestMachTemplate: a tour of the Go tooling (aRPC REPL,
  Prometheus, Grafana dashboards, OTel, fork pools, state groups); its core
  parts are covered by the other ports.
- examples/arpc, examples/benchmark_grpc, examples/cli*, examples/pipes,
  examples/wasm*: RPC, pipes and CLI layers, not the core.
- TestTimeMatrix's `TimeMatrix` helper itself (Go `pkg/x/helpers`): no Python
  counterpart; it is `[m.time() for m in machines]`, asserted below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import asyncmachine as am
from deadline import bound_async_tests

#: a safety net against hangs; every flow here completes in microseconds
TIMEOUT = 5


class Log:
    """A logger sink collecting formatted lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, level: am.LogLevel, text: str) -> None:
        self.lines.append(text)


def log_changes(m: am.Machine) -> Log:
    """Attach a `Log` at CHANGES without machine ids (Go `DontLogId`)."""
    log = Log()
    m.logger = log
    m.log_level = am.LogLevel.CHANGES
    m.log_id = False
    return log


async def first(**waits: Callable[[], Awaitable[object]]) -> str:
    """Go's `select`: run the waits concurrently and return the name of the
    first one to finish (the others are cancelled)."""
    winner: list[str] = []
    async with anyio.create_task_group() as tg:
        for name, wait in waits.items():

            async def run(name: str = name, wait: Any = wait) -> None:
                await wait()
                if not winner:
                    winner.append(name)
                tg.cancel_scope.cancel()

            tg.start_soon(run)
    return winner[0]


# ---------------------------------------------------------------------------
# pkg/machine examples


def test_example_new() -> None:
    """ExampleNew: Foo requires Bar, so adding Foo alone is canceled."""
    mach = am.Machine({"Foo": am.State(require=["Bar"]), "Bar": am.State()})
    assert mach.add1("Foo") is am.Result.CANCELED
    assert mach.is1("Foo") is False


def test_example_new_common() -> None:
    """ExampleNewCommon (id, schema, handlers and a log level at once; the
    Go names list is the schema order here)."""

    class Handlers:
        def FooState(self, e: am.Event) -> None:
            e.machine.add1("Bar")

    log = Log()
    mach = am.Machine(
        {"Foo": am.State(require=["Bar"]), "Bar": am.State()},
        id="mach-id",
        handlers=Handlers(),
        log_level=am.LogLevel.OPS,
        logger=log,
    )
    assert mach.id == "mach-id"
    assert mach.state_names == ["Foo", "Bar", am.EXCEPTION]
    assert mach.log_level == am.LogLevel.OPS
    assert mach.add(["Foo", "Bar"]) is am.Result.EXECUTED
    assert mach.active_states == ["Foo", "Bar"]
    # the target is sorted by `require` (docs/design/semantics.md §4.4): Bar first
    assert any(line.endswith("[state] +Bar +Foo") for line in log.lines)


def test_ev_mutations() -> None:
    """TestEvMutations without Go's `EvAdd1`/`EvRemove1` event-sourced
    mutations (no Python counterpart): AState passes its args on to B and
    removes itself, both queued and run before `add1` returns."""
    seen: list[dict[str, Any]] = []

    class Handlers:
        def AState(self, e: am.Event) -> None:
            assert e.machine.add1("B", e.args) is am.Result.QUEUED
            assert e.machine.remove1("A") is am.Result.QUEUED

        def BState(self, e: am.Event) -> None:
            seen.append(e.args)
            assert e.machine_id == e.machine.id

    mach = am.Machine({s: am.State() for s in "ABCD"}, handlers=Handlers())
    assert mach.add1("A", {"t": "test"}) is am.Result.EXECUTED
    assert seen == [{"t": "test"}]
    assert mach.string_all() == "(B:1) [A:2 C:0 D:0 Exception:0]"


async def test_disposed_no_op_when() -> None:
    """TestDisposedNoOp, the when-methods half (the synchronous half is in
    test_go_port.py): on a disposed machine every when-method returns an
    event that is already set, and awaiting it returns at once (semantics
    §10.1.6; Go's `WhenTime(s, Time{})` length mismatch is refused by
    docs/design/semantics.md §9.2, so the times match the states here)."""
    mach = am.Machine({s: am.State() for s in "ABCD"})
    async with mach:
        pass
    assert mach.disposed
    events = [
        mach.when1("A"),
        mach.when_not1("A"),
        mach.when_args("A", {}),
        mach.when_time(["A"], [1]),
        mach.when_queue_ends(),
        mach.when_queue(mach.queue_tick + 1),
        mach.when_err(),
        mach.when_ticks("A", 2),
        mach.when_query(lambda clock: False),
        mach.when_disposed(),
    ]
    with anyio.fail_after(TIMEOUT):
        for ev in events:
            assert ev.is_set()
            await ev.wait()
    assert mach.new_state_ctx("A").expired
    with pytest.raises(am.MachineDisposedError):
        mach.fork(None, anyio.lowlevel.checkpoint)


# ---------------------------------------------------------------------------
# pkg/x/helpers


def test_time_matrix() -> None:
    """TestTimeMatrix (pkg/x/helpers; B Multi and Bump1 defined up front, the
    matrix is each machine's `time()`)."""

    def new() -> am.Machine:
        return am.Machine(
            {
                "A": am.State(),
                "B": am.State(multi=True),
                "C": am.State(),
                "D": am.State(),
                "Bump1": am.State(),
            }
        )

    m1 = new()
    m1.add(["A", "B"])
    m1.add(["A", "B"])
    assert m1.time(["A", "B", "C", "D"]) == (1, 3, 0, 0)

    m2 = new()
    m2.add(["A", "B"])
    m2.add(["A", "B"])
    m2.add(["A", "B", "C"])
    m2.set(["D"])
    assert m2.time(["A", "B", "C", "D"]) == (2, 6, 2, 1)

    matrix = [m.time() for m in (m1, m2)]
    assert matrix == [(1, 3, 0, 0, 0, 0), (2, 6, 2, 1, 0, 0)]


# ---------------------------------------------------------------------------
# examples/fsm TestTurnstile

LOCK_GROUP = ["Locked", "Unlocked"]
TURNSTILE = {
    "InputPush": am.State(),
    "InputCoin": am.State(),
    "Locked": am.State(auto=True, remove=LOCK_GROUP),
    "Unlocked": am.State(remove=LOCK_GROUP),
}


class Turnstile:
    def InputPushEnter(self, e: am.Event) -> bool:
        return e.machine.is1("Unlocked")

    def InputPushState(self, e: am.Event) -> None:
        e.machine.remove1("InputPush")
        e.machine.add1("Locked")

    def InputCoinState(self, e: am.Event) -> None:
        e.machine.remove1("InputCoin")
        e.machine.add1("Unlocked")


def test_turnstile() -> None:
    """examples/fsm TestTurnstile, with the Go test's LogChanges output."""
    mach = am.Machine(
        TURNSTILE, id="turnstile", panic_to_exception=False, handlers=Turnstile()
    )
    log = log_changes(mach)

    # start
    mach.add1("Locked")
    assert mach.is1("Locked")

    # push while locked: InputPushEnter refuses
    assert str(mach) == "(Locked:1)"
    assert mach.add1("InputPush") is am.Result.CANCELED
    assert mach.is1("Locked")

    # coin
    mach.add1("InputCoin")
    assert mach.not1("Locked")
    assert mach.is1("Unlocked")
    assert str(mach) == "(Unlocked:1)"

    # coin again
    mach.add1("InputCoin")
    assert mach.not1("Locked")
    assert mach.is1("Unlocked")

    # push
    mach.add1("InputPush")
    assert mach.not1("Unlocked")
    assert mach.is1("Locked")
    assert str(mach) == "(Locked:3)"

    assert log.lines == [
        "[state] +Locked",
        "[state] +InputCoin",
        "[state] -InputCoin",
        "[state] +Unlocked -Locked",
        "[state] +InputCoin",
        "[state] -InputCoin",
        "[state] +InputPush",
        "[state] -InputPush",
        "[state] +Locked -Unlocked",
    ]


# ---------------------------------------------------------------------------
# examples/relations_playground TestAll (Go only checks for panics; the
# answers to the example's quizzes are asserted here)


def new_playground(schema: dict[str, am.State]) -> am.Machine:
    return am.Machine(schema, log_level=am.LogLevel.OPS, logger=Log())


def test_all_foo_bar() -> None:
    """relations_playground FooBar: is Foo active? No, Bar is missing."""
    mach = new_playground({"Foo": am.State(require=["Bar"]), "Bar": am.State()})
    assert mach.add1("Foo") is am.Result.CANCELED
    assert mach.active_states == []


def test_all_file_processed() -> None:
    """relations_playground FileProcessed (Go's `LastTxTracer` is a tracer
    keeping the last transition)."""

    class LastTx(am.Tracer):
        def __init__(self) -> None:
            self.tx: am.Transition | None = None

        def transition_end(self, transition: am.Transition) -> None:
            self.tx = transition

    mach = new_playground(
        {
            "ProcessingFile": am.State(remove=["FileProcessed"]),
            "FileProcessed": am.State(remove=["ProcessingFile"]),
            "InProgress": am.State(auto=True, require=["ProcessingFile"]),
        }
    )
    last = LastTx()
    mach.bind_tracer(last)

    mach.add1("ProcessingFile")
    # is InProgress active? Yes, added by the auto pass.
    assert mach.active_states == ["ProcessingFile", "InProgress"]
    assert last.tx is not None and last.tx.mutation.auto

    mach.add1("FileProcessed")
    assert mach.active_states == ["FileProcessed"]
    # the last transition is the auto attempt for InProgress, whose
    # requirement is gone (docs/design/semantics.md §6.3.2-4): canceled
    assert last.tx is not None
    assert last.tx.mutation.auto
    assert last.tx.called_states == ["InProgress"]
    assert not last.tx.is_accepted
    assert mach.string_all() == (
        "(FileProcessed:1) [ProcessingFile:2 InProgress:2 Exception:0]"
    )


def test_all_dry_water_wet() -> None:
    """relations_playground DryWaterWet: is Wet active at the end? No, Dry
    removes Water, which Wet requires."""
    mach = new_playground(
        {
            "Wet": am.State(require=["Water"]),
            "Dry": am.State(remove=["Water"]),
            "Water": am.State(add=["Wet"], remove=["Dry"]),
        }
    )
    mach.add1("Dry")
    assert mach.active_states == ["Dry"]
    mach.add1("Water")
    assert mach.active_states == ["Wet", "Water"]
    mach.add1("Dry")
    assert mach.active_states == ["Dry"]
    assert mach.not1("Wet")


def test_all_remove_by_add() -> None:
    """relations_playground RemoveByAdd: is C active? No, B (added by A)
    removes it."""
    mach = new_playground(
        {"A": am.State(add=["B"]), "B": am.State(remove=["C"]), "C": am.State()}
    )
    mach.add1("C")
    mach.add1("A")
    assert mach.active_states == ["A", "B"]


def test_all_add_optional_remove_mandatory() -> None:
    """relations_playground AddOptionalRemoveMandatory: is B active? No, a
    remove wins over an add."""
    mach = new_playground(
        {"A": am.State(add=["B"]), "B": am.State(), "C": am.State(remove=["B"])}
    )
    assert mach.add(["A", "C"]) is am.Result.EXECUTED
    assert mach.active_states == ["A", "C"]


def test_all_mutex() -> None:
    """relations_playground Mutex: each state removes the whole group
    (itself included), so only the last added is active."""
    group = ["A", "B", "C"]
    mach = new_playground({s: am.State(remove=group) for s in group})
    mach.add1("A")
    assert mach.active_states == ["A"]
    mach.add1("B")
    assert mach.active_states == ["B"]
    mach.add1("C")
    assert mach.string_all() == "(C:1) [A:2 B:2 Exception:0]"


def test_all_quiz() -> None:
    """relations_playground Quiz: which ones are active? A B D E; C, added
    by B, is removed by D (added by E) and B's requirement D holds."""
    mach = new_playground(
        {
            "A": am.State(add=["B"]),
            "B": am.State(require=["D"], add=["C"]),
            "C": am.State(),
            "D": am.State(remove=["C"]),
            "E": am.State(add=["D"]),
        }
    )
    assert mach.add(["A", "E"]) is am.Result.EXECUTED
    assert mach.active_states == ["A", "B", "D", "E"]


# ---------------------------------------------------------------------------
# examples/dag_dependency_graph TestDagDependencyGraph


def test_dag_dependency_graph_sync() -> None:
    """TestDagDependencyGraph, `depGraph`: one auto pass resolves the whole
    Require graph and every final handler runs once."""
    printed: list[str] = []

    class Handlers:
        def AState(self, e: am.Event) -> None:
            printed.append("A ok")

        def BState(self, e: am.Event) -> None:
            printed.append("B ok")

        def CState(self, e: am.Event) -> None:
            printed.append("C ok")

        def DState(self, e: am.Event) -> None:
            printed.append("D ok")

    mach = am.Machine(
        {
            "A": am.State(auto=True, require=["B", "C"]),
            "B": am.State(auto=True, require=["D"]),
            "C": am.State(auto=True),
            "D": am.State(auto=True),
            "Start": am.State(),
        },
        id="sync",
        handlers=Handlers(),
    )
    log = log_changes(mach)
    assert mach.add1("Start") is am.Result.EXECUTED
    assert sorted(printed) == ["A ok", "B ok", "C ok", "D ok"]
    assert mach.string_all() == "(A:1 B:1 C:1 D:1 Start:1) [Exception:0]"
    # one auto transition, its target sorted by `require` (docs/design/semantics.md §4.4)
    assert log.lines == ["[state] +Start", "[auto_] +D +B +C +A"]


async def test_dag_dependency_graph_async() -> None:
    """TestDagDependencyGraph, `asyncDepGraph`: Init states are Auto and
    start blocking work (forked); each finished piece unlocks the next
    Init state, until A."""
    printed: list[str] = []

    class Handlers:
        async def _work_then(self, e: am.Event, state: str) -> None:
            await anyio.lowlevel.checkpoint()  # the blocking work
            e.machine.add1(state)

        def AInitState(self, e: am.Event) -> None:
            e.machine.fork(e.machine.new_state_ctx("AInit"), self._work_then, e, "A")

        def BInitState(self, e: am.Event) -> None:
            e.machine.fork(e.machine.new_state_ctx("BInit"), self._work_then, e, "B")

        def CInitState(self, e: am.Event) -> None:
            e.machine.fork(e.machine.new_state_ctx("CInit"), self._work_then, e, "C")

        def DInitState(self, e: am.Event) -> None:
            e.machine.fork(e.machine.new_state_ctx("DInit"), self._work_then, e, "D")

        def AState(self, e: am.Event) -> None:
            printed.append("A ok")

        def BState(self, e: am.Event) -> None:
            printed.append("B ok")

        def CState(self, e: am.Event) -> None:
            printed.append("C ok")

        def DState(self, e: am.Event) -> None:
            printed.append("D ok")

    mach = am.Machine(
        {
            "AInit": am.State(auto=True, require=["B", "C"]),
            "A": am.State(require=["B", "C"]),
            "BInit": am.State(auto=True, require=["D"]),
            "B": am.State(require=["D"]),
            "CInit": am.State(auto=True),
            "C": am.State(),
            "DInit": am.State(auto=True),
            "D": am.State(),
            "Start": am.State(),
        },
        id="async",
        handlers=Handlers(),
    )
    async with mach:
        mach.add1("Start")
        # only the Init states without requirements start at once
        assert mach.active_states == ["CInit", "DInit", "Start"]
        await mach.when1("A").wait()
        # D comes before B (B requires it), B and C before A
        assert printed.index("D ok") < printed.index("B ok")
        assert printed[-1] == "A ok"
        assert sorted(printed) == ["A ok", "B ok", "C ok", "D ok"]
        assert mach.is_(["AInit", "A", "BInit", "B", "CInit", "C", "DInit", "D"])


# ---------------------------------------------------------------------------
# examples/basic TestBasic and examples/raw_strings TestRawStrings

BASIC = {
    "ProcessingFile": am.State(remove=["FileProcessed"]),
    "FileProcessed": am.State(remove=["ProcessingFile"]),
    "InProgress": am.State(auto=True, require=["ProcessingFile"]),
}


async def test_basic() -> None:
    """examples/basic TestBasic: ProcessingFileState forks the blocking work
    in the state's context; the result moves the flow to FileProcessed."""
    processed: list[str] = []

    class Handlers:
        filename = "README.md"

        def ProcessingFileEnter(self, e: am.Event) -> bool:
            return True

        def ProcessingFileState(self, e: am.Event) -> None:
            mach = e.machine
            ctx = mach.new_state_ctx("ProcessingFile")

            async def work() -> None:
                await anyio.lowlevel.checkpoint()  # processFile
                processed.append(self.filename)
                if ctx.expired:
                    return
                mach.add1("FileProcessed")

            mach.fork(ctx, work)

    async with am.Machine(BASIC, handlers=Handlers()) as mach:
        assert mach.add1("ProcessingFile") is am.Result.EXECUTED
        assert mach.active_states == ["ProcessingFile", "InProgress"]
        with anyio.fail_after(TIMEOUT):
            won = await first(
                err=mach.when_err().wait, done=mach.when1("FileProcessed").wait
            )
        assert won == "done"
        assert processed == ["README.md"]
        assert mach.string_all() == (
            "(FileProcessed:1) [ProcessingFile:2 InProgress:2 Exception:0]"
        )


async def test_raw_strings() -> None:
    """examples/raw_strings TestRawStrings: the same flow with string state
    names, the work checking the state context before and after blocking,
    and an argument on the final mutation."""
    seen_args: list[dict[str, Any]] = []

    class Handlers:
        def ProcessingFileEnter(self, e: am.Event) -> bool:
            return True

        def ProcessingFileState(self, e: am.Event) -> None:
            mach = e.machine
            ctx = mach.new_state_ctx("ProcessingFile")

            async def work() -> None:
                if ctx.expired:
                    return
                await anyio.lowlevel.checkpoint()  # processFile
                if ctx.expired:
                    return
                mach.add1("FileProcessed", {"beaver": "1"})

            mach.fork(ctx, work)

        def FileProcessedState(self, e: am.Event) -> None:
            seen_args.append(e.args)

    mach = am.Machine(BASIC, id="raw-strings", handlers=Handlers())
    async with mach:
        mach.add1("ProcessingFile")
        with anyio.fail_after(TIMEOUT):
            won = await first(
                err=mach.when_err().wait, done=mach.when1("FileProcessed").wait
            )
        assert won == "done"
        assert seen_args == [{"beaver": "1"}]
        assert mach.not_(["ProcessingFile", "InProgress"])


async def test_raw_strings_err() -> None:
    """examples/raw_strings TestRawStrings, the error branch of its select:
    a failing processFile is reported with AddErr and wins over FileProcessed."""

    class Handlers:
        def ProcessingFileState(self, e: am.Event) -> None:
            mach = e.machine

            async def work() -> None:
                await anyio.lowlevel.checkpoint()
                mach.add_err(OSError("disk full"))

            mach.fork(mach.new_state_ctx("ProcessingFile"), work)

    async with am.Machine(BASIC, handlers=Handlers()) as mach:
        mach.add1("ProcessingFile")
        with anyio.fail_after(TIMEOUT):
            won = await first(
                err=mach.when_err().wait, done=mach.when1("FileProcessed").wait
            )
        assert won == "err"
        assert isinstance(mach.err, OSError)
        assert mach.is_(["ProcessingFile", "InProgress", am.EXCEPTION])


# ---------------------------------------------------------------------------
# examples/subscriptions TestSubscriptions


async def test_subscriptions() -> None:
    """examples/subscriptions TestSubscriptions: six when-subscriptions made
    before the mutations all fire, in the order of the printed lines."""
    mach = am.Machine(
        {"Foo": am.State(), "Bar": am.State(), "Healthcheck": am.State(multi=True)},
        id="source",
    )
    printed: list[str] = []
    async with mach:
        subs = [
            (mach.when1("Foo"), "1 - Foo activated"),
            (mach.when_not1("Bar"), "2 - Bar deactivated"),
            (mach.when_args("Bar", {"ID": 123}), "3 - Bar activated with ID=123"),
            (
                mach.when_time(["Foo", "Bar"], [1, 3]),
                "4 - Foo tick >= 1 and Bar tick >= 3",
            ),
            (mach.when_ticks("Foo", 2), "5 - Foo tick increased by 2 since now"),
            (mach.when_err(), "6 - Error"),
        ]
        started = 0
        all_started = anyio.Event()

        async def subscriber(ev: am.WhenEvent, line: str) -> None:
            nonlocal started
            started += 1
            if started == len(subs):
                all_started.set()
            await ev.wait()
            printed.append(line)

        async with anyio.create_task_group() as tg:
            for ev, line in subs:
                tg.start_soon(subscriber, ev, line)
            await all_started.wait()
            # only "Bar deactivated" holds already
            assert [ev.is_set() for ev, _ in subs] == [
                False,
                True,
                False,
                False,
                False,
                False,
            ]

            mach.add1("Foo")
            mach.add1("Bar")
            mach.remove1("Bar")
            mach.remove1("Foo")
            mach.add1("Foo")
            mach.add1("Bar", {"ID": 123})
            mach.add_err(ValueError("err"))

        assert sorted(printed) == [line for _, line in subs]
        assert mach.time(["Foo", "Bar"]) == (3, 3)


async def test_subscriptions_when_args_needs_the_value() -> None:
    """examples/subscriptions, "3 - Bar activated with ID=123": Bar activated
    with another ID (or none) does not fire the subscription."""
    mach = am.Machine({"Foo": am.State(), "Bar": am.State(multi=True)})
    async with mach:
        ev = mach.when_args("Bar", {"ID": 123})
        mach.add1("Bar")
        mach.add1("Bar", {"ID": 12})
        assert not ev.is_set()
        mach.add1("Bar", {"ID": 123, "other": 1})
        assert ev.is_set()


# ---------------------------------------------------------------------------
# examples/nfa TestNfa

STEPS = ["StepX", "Step0", "Step1", "Step2", "Step3"]
NFA = {
    "Start": am.State(add=["StepX"]),
    "Ready": am.State(require=["Start"]),
    "Input0": am.State(multi=True, require=["Start"]),
    "Input0Done": am.State(multi=True, require=["Start"]),
    "Input1": am.State(multi=True, require=["Start"]),
    "Input1Done": am.State(multi=True, require=["Start"]),
    **{s: am.State(remove=STEPS) for s in STEPS},
}


class Regexp(am.ExceptionHandler):
    """The NFA for `(0|1)*1(0|1){3}`-ish inputs of the Go example."""

    def __init__(self) -> None:
        self.input = ""
        self.cursor = 0

    async def StartState(self, e: am.Event) -> None:
        # an async final handler: runs in Start's context (Go: a goroutine)
        self.input = e.args["input"]
        mach = e.machine
        for c in self.input:
            if c == "0":
                mach.add1("Input0")
                await mach.when1("Input0Done").wait()
            elif c == "1":
                mach.add1("Input1")
                await mach.when1("Input1Done").wait()
        mach.add1("Ready")

    def _step(self, mach: am.Machine, step_x_next: str) -> None:
        nxt = {
            "StepX": step_x_next,
            "Step0": "Step1",
            "Step1": "Step2",
            "Step2": "Step3",
        }
        state = nxt.get(mach.switch(STEPS))
        if state:
            mach.add1(state)

    def Input0State(self, e: am.Event) -> None:
        try:
            self._step(e.machine, "StepX")
        finally:
            e.machine.add1("Input0Done")
            self.cursor += 1

    def Input1State(self, e: am.Event) -> None:
        # Go: "TODO should use CanAdd and Step0Enter"
        last_four = self.cursor + 3 == len(self.input) - 1
        try:
            self._step(e.machine, "Step0" if last_four else "StepX")
        finally:
            e.machine.add1("Input1Done")
            self.cursor += 1


@pytest.mark.parametrize(
    ("name", "text", "expect"),
    [
        ("test 101010 (OK)", "101010", True),
        ("test 1010 (OK)", "1010", True),
        ("test 100010 (NOT OK)", "100010", False),
    ],
)
async def test_nfa(name: str, text: str, expect: bool) -> None:
    """examples/nfa TestNfa (Go `Switch` is a local helper)."""
    mach = am.Machine(NFA, id="nfa-" + name, handlers=Regexp())
    log = log_changes(mach)
    async with mach:
        mach.add1("Start", {"input": text})
        await mach.when1("Ready").wait()

        assert mach.is1("Step3") is expect
        assert mach.not1("Exception")
        mach.remove1("Start")
        # Start's dependants go with it; the step stays
        assert mach.active_states == [("Step3" if expect else "StepX")]

    if text == "101010":
        # the Go test's LogChanges output. One difference, kept: Go lists
        # removed states in the order they were activated ("-Start -Input0
        # -Input0Done -Input1 -Input1Done -Ready"); docs/design/semantics.md §11.2 says
        # "`-` removed states in state order".
        assert log.lines == [
            "[state] +StepX +Start",
            "[state] +Input1",
            "[state] +Input1Done",
            "[state] +Input0",
            "[state] +Input0Done",
            "[state] +Input1",
            "[state] +Step0 -StepX",
            "[state] +Input1Done",
            "[state] +Input0",
            "[state] +Step1 -Step0",
            "[state] +Input0Done",
            "[state] +Input1",
            "[state] +Step2 -Step1",
            "[state] +Input1Done",
            "[state] +Input0",
            "[state] +Step3 -Step2",
            "[state] +Input0Done",
            "[state] +Ready",
            "[state] -Start -Ready -Input0 -Input0Done -Input1 -Input1Done",
        ]


# ---------------------------------------------------------------------------
# examples/temporal_expense TestExpense

EXPENSE_GROUP = ["CreatingExpense", "ExpenseCreated"]
APPROVAL_GROUP = ["WaitingForApproval", "ApprovalGranted"]
PAYMENT_GROUP = ["PaymentInProgress", "PaymentCompleted"]
EXPENSE = {
    "CreatingExpense": am.State(remove=EXPENSE_GROUP),
    "ExpenseCreated": am.State(remove=EXPENSE_GROUP),
    "WaitingForApproval": am.State(auto=True, remove=APPROVAL_GROUP),
    "ApprovalGranted": am.State(remove=APPROVAL_GROUP),
    "PaymentInProgress": am.State(auto=True, remove=PAYMENT_GROUP),
    "PaymentCompleted": am.State(remove=PAYMENT_GROUP),
}


async def test_expense() -> None:
    """examples/temporal_expense TestExpense: async final handlers call the
    (mocked) APIs; an external approval flow sends a fake then the real ID,
    and ApprovalGrantedEnter accepts only the expense's own ID."""
    calls: list[str] = []
    expense_send, expense_recv = anyio.create_memory_object_stream[str](0)
    approval_send, approval_recv = anyio.create_memory_object_stream[str](0)

    async def expense_api(expense_id: str) -> str:
        calls.append("expense API called")
        await expense_send.send(expense_id)  # start the external approval flow
        return "SUCCEED"

    async def payment_api(expense_id: str) -> str:
        calls.append("payment API called")
        await anyio.lowlevel.checkpoint()
        return "SUCCEED"

    async def approval_flow() -> None:
        expense_id = await expense_recv.receive()
        calls.append("approval request received: " + expense_id)
        await approval_send.send("fake")
        await approval_send.send(expense_id)

    class Handlers(am.ExceptionHandler):
        expense_id = ""

        async def CreatingExpenseState(self, e: am.Event) -> None:
            self.expense_id = e.args["expenseID"]
            body = await expense_api(self.expense_id)
            if body != "SUCCEED":
                e.machine.add_err(RuntimeError(body))
                return
            e.machine.add1("ExpenseCreated")

        def ApprovalGrantedEnter(self, e: am.Event) -> bool:
            return bool(e.args["approvedID"] == self.expense_id)

        async def PaymentInProgressState(self, e: am.Event) -> None:
            body = await payment_api(self.expense_id)
            if body != "SUCCEED":
                e.machine.add_err(RuntimeError(body))
                return
            e.machine.add1("PaymentCompleted")

    async def expense_flow(mach: am.Machine, expense_id: str) -> None:
        err = mach.when_err()
        mach.add1("CreatingExpense", {"expenseID": expense_id})
        # WaitingForApproval is an automatic state
        assert (
            await first(err=err.wait, ok=mach.when1("WaitingForApproval").wait) == "ok"
        )

        granted = False
        received: list[str] = []
        while not granted:

            async def approval() -> None:
                approved_id = await approval_recv.receive()
                received.append(approved_id)
                mach.add1("ApprovalGranted", {"approvedID": approved_id})

            won = await first(
                approval=approval,
                err=err.wait,
                granted=mach.when1("ApprovalGranted").wait,
            )
            assert won != "err", mach.err
            granted = mach.is1("ApprovalGranted")
        assert received == ["fake", expense_id]

        won = await first(err=err.wait, ok=mach.when1("PaymentCompleted").wait)
        assert won == "ok"

    mach = am.Machine(EXPENSE, handlers=Handlers())
    log = log_changes(mach)
    with (
        anyio.fail_after(TIMEOUT),
        expense_send,
        expense_recv,
        approval_send,
        approval_recv,
    ):
        async with mach:
            async with anyio.create_task_group() as tg:
                tg.start_soon(approval_flow)
                await expense_flow(mach, "123")
            assert mach.is1("PaymentCompleted")
            assert (
                str(mach) == "(ExpenseCreated:1 ApprovalGranted:1 PaymentCompleted:1)"
            )
            assert mach.string_all() == (
                "(ExpenseCreated:1 ApprovalGranted:1 PaymentCompleted:1) "
                "[CreatingExpense:2 WaitingForApproval:2 PaymentInProgress:2 Exception:0]"
            )
            # the order of the concurrent calls is up to the scheduler
            assert sorted(calls) == [
                "approval request received: 123",
                "expense API called",
                "payment API called",
            ]
            assert log.lines[:2] == [
                "[state] +CreatingExpense",
                "[auto_] +WaitingForApproval +PaymentInProgress",
            ]
            assert "[state] +ApprovalGranted -WaitingForApproval" in log.lines
            assert "[state] +PaymentCompleted -PaymentInProgress" in log.lines


# ---------------------------------------------------------------------------
# examples/temporal_fileprocessing TestFileProcessing

FILE_PROCESSING = {
    "DownloadingFile": am.State(remove=["DownloadingFile", "FileDownloaded"]),
    "FileDownloaded": am.State(remove=["DownloadingFile", "FileDownloaded"]),
    "ProcessingFile": am.State(
        auto=True,
        require=["FileDownloaded"],
        remove=["ProcessingFile", "FileProcessed"],
    ),
    "FileProcessed": am.State(remove=["ProcessingFile", "FileProcessed"]),
    "UploadingFile": am.State(
        auto=True, require=["FileProcessed"], remove=["UploadingFile", "FileUploaded"]
    ),
    "FileUploaded": am.State(remove=["UploadingFile", "FileUploaded"]),
}


async def test_file_processing() -> None:
    """examples/temporal_fileprocessing TestFileProcessing (an in-memory blob
    store and temp files); End handlers clean up the temp files."""
    files: dict[str, bytes] = {}

    class Handlers(am.ExceptionHandler):
        filename = ""
        downloaded = ""
        processed = ""

        async def DownloadingFileState(self, e: am.Event) -> None:
            self.filename = e.args["filename"]
            await anyio.lowlevel.checkpoint()
            self.downloaded = "tmp-download"
            files[self.downloaded] = (
                b"dummy content for fileID:" + self.filename.encode()
            )
            e.machine.add1("FileDownloaded")

        async def ProcessingFileState(self, e: am.Event) -> None:
            data = files[self.downloaded]
            await anyio.lowlevel.checkpoint()
            self.processed = "tmp-processed"
            files[self.processed] = data.upper()
            e.machine.log("processFileActivity succeed %s", self.processed)
            e.machine.add1("FileProcessed")

        def ProcessingFileEnd(self, e: am.Event) -> None:
            e.machine.log("cleanup %s", self.downloaded)
            files.pop(self.downloaded, None)

        async def UploadingFileState(self, e: am.Event) -> None:
            assert self.processed in files
            await anyio.lowlevel.checkpoint()
            e.machine.add1("FileUploaded")

        def UploadingFileEnd(self, e: am.Event) -> None:
            e.machine.log("cleanup %s", self.processed)
            files.pop(self.processed, None)

    mach = am.Machine(FILE_PROCESSING, handlers=Handlers())
    log = log_changes(mach)
    async with mach:
        mach.add1("DownloadingFile", {"filename": "foo.txt"})
        with anyio.fail_after(TIMEOUT):
            won = await first(
                err=mach.when_err().wait, ok=mach.when1("FileUploaded").wait
            )
        assert won == "ok", mach.err
        assert mach.is_(["FileUploaded"])
        assert mach.string_all() == (
            "(FileDownloaded:1 FileProcessed:1 FileUploaded:1) "
            "[DownloadingFile:2 ProcessingFile:2 UploadingFile:2 Exception:0]"
        )
        assert files == {}
        changes = [
            line for line in log.lines if line.startswith(("[state]", "[auto_]"))
        ]
        assert changes == [
            "[state] +DownloadingFile",
            "[state] +FileDownloaded -DownloadingFile",
            "[auto_] +ProcessingFile",
            "[state] +FileProcessed -ProcessingFile",
            "[auto_] +UploadingFile",
            "[state] +FileUploaded -UploadingFile",
        ]
        assert "[exter] cleanup tmp-download" in log.lines
        assert "[exter] cleanup tmp-processed" in log.lines


# ---------------------------------------------------------------------------
# examples/fan_out_in TestFanOutIn (with Go's x/helpers `FanOutIn` pattern:
# Python schemas are fixed at init, docs/design/semantics.md §12.11, so the task states are
# generated up front)


def fan_out_in_schema(name: str, total: int) -> dict[str, am.State]:
    tasks = [f"{name}{i}" for i in range(total)]
    dones = [f"{t}Done" for t in tasks]
    schema: dict[str, am.State] = {
        name: am.State(require=["Start"]),
        f"{name}Done": am.State(auto=True, require=dones, remove=[name]),
        "Start": am.State(),
        "Ready": am.State(auto=True, require=[f"{name}Done"]),
        "Healthcheck": am.State(multi=True),
    }
    for task, done in zip(tasks, dones, strict=True):
        schema[task] = schema[name]
        schema[done] = am.State(remove=[task])
    return schema


async def test_fan_out_in() -> None:
    """examples/fan_out_in TestFanOutIn: 15 tasks, at most 3 at once; each
    finished task re-triggers the fan-out, all done activates TaskDone and
    then Ready (Go picks the next task at random, here in order)."""
    total, concurrency = 15, 3
    tasks = [f"Task{i}" for i in range(total)]
    started: list[str] = []
    max_running = 0

    class Fan(am.ExceptionHandler):
        def AnyState(self, e: am.Event) -> None:
            nonlocal max_running
            mach = e.machine
            max_running = max(max_running, len([t for t in tasks if mach.is1(t)]))
            for state in e.transition.called_states:
                if state in tasks:
                    self.fn(mach, state, state + "Done")
                elif (
                    state.startswith("Task")
                    and state.endswith("Done")
                    and state != "TaskDone"
                ):
                    mach.add1("Task")
                elif state == "Task":
                    remaining = [t for t in tasks if not mach.any1(t + "Done", t)]
                    running = len([t for t in tasks if mach.is1(t)])
                    for task in remaining[: max(0, concurrency - running)]:
                        mach.add1(task)

        def fn(self, mach: am.Machine, state: str, done: str) -> None:
            ctx = mach.new_state_ctx(state)

            async def task() -> None:
                started.append(state)
                await anyio.lowlevel.checkpoint()  # amhelp.Wait(ctx, time.Second)
                if ctx.expired:
                    return
                mach.add1(done)

            mach.fork(ctx, task)

    mach = am.Machine(fan_out_in_schema("Task", total), id="fan", handlers=Fan())
    async with mach:
        mach.add(["Start", "Task"])
        with anyio.fail_after(TIMEOUT):
            await mach.when1("Ready").wait()
        assert mach.not1("Exception"), mach.err
        assert sorted(started) == sorted(tasks)
        assert max_running == concurrency
        assert mach.is_([f"{t}Done" for t in tasks] + ["TaskDone", "Ready", "Start"])
        assert mach.not_(["Task", *tasks])


bound_async_tests(globals(), TIMEOUT)


def test_switch_go() -> None:
    """Go's `Machine.Switch`: the first active state of the groups, in order."""
    m = am.Machine({s: am.State() for s in "ABCD"})
    assert m.switch(["A", "B"]) == ""
    m.add(["B", "C"])
    assert m.switch(["A", "B", "C"]) == "B"
    assert m.switch(["D"], ["C", "B"]) == "C"
    assert m.switch() == ""
    with pytest.raises(am.StateNameError, match="Nope"):
        m.switch(["A", "Nope"])
    with pytest.raises(TypeError):
        m.switch("AB")
    m.dispose()
    assert m.switch(["B"]) == ""
