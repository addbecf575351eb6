"""Ported from asyncmachine-go: pkg/states (ss_basic, ss_connected,
ss_disposed), am.NewStates / NewStateGroups (pkg/machine TestStatesFile,
TestGroups), the mach_template example, and tools/cmd/am-gen's states-file
command (tools/generator TestAll / TestBasicConnected)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Final

import anyio
import pytest

import asyncmachine as am
from asyncmachine.gen import main as am_gen
from asyncmachine.states import (
    BASIC_SCHEMA,
    CONN_POOL_SCHEMA,
    CONNECTED_SCHEMA,
    DISPOSED_ARG_HANDLER,
    DISPOSED_SCHEMA,
    BasicStates,
    ConnectedGroups,
    ConnectedStates,
    ConnectingError,
    ConnPoolGroups,
    ConnPoolStates,
    DisposedHandlers,
    DisposedStates,
    add_err_connecting,
)

# ---------------------------------------------------------------------------
# the relations, exactly as in Go's pkg/states

EXC = "Exception"

GO_BASIC = {
    "ErrNetwork": am.State(multi=True, add=[EXC], require=[EXC]),
    "ErrHandlerTimeout": am.State(multi=True, add=[EXC], require=[EXC]),
    "Start": am.State(),
    "Ready": am.State(require=["Start"]),
    "Healthcheck": am.State(multi=True),
    "Heartbeat": am.State(),
}
GO_CONNECTED_GROUP = ("Connecting", "Connected", "Disconnecting", "Disconnected")
GO_CONNECTED = {
    "ErrConnecting": am.State(require=[EXC]),
    "Connecting": am.State(require=["Start"], remove=GO_CONNECTED_GROUP),
    "Connected": am.State(require=["Start"], remove=GO_CONNECTED_GROUP),
    "Disconnecting": am.State(remove=GO_CONNECTED_GROUP),
    "Disconnected": am.State(auto=True, remove=GO_CONNECTED_GROUP),
}
GO_CONN_POOL = {
    "ErrConnecting": am.State(require=[EXC]),
    "Disconnected": am.State(remove=["Connecting", "ConnectedFully", "Disconnecting"]),
    "Connecting": am.State(require=["Start"], remove=["Disconnecting"]),
    "Connected": am.State(require=["Start"], remove=["Disconnected"]),
    "ConnectedFully": am.State(require=["Connected"], remove=["Disconnected"]),
    "Disconnecting": am.State(remove=["ConnectedFully", "Connected", "Connecting"]),
}
GO_DISPOSED = {
    "RegisterDisposal": am.State(multi=True),
    "Disposing": am.State(remove=["Start", EXC]),
    "Disposed": am.State(remove=["Start", EXC, "Disposing"]),
}


@pytest.mark.parametrize(
    ("schema", "go"),
    [
        (BASIC_SCHEMA, GO_BASIC),
        (CONNECTED_SCHEMA, {**GO_BASIC, **GO_CONNECTED}),
        (CONN_POOL_SCHEMA, {**GO_BASIC, **GO_CONN_POOL}),
        (DISPOSED_SCHEMA, {**GO_BASIC, **GO_DISPOSED}),
    ],
    ids=["basic", "connected", "conn_pool", "disposed"],
)
def test_relations_match_go(schema: am.Schema, go: dict[str, am.State]) -> None:
    # each of ours is Go's own schema merged over Go's BasicSchema
    assert dict(schema) == go


def test_groups_match_go() -> None:
    assert ConnectedGroups.Connected == GO_CONNECTED_GROUP
    assert ConnPoolGroups.Connected == ("Connected", "Disconnected")


def test_state_names_are_their_attribute_names() -> None:
    for cls in (BasicStates, ConnectedStates, ConnPoolStates, DisposedStates):
        for name in cls.names():
            assert getattr(cls, name) == name
    assert BasicStates.Exception == EXC
    assert DisposedStates.Disposing == "Disposing"


def test_go_basic_schema_machine() -> None:
    """pkg/history tests build a machine straight from ssam.BasicSchema."""
    mach = am.Machine(BASIC_SCHEMA, id="MyMach1")
    assert mach.add1(BasicStates.Ready) is am.Result.CANCELED
    mach.add([BasicStates.Start, BasicStates.Ready])
    assert mach.is_([BasicStates.Start, BasicStates.Ready])
    mach.remove1(BasicStates.Start)
    assert mach.not_([BasicStates.Start, BasicStates.Ready])
    before = mach.tick(BasicStates.Healthcheck)
    mach.add1(BasicStates.Healthcheck)
    mach.add1(BasicStates.Healthcheck)
    assert mach.tick(BasicStates.Healthcheck) == before + 3  # Multi: +1, then +2


def test_connected_auto_disconnected_and_exclusive() -> None:
    mach = am.Machine(CONNECTED_SCHEMA)
    # Disconnected is Auto: it comes with the first transition
    mach.add1(ConnectedStates.Start)
    assert mach.active_states == [ConnectedStates.Start, ConnectedStates.Disconnected]
    for state in GO_CONNECTED_GROUP[:3]:
        mach.add1(state)
        assert [s for s in mach.active_states if s in GO_CONNECTED_GROUP] == [state]
    mach.remove1(ConnectedStates.Start)
    # Connecting and Connected require Start; Disconnecting does not
    assert mach.is1(ConnectedStates.Disconnecting)
    assert mach.add1(ConnectedStates.Connecting) is am.Result.CANCELED


def test_conn_pool_partial_and_full() -> None:
    mach = am.Machine(CONN_POOL_SCHEMA)
    mach.add([ConnPoolStates.Start, ConnPoolStates.Disconnected])
    # an active Disconnected blocks Connecting
    assert mach.add1(ConnPoolStates.Connecting) is am.Result.CANCELED
    mach.remove1(ConnPoolStates.Disconnected)
    mach.add1(ConnPoolStates.Connecting)
    mach.add1(ConnPoolStates.Connected)
    # unlike the Connected group, Connecting stays while some connect
    assert mach.is_([ConnPoolStates.Connecting, ConnPoolStates.Connected])
    assert mach.not1(ConnPoolStates.Disconnected)
    mach.add1(ConnPoolStates.ConnectedFully)
    mach.add1(ConnPoolStates.Disconnecting)
    assert mach.not_(
        [
            ConnPoolStates.Connecting,
            ConnPoolStates.Connected,
            ConnPoolStates.ConnectedFully,
        ]
    )
    mach.add1(ConnPoolStates.Disconnected)
    assert mach.not1(ConnPoolStates.Disconnecting)


def test_add_err_connecting_wraps_the_error() -> None:
    """Go's AddErrConnecting: `error connecting: <err>` as ErrConnecting."""
    mach = am.Machine(CONNECTED_SCHEMA)
    cause = OSError("no route")
    assert add_err_connecting(mach, cause, {"addr": "x"}) is am.Result.EXECUTED
    assert mach.is_([ConnectedStates.ErrConnecting, EXC])
    assert isinstance(mach.err, ConnectingError)
    assert str(mach.err) == "error connecting: no route"
    assert mach.err.__cause__ is cause


# ---------------------------------------------------------------------------
# am.NewStates / am.NewStateGroups: pkg/machine TestStatesFile


class SuperStates(am.StatesBase):
    Foo = am.state()
    Baz = am.state()


class SuperGroups:
    FooBaz: Final = (SuperStates.Foo, SuperStates.Baz)


SUPER_SCHEMA: Final[am.Schema] = {
    SuperStates.Foo: am.State(),
    SuperStates.Baz: am.State(),
}


class ChildStates(SuperStates):
    Bar = am.state()


class ChildGroups(SuperGroups):
    FooBar: Final = (ChildStates.Foo, ChildStates.Bar)


CHILD_SCHEMA: Final[am.Schema] = am.schema_merge(
    SUPER_SCHEMA, {ChildStates.Bar: am.State()}
)


def test_states_file() -> None:
    assert ChildStates.Foo == "Foo"
    assert ChildStates.Bar == "Bar"
    assert ChildGroups.FooBar == ("Foo", "Bar")
    assert ChildGroups.FooBaz == ("Foo", "Baz")  # inherited group
    assert CHILD_SCHEMA["Foo"] is not None
    ChildStates.check_schema(CHILD_SCHEMA)
    ChildStates.check_groups(ChildGroups)
    assert ChildStates.names() == ["Foo", "Baz", "Bar", EXC]


class Groups0States(am.StatesBase):
    State00 = am.state()
    State01 = am.state()


class Groups1States(Groups0States):
    State10 = am.state()
    State11 = am.state()


class Groups2States(Groups1States):
    State20 = am.state()
    State21 = am.state()


def test_deep_inheritance_names() -> None:
    """pkg/machine TestGroups: three levels, parents' names first (ours keep
    Exception last, where Go lists the embedded StatesBase's first)."""
    names = Groups2States.names()
    assert names == [
        "State00",
        "State01",
        "State10",
        "State11",
        "State20",
        "State21",
        EXC,
    ]
    schema = {n: am.State() for n in names if n != EXC}
    assert am.Machine(schema).state_names == names


# ---------------------------------------------------------------------------
# the mach_template example: basic + connected + disposed mixins


class MachTemplateStates(ConnectedStates, DisposedStates):
    ErrExample = am.state()
    Foo = am.state()
    Bar = am.state()
    Baz = am.state()
    BazDone = am.state()
    Channel = am.state()


class MachTemplateGroups(ConnectedGroups):
    Mutex: Final = (MachTemplateStates.Foo, MachTemplateStates.Bar)


S = MachTemplateStates
MACH_TEMPLATE_SCHEMA: Final[am.Schema] = am.schema_merge(
    BASIC_SCHEMA,
    CONNECTED_SCHEMA,
    DISPOSED_SCHEMA,
    {
        S.ErrExample: am.State(require=[S.Exception]),
        S.Foo: am.State(remove=MachTemplateGroups.Mutex),
        S.Bar: am.State(remove=MachTemplateGroups.Mutex),
        S.Baz: am.State(multi=True),
        S.BazDone: am.State(multi=True),
        S.Channel: am.State(),
    },
)


def test_mach_template_mixins() -> None:
    S.check_schema(MACH_TEMPLATE_SCHEMA)
    S.check_groups(MachTemplateGroups)
    mach = am.Machine(MACH_TEMPLATE_SCHEMA, id="mach-template")
    assert mach.state_names == S.names()
    assert set(S.names()) == {
        *GO_BASIC,
        *GO_CONNECTED,
        *GO_DISPOSED,
        "ErrExample",
        "Foo",
        "Bar",
        "Baz",
        "BazDone",
        "Channel",
        EXC,
    }
    mach.add([S.Start, S.Foo])
    mach.add1(S.Bar)
    assert mach.is1(S.Bar) and mach.not1(S.Foo)
    assert MachTemplateGroups.Connected == GO_CONNECTED_GROUP


# ---------------------------------------------------------------------------
# DisposedHandlers: disposal in states (Go's ssam.DisposedHandlers)


class Mach(DisposedHandlers):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []


async def test_disposal_runs_registered_handlers_then_disposes() -> None:
    h = Mach()
    seen_ctx: list[am.StateCtx] = []

    def sync_handler(mach_id: str, ctx: am.StateCtx) -> None:
        seen_ctx.append(ctx)
        h.calls.append(f"sync:{mach_id}")

    async def async_handler(mach_id: str, ctx: am.StateCtx) -> None:
        await anyio.lowlevel.checkpoint()
        h.calls.append(f"async:{mach_id}:{ctx.expired}")

    mach = am.Machine(DISPOSED_SCHEMA, id="disp", handlers=h)
    async with mach:
        mach.add1(DisposedStates.Start)
        assert (
            mach.add1(
                DisposedStates.RegisterDisposal, {DISPOSED_ARG_HANDLER: sync_handler}
            )
            is am.Result.EXECUTED
        )
        mach.add1(
            DisposedStates.RegisterDisposal, {DISPOSED_ARG_HANDLER: async_handler}
        )
        assert h.disposal_handlers == [sync_handler, async_handler]
        disposed = mach.when_disposed()
        seen_disposed = mach.when1(DisposedStates.Disposed)
        mach.add1(DisposedStates.Disposing)
        assert mach.not1(DisposedStates.Start)  # Disposing removes Start
        await seen_disposed
        await disposed
    assert mach.disposed
    assert h.calls == ["sync:disp", "async:disp:False"]
    assert len(seen_ctx) == 1


async def test_disposal_stops_when_disposing_ends() -> None:
    h = Mach()
    started = anyio.Event()
    release = anyio.Event()

    async def slow(mach_id: str, ctx: am.StateCtx) -> None:
        h.calls.append("slow")
        started.set()
        await release.wait()

    def never(mach_id: str, ctx: am.StateCtx) -> None:
        h.calls.append("never")

    mach = am.Machine(DISPOSED_SCHEMA, handlers=h)
    async with mach:
        for fn in (slow, never):
            mach.add1(DisposedStates.RegisterDisposal, {DISPOSED_ARG_HANDLER: fn})
        mach.add1(DisposedStates.Disposing)
        await started.wait()
        mach.remove1(DisposedStates.Disposing)  # cancels DisposingState
        release.set()
        await anyio.lowlevel.checkpoint()
        assert mach.not1(DisposedStates.Disposed)
        assert not mach.disposed
        mach.dispose()
    assert h.calls == ["slow"]


async def test_disposal_sync_handler_ending_disposing() -> None:
    h = Mach()

    def abort(mach_id: str, ctx: am.StateCtx) -> None:
        h.calls.append("abort")
        ctx_mach.remove1(DisposedStates.Disposing)
        assert ctx.expired

    def never(mach_id: str, ctx: am.StateCtx) -> None:
        h.calls.append("never")

    ctx_mach = mach = am.Machine(DISPOSED_SCHEMA, handlers=h)
    async with mach:
        for fn in (abort, never):
            mach.add1(DisposedStates.RegisterDisposal, {DISPOSED_ARG_HANDLER: fn})
        ended = mach.when_ticks(DisposedStates.Disposing, 2)  # on, then off
        mach.add1(DisposedStates.Disposing)
        await ended
        await anyio.lowlevel.checkpoint()
        assert mach.not1(DisposedStates.Disposed)
        mach.dispose()
    assert h.calls == ["abort"]


def test_register_disposal_refuses_a_bad_handler() -> None:
    h = Mach()
    mach = am.Machine(DISPOSED_SCHEMA, handlers=h)
    # a dry run only answers
    assert mach.can_add([DisposedStates.RegisterDisposal]) is am.Result.CANCELED
    assert mach.not1(EXC)
    res = mach.add1(DisposedStates.RegisterDisposal, {DISPOSED_ARG_HANDLER: "nope"})
    assert res is am.Result.CANCELED
    assert mach.is1(EXC)
    assert isinstance(mach.err, TypeError)
    assert DISPOSED_ARG_HANDLER in str(mach.err)
    assert h.disposal_handlers == []


# ---------------------------------------------------------------------------
# am-gen states-file, as Go's tools/cmd/am-gen


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_go_gen_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GO_ARGV = [
    "states-file",
    "--states",
    "State1,State2:multi",
    "--inherit",
    "basic,connected",
    "--groups",
    "Group1,Group2",
    "--name",
    "MyMach",
]


def test_am_gen_writes_ss_file_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`am-gen states-file ... --name MyMach` creates ss_my_mach in CWD and
    refuses to overwrite it without --force."""
    monkeypatch.chdir(tmp_path)
    assert am_gen(GO_ARGV) == 0
    path = tmp_path / "ss_my_mach.py"
    assert capsys.readouterr().out == "Generated ss_my_mach.py\n"
    first = path.read_text()

    assert am_gen([*GO_ARGV[:2], "State3", *GO_ARGV[3:]]) != 0
    out, err = capsys.readouterr()
    assert out == "" and "already exists" in err and "--force" in err
    assert path.read_text() == first

    assert am_gen([*GO_ARGV[:2], "State3", *GO_ARGV[3:], "--force"]) == 0
    assert "State3 = am.state()" in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ss_my_mach.py"]


def test_am_gen_basic_connected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """tools/generator TestBasicConnected: the generated schema and groups."""
    monkeypatch.chdir(tmp_path)
    assert am_gen(GO_ARGV) == 0
    module = _load(tmp_path / "ss_my_mach.py")
    states, groups = module.MyMachStates, module.MyMachGroups
    schema = module.MY_MACH_SCHEMA
    assert issubclass(states, ConnectedStates)
    assert states.State1 == "State1" and states.State2 == "State2"
    assert schema["State1"] == am.State()
    assert schema["State2"] == am.State(multi=True)
    assert {k: v for k, v in schema.items() if k in GO_BASIC} == GO_BASIC
    assert {k: v for k, v in schema.items() if k in GO_CONNECTED} == GO_CONNECTED
    assert groups.Group1 == () and groups.Group2 == ()
    assert groups.Connected == GO_CONNECTED_GROUP
    states.check_schema(schema)
    states.check_groups(groups)
    am.Machine(schema)


def test_am_gen_all_builtin_inherits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """tools/generator TestAll (the parts with a Python counterpart)."""
    monkeypatch.chdir(tmp_path)
    argv = [*GO_ARGV]
    argv[4] = "basic,connected,disposed"
    assert am_gen([*argv, "-o", "-"]) == 0
    out = capsys.readouterr().out
    ns: dict[str, object] = {}
    exec(compile(out, "<gen>", "exec"), ns)
    states = ns["MyMachStates"]
    assert isinstance(states, type) and issubclass(states, am.StatesBase)
    assert issubclass(states, ConnectedStates) and issubclass(states, DisposedStates)
    schema = ns["MY_MACH_SCHEMA"]
    assert isinstance(schema, dict)
    assert {k: v for k, v in schema.items() if k in GO_DISPOSED} == GO_DISPOSED
    assert list(tmp_path.iterdir()) == []  # -o - writes nothing
