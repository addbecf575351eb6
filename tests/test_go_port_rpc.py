"""Tests ported from asyncmachine-go's pkg/rpc (rpc_test.go, netmach_test.go):
a network machine behaves like the source it mirrors, over real TCP.

Go's client blocks on each mutation; here `await net.add(...)` returns once
the result and the clock changes it caused have arrived, so the assertions
right after a mutation hold without waiting ("read your own writes").
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import anyio
import anyio.abc
import pytest

import asyncmachine as am
from asyncmachine import rpc
from asyncmachine.rpc import ClientStates as CS
from asyncmachine.rpc import ServerStates as SS

# Go's internal/testing/states: A auto requires C, B multi adds C, C after D,
# D adds C and B
RELS: am.Schema = {
    "A": am.State(auto=True, require=["C"]),
    "B": am.State(multi=True, add=["C"]),
    "C": am.State(after=["D"]),
    "D": am.State(add=["C", "B"]),
}
NO_RELS: am.Schema = {
    "A": am.State(),
    "B": am.State(),
    "C": am.State(),
    "D": am.State(),
}


def net_src(schema: am.Schema) -> am.Schema:
    """A source schema: the states plus `SendPayload`, like Go's net sources."""
    return am.schema_merge(rpc.SOURCE_SCHEMA, schema)


@contextlib.asynccontextmanager
async def net_test(
    schema: am.Schema = NO_RELS,
    initial: Iterable[str] = (),
    *,
    source: am.Machine | None = None,
    **client_kwargs: Any,
) -> AsyncIterator[tuple[am.Machine, rpc.Server, rpc.Client]]:
    """Go's NewTest: a running source, server and a Ready client."""
    async with contextlib.AsyncExitStack() as stack:
        if source is None:
            source = await stack.enter_async_context(
                am.Machine(net_src(schema), id="ns")
            )
        initial = list(initial)
        if initial:
            source.set(initial)
        server = await stack.enter_async_context(rpc.Server(source))
        client = await stack.enter_async_context(
            rpc.Client("127.0.0.1", server.port, source.schema, **client_kwargs)
        )
        await client.net_mach.when_connected()
        await server.mach.when1(SS.HasClients)
        yield source, server, client
        # Go's disposeTest(checkErrs=true): no errors ever, on either side
        assert client.mach.tick(am.EXCEPTION) == 0
        assert server.mach.tick(am.EXCEPTION) == 0


def states_of(m: rpc.NetMachine | am.Machine) -> set[str]:
    return set(m.active_states)


# ------------------------------------------------------------- rpc_test.go


async def test_basic() -> None:
    schema = {"Foo": am.State(), "Bar": am.State(require=["Foo"])}
    async with net_test(schema) as (source, server, client):
        assert await client.net_mach.add1("Foo") is am.Result.EXECUTED
        assert server.mach.is1(SS.Ready) and client.mach.is1(CS.Ready)
        assert server.mach.not1(am.EXCEPTION) and client.mach.not1(am.EXCEPTION)
        assert source.is1("Foo") and client.net_mach.is1("Foo")


async def test_type_safe() -> None:
    async with net_test(RELS) as (source, _, client):
        await client.net_mach.add(["A", "C"])
        assert source.is_(["A", "C"]) and client.net_mach.is_(["A", "C"])


async def test_waiting() -> None:
    async with net_test(RELS) as (_, _, client):
        when_a = client.net_mach.when1("A")
        await client.net_mach.add(["A", "C"])
        await when_a


async def test_add_many() -> None:
    async with net_test(RELS) as (source, _, client):
        net = client.net_mach
        when_d = net.when1("D")
        for _ in range(500):
            await net.add(["A", "C"])
        await net.add1("D")
        await when_d
        assert net.time() == source.time()
        # the caller's clock came in its results: no resync was ever needed
        assert client.mach.tick(CS.MetricSync) == 0


async def test_many_states() -> None:
    schema = dict(RELS)
    names = [f"State{i}" for i in range(100)]
    schema.update({n: am.State() for n in names})
    async with net_test(schema) as (source, _, client):
        net = client.net_mach
        when_d = net.when1("D")
        await net.add1("C")
        for i in range(5, 95):
            await net.remove1(names[i - 3])
            await net.add1(names[i])
        await net.add1("D")
        await when_d
        assert net.time() == source.time()
        assert net.active_states == source.active_states


async def test_high_clocks() -> None:
    # Go's TestHighInstantClocks: ticks far over 32 bits cross the wire, and
    # the 32-bit checksum still matches
    async with am.Machine(net_src(RELS), id="ns") as source:
        high = 1 << 40
        index = source.state_names.index
        source._apply_remote_ticks([(index("A"), high), (index("C"), high)])
        async with net_test(source=source) as (_, _, client):
            net = client.net_mach
            assert net.tick("A") == high
            when_d = net.when1("D")
            for _ in range(100):
                await net.add(["A", "C"])
                await net.remove(["A", "C"])
            await net.add1("D")
            await when_d
            assert net.time() == source.time() and net.tick("C") > high
            assert client.mach.tick(CS.MetricSync) == 0


async def test_retry_conn() -> None:
    # the server is not up yet: the client keeps trying, then connects
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    async with (
        am.Machine(net_src(RELS), id="ns") as source,
        rpc.Client(
            "127.0.0.1", port, source.schema, backoff=0.01, max_backoff=0.02
        ) as client,
    ):
        await client.mach.when_time1(CS.Connecting, 3)
        assert client.mach.is1(am.EXCEPTION) and client.mach.tick(CS.ErrNetwork) > 0
        async with rpc.Server(source, port=port) as server:
            await client.net_mach.when_connected()
            await server.mach.when1(SS.Ready)
            assert await client.net_mach.add1("A") is am.Result.CANCELED  # needs C
            assert await client.net_mach.add1("C") is am.Result.EXECUTED
            assert client.net_mach.is_(["A", "C"])
            assert client.mach.is1(CS.Ready) and client.mach.not1(CS.RetryingConn)


class PayloadSender:
    """Go's TestPayloadHandlers: C sends a payload named after its args."""

    def CState(self, e: am.Event) -> None:
        m = e.machine
        m.remove1("C")
        payload = rpc.Payload(e.args["name"], "Hello")
        m.add1(rpc.SourceStates.SendPayload, {"payload": payload})


async def test_payload() -> None:
    got: list[rpc.Payload] = []

    class Consumer:
        def ServerPayloadState(self, e: am.Event) -> None:
            got.append(e.args["payload"])
            e.machine.remove1(rpc.ConsumerStates.ServerPayload)

    async with am.Machine(rpc.CONSUMER_SCHEMA, id="consumer") as consumer:
        consumer.bind_handlers(Consumer())
        async with net_test(consumer=consumer) as (source, server, client):
            source.bind_handlers(PayloadSender())
            delivered = consumer.when1(rpc.ConsumerStates.ServerPayload)
            result = await client.net_mach.add1("C", {"name": "TestPayload"})
            assert result is am.Result.EXECUTED
            await delivered
            assert [(p.name, p.data) for p in got] == [("TestPayload", "Hello")]
            # the destination is the server-assigned session id (aRPC II:
            # client names are self-declared labels, payloads address sessions)
            assert got[0].source == "ns" and got[0].destination == client.session_id
            assert client.session_id in server.sessions
            assert client.net_mach.not1("C")


async def test_mux() -> None:
    # Go's TestMux: several clients of one source see each other's changes
    async with (
        net_test(RELS) as (source, server, first),
        contextlib.AsyncExitStack() as stack,
    ):
        others = [
            await stack.enter_async_context(
                rpc.Client("127.0.0.1", server.port, source.schema, id=f"c{i}")
            )
            for i in range(3)
        ]
        for c in others:
            await c.net_mach.when_connected()
        # C adds A (auto)
        await first.net_mach.add1("C")
        for c in [first, *others]:
            await c.net_mach.when1("A")
            assert c.net_mach.time() == source.time()


# --------------------------------------------------------- netmach_test.go


async def test_single_state_active() -> None:
    async with net_test() as (_, _, client):
        await client.net_mach.add1("A")
        assert states_of(client.net_mach) == {"A"}


async def test_multiple_states_active() -> None:
    async with net_test() as (_, _, client):
        await client.net_mach.add(["A"])
        await client.net_mach.add(["B"])
        assert states_of(client.net_mach) == {"A", "B"}


async def test_expose_all_state_names() -> None:
    async with net_test(initial=["A"]) as (source, _, client):
        assert {"A", "B", "C", "D"} <= set(client.net_mach.state_names)
        assert client.net_mach.state_names == source.state_names


@pytest.mark.parametrize(
    ("initial", "op", "called", "expected"),
    [
        (["A"], "set", ["B"], {"B"}),
        (["A"], "add", ["B"], {"A", "B"}),
        (["B", "C"], "remove", ["C"], {"B"}),
    ],
)
async def test_state_set_add_remove(
    initial: list[str], op: str, called: list[str], expected: set[str]
) -> None:
    async with net_test(initial=initial) as (source, _, client):
        net = client.net_mach
        assert states_of(net) == set(initial)
        assert await getattr(net, op)(called) is am.Result.EXECUTED
        assert states_of(net) == expected == states_of(source)


async def test_remove_relation() -> None:
    schema = {
        "A": am.State(),
        "B": am.State(),
        "C": am.State(remove=["D"]),
        "D": am.State(),
    }
    async with net_test(schema, ["D"]) as (_, _, client):
        await client.net_mach.add(["C"])
        assert states_of(client.net_mach) == {"C"}


async def test_remove_relation_simultaneous() -> None:
    schema = {
        "A": am.State(),
        "B": am.State(),
        "C": am.State(remove=["D"]),
        "D": am.State(),
    }
    async with net_test(schema, ["D"]) as (_, _, client):
        assert await client.net_mach.set(["C", "D"]) is am.Result.CANCELED
        assert states_of(client.net_mach) == {"D"}


CROSS: am.Schema = {
    "A": am.State(),
    "B": am.State(),
    "C": am.State(remove=["D"]),
    "D": am.State(remove=["C"]),
}


@pytest.mark.parametrize("op", ["set", "add"])
@pytest.mark.parametrize("both_ways", [False, True])
async def test_remove_relation_cross_blocking(op: str, both_ways: bool) -> None:
    async with net_test(CROSS, ["D"]) as (_, _, client):
        net = client.net_mach
        await getattr(net, op)(["C"])
        assert states_of(net) == {"C"}
        if both_ways:
            await getattr(net, op)(["D"])
            assert states_of(net) == {"D"}


async def test_add_relation() -> None:
    schema = {
        "A": am.State(remove=["D"]),
        "B": am.State(),
        "C": am.State(add=["D"]),
        "D": am.State(),
    }
    async with net_test(schema) as (_, _, client):
        net = client.net_mach
        await net.set(["C"])
        assert states_of(net) == {"C", "D"}
        # D is skipped when blocked at the same time
        await net.set(["A", "C"])
        assert states_of(net) == {"A", "C"}


async def test_require_relation() -> None:
    schema = {
        "A": am.State(require=["D"]),
        "B": am.State(),
        "C": am.State(),
        "D": am.State(),
    }
    async with net_test(schema) as (_, _, client):
        await client.net_mach.set(["C", "D"])
        assert states_of(client.net_mach) == {"C", "D"}


async def test_require_relation_when_required_isnt_active() -> None:
    schema = {
        "A": am.State(),
        "B": am.State(),
        "C": am.State(require=["D"]),
        "D": am.State(),
    }
    async with net_test(schema, ["A"]) as (_, _, client):
        await client.net_mach.set(["C", "A"])
        assert states_of(client.net_mach) == {"A"}


async def test_auto_states() -> None:
    schema = {
        "A": am.State(),
        "B": am.State(auto=True, require=["A"]),
        "C": am.State(require=["D"]),
        "D": am.State(),
    }
    async with net_test(schema) as (_, _, client):
        assert await client.net_mach.add(["A"]) is am.Result.EXECUTED
        assert states_of(client.net_mach) == {"A", "B"}


async def test_regression_remove_cross_blocked_by_implied() -> None:
    schema = {
        "A": am.State(remove=["B"]),
        "B": am.State(remove=["A"]),
        "Z": am.State(add=["B"]),
    }
    async with net_test(schema) as (_, _, client):
        await client.net_mach.set(["Z"])
        assert states_of(client.net_mach) == {"Z", "B"}


async def test_regression_implied_block_by_being_removed() -> None:
    schema = {
        "Wet": am.State(require=["Water"]),
        "Dry": am.State(remove=["Wet"]),
        "Water": am.State(add=["Wet"], remove=["Dry"]),
    }
    async with net_test(schema) as (_, _, client):
        await client.net_mach.set(["Dry"])
        await client.net_mach.set(["Water"])
        assert states_of(client.net_mach) == {"Water", "Wet"}


async def test_when_two_waiters() -> None:
    async with net_test() as (_, _, client):
        net = client.net_mach
        passed: list[int] = []

        async def wait(n: int) -> None:
            await net.when(["A", "B"])
            passed.append(n)

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait, 1)
            tg.start_soon(wait, 2)
            await anyio.wait_all_tasks_blocked()
            await net.add(["A", "B"])
        assert sorted(passed) == [1, 2]


async def test_when_active_and_when_not_inactive() -> None:
    async with net_test(initial=["A"]) as (_, _, client):
        assert client.net_mach.when(["A"]).is_set()
        assert client.net_mach.when_not(["B"]).is_set()
        assert states_of(client.net_mach) == {"A"}


async def test_when_not_two_waiters() -> None:
    async with net_test(initial=["A", "B"]) as (_, _, client):
        net = client.net_mach
        first, second = net.when_not(["A", "B"]), net.when_not(["A", "B"])
        assert not first.is_set()
        await net.remove(["A", "B"])
        assert first.is_set() and second.is_set()


async def test_partial_auto() -> None:
    schema = {
        "A": am.State(),
        "B": am.State(),
        "C": am.State(auto=True, require=["B"]),
        "D": am.State(auto=True, require=["B"]),
    }
    async with net_test(schema, ["A"]) as (_, _, client):
        await client.net_mach.add(["A"])
        assert states_of(client.net_mach) == {"A"}


TIME_SCHEMA: am.Schema = {
    "A": am.State(),
    "B": am.State(multi=True),
    "C": am.State(),
    "D": am.State(),
}
ABCD = ["A", "B", "C", "D"]


async def test_time_and_clock() -> None:
    async with net_test(TIME_SCHEMA) as (source, _, client):
        w = client.net_mach
        steps: list[tuple[str, list[str], set[str], tuple[int, ...]]] = [
            ("add", ["A", "B"], {"A", "B"}, (1, 1, 0, 0)),
            ("add", ["A", "B"], {"A", "B"}, (1, 3, 0, 0)),
            ("add", ["A", "B", "C"], {"A", "B", "C"}, (1, 5, 1, 0)),
            ("set", ["D"], {"D"}, (2, 6, 2, 1)),
            ("add", ["D", "C"], {"D", "C"}, (2, 6, 3, 1)),
            ("remove", ["B", "C"], {"D"}, (2, 6, 4, 1)),
            ("add", ["A", "B"], {"D", "A", "B"}, (3, 7, 4, 1)),
        ]
        for op, called, active, time in steps:
            await getattr(w, op)(called)
            assert states_of(w) == active, (op, called)
            assert w.time(ABCD) == time, (op, called)
        before = w.time(ABCD)
        await w.add(["C"])
        assert states_of(w) == {"A", "B", "C", "D"}
        now = w.time(ABCD)
        assert now == (3, 7, 5, 1)
        assert all(n >= b for n, b in zip(now, before, strict=True)) and now != before
        clock = w.clock()
        assert {k: clock[k] for k in ABCD} == {"A": 3, "B": 7, "C": 5, "D": 1}
        assert clock[am.EXCEPTION] == 0
        assert w.clock(["A", "B"]) == {"A": 3, "B": 7}
        assert w.tick("A") == 3
        assert w.clock() == source.clock()


async def test_when_time() -> None:
    async with net_test(initial=["A", "B"]) as (_, _, client):
        w = client.net_mach
        # (A:1 B:1)
        when = w.when_time(["A", "B"], [5, 2])
        await w.remove(["A", "B"])
        await w.add(["A", "B"])
        assert not when.is_set()  # (A:3 B:3)
        await w.remove1("A")
        await w.add1("A")
        assert when.is_set()  # (A:5 B:3)


@pytest.mark.parametrize("check", ["is", "not", "any"])
async def test_checks(check: str) -> None:
    schema = {
        "A": am.State(),
        "B": am.State(auto=True, require=["A"]),
        "C": am.State(),
        "D": am.State(),
    }
    async with net_test(schema) as (source, _, client):
        source.add(["A", "B"])
        w = client.net_mach
        await w.when(["A", "B"])
        if check == "is":
            assert w.is_(["A", "B"]) and not w.is_(["A", "B", "C"])
        elif check == "not":
            assert not w.not_(["A", "B"]) and not w.not_(["A", "B", "C"])
            assert w.not1("D")
        else:
            assert w.any(["A", "B"], ["C"]) and w.any(["A", "B", "C"], ["A"])


async def test_inspect_and_string() -> None:
    async with net_test(RELS, ["A", "C"]) as (source, _, client):
        w = client.net_mach
        names = ["A", "B", "C", "D", am.EXCEPTION]
        assert w.inspect(names) == source.inspect(names)
        assert "1 A" in w.inspect(["A"]) and "|Tick" in w.inspect(["A"])
        await w.remove(["C"])
        await w.add(["B"])
        await w.add(["D"])
        assert w.inspect() == source.inspect()
        assert str(w) == str(source) == "(A:3 B:1 C:3 D:1)"
        assert w.string_all() == source.string_all()


async def test_string() -> None:
    async with net_test(initial=["A", "B"]) as (source, _, client):
        w = client.net_mach
        assert str(w) == "(A:1 B:1)"
        assert w.string_all() == source.string_all()
        assert w.string_all().startswith("(A:1 B:1) [")


class Nested:
    """Go's TestNestedMutationHandlers: A queues five mutations of B."""

    def AState(self, e: am.Event) -> None:
        m = e.machine
        for _ in range(3):
            m.add1("B")
        m.remove1("B")
        m.remove1("B")


async def test_nested_mutation() -> None:
    async with net_test() as (source, _, client):
        source.bind_handlers(Nested())
        await client.net_mach.add1("A")
        assert states_of(client.net_mach) == {"A"}
        assert client.net_mach.time() == source.time()


async def test_is_clock_and_is_time() -> None:
    async with net_test() as (_, _, client):
        w = client.net_mach
        c_a, c_all = w.clock(["A"]), w.clock()
        t_a, t_all = w.time(["A"]), w.time()
        assert w.is_clock(c_all) and w.is_time(t_a, ["A"])
        await w.add(["A", "B"])
        assert not w.is_clock(c_all) and not w.is_clock(c_a)
        assert not w.is_time(t_a, ["A"]) and not w.is_time(t_all)


async def test_when_query() -> None:
    async with net_test(initial=["A"]) as (_, _, client):
        w = client.net_mach
        when1 = w.when_query(lambda c: c["A"] > c["B"] * 4)
        when2 = w.when_query(lambda c: c["A"] < c["B"])
        await w.add1("B")  # 1, 1
        await w.remove1("A")  # 2, 1
        await w.add1("A")  # 3, 1
        await w.remove1("A")  # 4, 1
        assert not when1.is_set() and not when2.is_set()
        await w.add1("A")  # 5, 1: match
        assert when1.is_set() and not when2.is_set()


async def test_state_ctx_basic() -> None:
    async with net_test() as (_, _, client):
        w = client.net_mach
        await w.add1("A")
        ctx1 = w.new_state_ctx("A")
        assert not ctx1.expired
        await w.remove1("A")
        assert ctx1.expired
        # a context of an inactive state expires when it activates
        ctx2 = w.new_state_ctx("B")
        assert not ctx2.expired
        await w.add1("B")
        assert ctx2.expired


async def test_when_queue() -> None:
    # Go's TestWhenQueue: wait until the source processed a queue tick
    async with net_test() as (source, _, client):
        w = client.net_mach
        await w.add1("A")
        tick = w.queue_tick
        assert tick == source.queue_tick_processed
        assert w.when_queue(tick).is_set()
        later = w.when_queue(tick + 3)
        source.add1("B")
        source.add1("C")
        await w.when1("C")
        assert not later.is_set()
        source.add1("D")
        await later
        assert w.is_(["A", "B", "C", "D"])
        with pytest.raises(TypeError, match="tick"):
            w.when_queue("1")  # type: ignore[arg-type]
        pending = w.when_queue(10**6)
        assert not pending.is_set()
    # disposal sets pending waits, and later ones at once
    assert w.disposed and pending.is_set() and w.when_queue(10**6).is_set()


async def test_is_err() -> None:
    async with net_test() as (source, _, client):
        w = client.net_mach
        assert not w.is_err()
        source.add_err(ValueError("boom"))
        await w.when_err()
        assert w.is_err() and w.is1(am.EXCEPTION)
        # the error stays on the source: the client's own machine is clean
        assert client.mach.not1(am.EXCEPTION)
        source.remove1(am.EXCEPTION)
        await w.when_not1(am.EXCEPTION)
        assert not w.is_err()
