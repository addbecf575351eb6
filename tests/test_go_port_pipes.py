"""Ported from asyncmachine-go: pkg/states/pipes (pipes.go's documented
behaviour; pipes_test.go only disposes a machine), examples/pipes,
pkg/states/README.md ("Piping Manually"), pkg/rpc/netmach_test.go
(TestPipes: BindAny) and the release notes of `Sync`.

Go pipes mutate the target in a goroutine; here the target is mutated from
the source's final handler (at once when idle), so the checks can follow
the mutation directly. Running machines are waited on with when-events.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import anyio
import pytest

import asyncmachine as am
import asyncmachine.helpers as amhelp
from asyncmachine import pipes
from deadline import bound_async_tests

TIMEOUT = 10


def example_schema() -> dict[str, am.State]:
    """The schema of both machines in examples/pipes."""
    return {
        "Ready": am.State(),
        "Foo": am.State(),
        "Bar": am.State(),
        "Custom": am.State(),
        "Healthcheck": am.State(multi=True),
    }


def no_rels(id: str, *extra: str) -> am.Machine:
    """Go's utils.NewNoRels: A, B, C, D without relations (plus `extra`)."""
    return am.Machine({n: am.State() for n in ("A", "B", "C", "D", *extra)}, id=id)


# ------------------------------------------------------------ examples/pipes


async def test_example_pipes() -> None:
    """examples/pipes: BindReady, BindErr, Bind and BindMany between two
    running machines; "pipes are async, wait needed"."""
    async with (
        am.Machine(example_schema(), id="source") as mach1,
        am.Machine(example_schema(), id="destination") as mach2,
    ):
        pipes.bind_ready(mach1, mach2, "", "")
        pipes.bind_err(mach1, mach2, "")
        pipes.bind(mach1, mach2, "Custom", "", "")
        pipes.bind_many(mach1, mach2, ["Foo", "Bar"], None)

        mach1.add1("Ready")
        mach1.add(["Foo", "Bar"])
        with anyio.fail_after(1):
            assert await amhelp.wait_for_all(mach2.when(["Foo", "Bar", "Ready"]))
        assert mach2.active_states == ["Ready", "Foo", "Bar"]

        # the other pipes of the example
        mach1.add1("Custom")
        assert mach2.is1("Custom")
        mach1.remove(["Custom", "Foo"])
        assert mach2.active_states == ["Ready", "Bar"]
        mach1.add_err(ValueError("boom"))
        assert mach2.is_err() and isinstance(mach2.err, ValueError)


# --------------------------------------------------------- pipes.go: Add/Remove


def test_readme_piping_manually() -> None:
    """pkg/states/README.md: a handler struct of `ampipe.Add` and
    `ampipe.Remove` bound to the source."""
    source = am.Machine({"Ready": am.State()}, id="source")
    target = am.Machine({"RpcReady": am.State()}, id="target")
    h = SimpleNamespace(
        ReadyState=pipes.add(source, target, "Ready", "RpcReady"),
        ReadyEnd=pipes.remove(source, target, "Ready", "RpcReady"),
    )
    source.bind_handlers(h)
    source.add1("Ready")
    assert target.is1("RpcReady")
    source.remove1("Ready")
    assert not target.is1("RpcReady")
    assert target.tick("RpcReady") == 2


def test_manual_pipes_as_class_attributes_and_default_names() -> None:
    """targetState defaults to sourceState; the handlers also work as class
    attributes of a handler class."""
    source = am.Machine({"Foo": am.State()}, id="source")
    target = am.Machine({"Foo": am.State()}, id="target")

    class Piped:
        FooState = pipes.add(source, target, "Foo")
        FooEnd = pipes.remove(source, target, "Foo")

    source.bind_handlers(Piped())
    source.add1("Foo", {"id": 1})
    assert target.is1("Foo")
    source.remove1("Foo")
    assert not target.is1("Foo")
    assert repr(Piped.FooState) == "<PipeHandler add Foo->Foo source->target>"
    assert Piped.FooEnd.pipe.kind == "remove Foo->Foo"


def test_add_passes_args_and_flat_does_not() -> None:
    """Add passes `e.Args` to the target; AddFlat passes none."""
    seen: list[dict[str, Any]] = []

    class Target:
        def FooState(self, e: am.Event) -> None:
            seen.append(dict(e.args))

        def BarState(self, e: am.Event) -> None:
            seen.append(dict(e.args))

    source = am.Machine({"Foo": am.State(), "Bar": am.State()}, id="source")
    target = am.Machine(
        {"Foo": am.State(), "Bar": am.State()}, id="target", handlers=Target()
    )
    source.bind_handlers(
        SimpleNamespace(
            FooState=pipes.add(source, target, "Foo"),
            BarState=pipes.add_flat(source, target, "Bar"),
        )
    )
    source.add(["Foo", "Bar"], {"id": 7})
    assert seen == [{"id": 7}, {}]


def test_flat_pipes_skip_needless_mutations() -> None:
    """AddFlat skips an add when the target state is active, RemoveFlat a
    remove when it is inactive: a Multi source state pipes once."""
    source = am.Machine(example_schema(), id="source")
    target = am.Machine(example_schema(), id="target")
    source.bind_handlers(
        SimpleNamespace(
            HealthcheckState=pipes.add_flat(source, target, "Healthcheck"),
            ReadyEnd=pipes.remove_flat(source, target, "Ready"),
        )
    )
    source.add1("Healthcheck")
    source.add1("Healthcheck")
    assert target.tick("Healthcheck") == 1  # the plain Add would make it 3
    source.add1("Ready")
    source.remove1("Ready")
    assert target.tick("Ready") == 0  # nothing to remove
    target.add1("Ready")
    source.add1("Ready")
    source.remove1("Ready")
    assert target.tick("Ready") == 2


def test_add_of_an_err_state_includes_exception() -> None:
    """Add of a target state prefixed `Err` adds `Exception` with it."""
    source = am.Machine({"Failed": am.State()}, id="source")
    target = am.Machine({"ErrNetwork": am.State(require=["Exception"])}, id="target")
    for make in (pipes.add, pipes.add_flat):
        target.remove(["ErrNetwork", "Exception"])
        source.remove1("Failed")
        h = SimpleNamespace(FailedState=make(source, target, "Failed", "ErrNetwork"))
        binding = source.bind_handlers(h)
        source.add1("Failed")
        assert target.is_(["ErrNetwork", "Exception"]), make
        source.detach_handlers(binding)


def test_manual_pipes_stop_on_dispose() -> None:
    """pipes.go registers OnDispose on both machines (gcHandler)."""
    source = no_rels("source")
    target = no_rels("target")
    add_a = pipes.add(source, target, "A")
    source.bind_handlers(SimpleNamespace(AState=add_a))
    target.dispose()
    source.add1("A")  # no error from the disposed target
    assert add_a.pipe.closed


def test_manual_pipes_check_names() -> None:
    source = no_rels("source")
    target = no_rels("target")
    with pytest.raises(am.StateNameError, match="Nope"):
        pipes.add(source, target, "Nope")
    with pytest.raises(am.StateNameError, match="Nope"):
        pipes.remove_flat(source, target, "A", "Nope")
    with pytest.raises(ValueError, match="different"):
        pipes.add(source, source, "A", "B")


# ------------------------------------------------------------------- binds


def test_bind_active_and_inactive_states() -> None:
    """Bind: activeState is added on activation, inactiveState removed on
    deactivation; both default to the source state."""
    source = am.Machine({"Connected": am.State()}, id="source")
    target = am.Machine(
        {"SourceConnected": am.State(), "SourceDisconnected": am.State()},
        id="target",
    )
    pipes.bind(source, target, "Connected", "SourceConnected", "SourceDisconnected")
    target.add1("SourceDisconnected")
    source.add1("Connected")
    assert target.is_(["SourceConnected", "SourceDisconnected"])
    source.remove1("Connected")
    assert target.active_states == ["SourceConnected"]


def test_bind_ready_and_start_defaults() -> None:
    """BindReady/BindStart: empty names default to Ready/Start, an empty
    inactive state to the active one."""
    source = am.Machine({"Start": am.State(), "Ready": am.State()}, id="source")
    target = am.Machine(
        {"Start": am.State(), "Ready": am.State(), "RpcReady": am.State()},
        id="target",
    )
    pipes.bind_start(source, target, "", "")
    pipes.bind_ready(source, target, "RpcReady", "")
    source.add(["Start", "Ready"])
    assert target.active_states == ["Start", "RpcReady"]
    source.remove(["Start", "Ready"])
    assert target.active_states == []


def test_bind_err_defaults_and_custom_state() -> None:
    """BindErr: empty defaults to Exception, a custom state also adds
    Exception (node_client.go: BindErr(rpc, mach, ErrSupervisor))."""
    schema = {"ErrSupervisor": am.State(require=["Exception"])}
    source = am.Machine({}, id="source")
    plain = am.Machine({}, id="plain")
    custom = am.Machine(schema, id="custom")
    pipes.bind_err(source, plain, "")
    pipes.bind_err(source, custom, "ErrSupervisor")
    err = OSError("down")
    source.add_err(err)
    assert plain.is_err() and plain.err is err
    assert custom.is_(["ErrSupervisor", "Exception"]) and custom.err is err


def test_bind_many_mirrored_lists() -> None:
    """BindMany: target states default to the source states; the lists must
    have the same length."""
    source = no_rels("source")
    target = no_rels("target", "E", "F")
    pipes.bind_many(source, target, ["A", "B"], None)
    pipes.bind_many(source, target, ["C", "D"], ["E", "F"])
    source.add(["A", "B", "C", "D"])
    assert target.active_states == ["A", "B", "E", "F"]
    source.remove(["B", "D"])
    assert target.active_states == ["A", "E"]
    with pytest.raises(ValueError, match="2 source states but 1 target"):
        pipes.bind_many(source, target, ["A", "B"], ["A"])


def test_bind_connected() -> None:
    """BindConnected: the four states of a ConnectedSchema machine to custom
    states, each optional (node_client.go)."""
    from asyncmachine.states import CONNECTED_SCHEMA, ConnectedStates

    ss = ConnectedStates
    client = am.Machine(CONNECTED_SCHEMA, id="client")
    app = am.Machine(
        {"SuperConnecting": am.State(), "SuperConnected": am.State()}, id="app"
    )
    pipes.bind_connected(client, app, "", "SuperConnecting", "SuperConnected", "")
    client.add1(ss.Start)
    client.add1(ss.Connecting)
    assert app.active_states == ["SuperConnecting"]
    client.add1(ss.Connected)
    assert app.active_states == ["SuperConnected"]
    client.add1(ss.Disconnecting)
    assert app.active_states == []
    with pytest.raises(ValueError, match="at least one"):
        pipes.bind_connected(client, app)
    with pytest.raises(am.StateNameError, match="Connected"):
        pipes.bind_connected(app, client, connected="Connected")


async def test_bind_any_netmach_pipes() -> None:
    """netmach_test.go TestPipes: sync a local machine with Set, BindAny it
    to the source, mutate the source and wait for the local one."""
    async with no_rels("net-src") as src, no_rels("local") as local:
        src.add1("A")
        local.set(src.active_states)
        pipes.bind_any(src, local)
        src.add(["A", "B"])
        with anyio.fail_after(1):
            await local.when(["A", "B"])
        assert local.active_states == ["A", "B"]
        src.set(["C"])
        assert local.active_states == ["C"]
        with pytest.raises(am.StateNameError, match="Z"):
            pipes.bind_any(no_rels("big", "Z"), local)


def test_sync_then_bind_many() -> None:
    """Release notes of `ampipe.Sync`: on a re-connect, Sync the current
    states, then pipe the changes with BindMany; Sync returns the number of
    synced states."""
    source = no_rels("source")
    target = no_rels("target", "RA", "RB")
    source.add1("A")
    target.add1("RB")
    assert pipes.sync(source, target, ["A", "B"], ["RA", "RB"]) == 2
    assert target.active_states == ["RA"]
    pipes.bind_many(source, target, ["A", "B"], ["RA", "RB"])
    source.add1("B")
    assert target.active_states == ["RA", "RB"]


def test_reconnects_do_not_pile_up_pipes() -> None:
    """Sync + BindMany on every re-connect (the release notes' pattern):
    closing the old pipe also forgets its dispose callbacks on both
    machines, so a long-lived target does not collect them."""
    target = no_rels("target")
    callbacks = len(target._on_dispose or [])
    for n in range(3):
        source = no_rels(f"source{n}")
        source.add1("A")
        pipes.sync(source, target, ["A", "B"])
        pipe = pipes.bind_many(source, target, ["A", "B"])
        source.add1("B")
        assert target.is_(["A", "B"])
        pipe.close()
        assert len(target._on_dispose or []) == callbacks
        assert not source._on_dispose
        target.remove(["A", "B"])
    handler = pipes.add(source, target, "A")
    handler.pipe.close()
    assert len(target._on_dispose or []) == callbacks


def test_bind_many_refuses_a_state_listed_twice() -> None:
    """Go's BindMany builds a struct with a field per state (a duplicate
    panics); a repeated source state is refused, not silently dropped."""
    source = no_rels("source")
    target = no_rels("target")
    with pytest.raises(ValueError, match="'A' is listed twice"):
        pipes.bind_many(source, target, ["A", "A"], ["B", "C"])
    assert source.binding_ids == []


bound_async_tests(globals(), TIMEOUT)
