"""asyncmachine.helpers: add_sync (real results across threads), add_async,
dry-run guards, remove_multi, eval_get, failsafe requests and the small
helpers (Go: amhelp.Add1Sync, Add1Async, CantAdd, AskAdd, RemoveMulti,
EvalGetter, MutRequest, Activations, IsMulti, Cond, TagValue)."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
import attrs
import pytest
import trio.testing

import asyncmachine as am
import asyncmachine.helpers as amhelp
from deadline import bound_async_tests

TIMEOUT = 10


def schema() -> dict[str, am.State]:
    return {
        "A": am.State(),
        "B": am.State(require=["A"]),
        "Refused": am.State(),
        "Ev": am.State(multi=True),
        "Start": am.State(),
        "Ready": am.State(),
        "Auto": am.State(auto=True, require=["B"]),
    }


class Refuser:
    def RefusedEnter(self, e: am.Event) -> bool:
        return False

    def AExit(self, e: am.Event) -> bool:
        return not e.args.get("keep", False)


def run_mock_trio(fn: Any) -> Any:
    clock = trio.testing.MockClock(autojump_threshold=0)
    return anyio.run(fn, backend="trio", backend_options={"clock": clock})


# ---------------------------------------------------------------- add_sync


async def test_add_sync_in_the_loop_is_the_inline_result() -> None:
    async with am.Machine(schema(), handlers=Refuser()) as m:
        assert await amhelp.add1_sync(m, "A") is True
        assert await amhelp.add_sync(m, ["Refused"]) is False
        assert await amhelp.remove1_sync(m, "A", {"keep": True}) is False
        assert await amhelp.remove_sync(m, ["A"]) is True
        assert m.active_states == []


async def test_add_sync_without_a_loop_machine() -> None:
    m = am.Machine(schema())
    assert await amhelp.add1_sync(m, "A") is True
    assert m.is1("A")


async def test_add_sync_from_another_thread_returns_the_real_result() -> None:
    """A plain add from a foreign thread can only say QUEUED; add_sync
    waits for the transition and reports whether it was accepted."""
    seen: dict[str, Any] = {}

    class H(Refuser):
        def AState(self, e: am.Event) -> None:
            seen["args"] = e.args

    async with am.Machine(schema(), handlers=H()) as m:
        args = {"x": 1}

        def client() -> list[object]:
            async def main() -> list[object]:
                return [
                    m.add1("Ev"),
                    await amhelp.add1_sync(m, "A", args),
                    m.is1("A"),
                    await amhelp.add1_sync(m, "Refused"),
                    await amhelp.add_sync(m, ["B"]),
                    await amhelp.remove1_sync(m, "A", {"keep": True}),
                    await amhelp.remove_sync(m, ["B"]),
                    await amhelp.remove1_sync(m, "Ready"),  # inactive: no-op
                ]

            return anyio.run(main)

        res = await anyio.to_thread.run_sync(client)
        assert res == [am.Result.QUEUED, True, True, False, True, False, True, True]
        # args are copied, and no helper tracer stays bound
        assert seen["args"] == args and seen["args"] is not args
        assert m.tracers == ()
        assert m.active_states == ["A", "Ev"]
        assert m.tick("Auto") == 2  # B's auto state came and went


async def test_add_sync_from_another_thread_with_ctx_and_disposal() -> None:
    m = am.Machine(schema())
    async with m:
        ctx = m.new_state_ctx("Start")
        m.add1("Start")  # expires ctx

        def client() -> list[object]:
            async def main() -> list[object]:
                out: list[object] = [await amhelp.add1_sync(m, "A", ctx=ctx)]
                with pytest.raises(am.StateNameError, match="Nope"):
                    await amhelp.add1_sync(m, "Nope")
                return out

            return anyio.run(main)

        assert await anyio.to_thread.run_sync(client) == [False]
        assert not m.is1("A")

        # the ctx expires while the call hops threads: the machine runs the
        # earlier remove first (its inbox is FIFO), then refuses the add
        def client2() -> object:
            async def main() -> object:
                ctx2 = m.new_state_ctx("Start")
                m.remove1("Start")
                return await amhelp.add1_sync(m, "A", ctx=ctx2)

            return anyio.run(main)

        assert await anyio.to_thread.run_sync(client2) is False
        assert not m.is1("A")
    # disposed
    assert await amhelp.add1_sync(m, "A") is False


async def test_add_sync_bad_input() -> None:
    m = am.Machine(schema())
    with pytest.raises(TypeError, match="string"):
        await amhelp.add_sync(m, "A")
    with pytest.raises(TypeError, match="args"):
        await amhelp.add1_sync(m, "A", ["x"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Machine"):
        await amhelp.add1_sync(object(), "A")  # type: ignore[arg-type]
    with pytest.raises(am.StateNameError, match="Nope"):
        await amhelp.add1_sync(m, "Nope")
    assert m.active_states == []


# --------------------------------------------------------------- add_async


class Worker:
    async def StartState(self, e: am.Event) -> None:
        await anyio.sleep(5)
        e.machine.add1("Ready")
        e.machine.add1("Ev")


def test_add_async_waits_for_the_final_state() -> None:
    async def main() -> list[object]:
        out: list[object] = []
        async with am.Machine(schema(), handlers=[Worker(), Refuser()]) as m:
            start = anyio.current_time()
            out.append(await amhelp.add1_async(m, "Ready", "Start"))
            out.append(anyio.current_time() - start)
            out.append(m.active_states)
            # an active Multi wait state counts its next activation
            m.remove1("Start")
            assert m.tick("Ev") == 1
            out.append(await amhelp.add_async(m, "Ev", ["Start"]))
            out.append(m.tick("Ev"))
            # refused: False at once
            out.append(await amhelp.add1_async(m, "Ready", "Refused"))
        return out

    assert run_mock_trio(main) == [
        True,
        5,
        ["Ev", "Start", "Ready"],
        True,
        3,
        False,
    ]


async def test_add_async_ctx_expiry() -> None:
    async with am.Machine(schema(), handlers=Refuser()) as m:
        m.add1("A")
        ctx = m.new_state_ctx("A")
        out: list[bool] = []

        async def waiter() -> None:
            out.append(await amhelp.add1_async(m, "Ready", "Start", ctx=ctx))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            m.remove1("A")
        assert out == [False]
        assert await amhelp.add1_async(m, "Ready", "Start", ctx=ctx) is False
        with pytest.raises(am.StateNameError):
            await amhelp.add1_async(m, "Nope", "Start")


# ---------------------------------------------------------------- dry runs


def test_cant_and_ask() -> None:
    calls: list[str] = []

    class H(Refuser):
        def AnyState(self, e: am.Event) -> None:
            calls.append(" ".join(e.transition.called_states))

    m = am.Machine(schema(), handlers=H())
    assert amhelp.cant_add1(m, "B")
    assert amhelp.cant_add(m, ["Refused"])
    assert not amhelp.cant_add1(m, "A")
    assert amhelp.ask_add1(m, "B") is am.Result.CANCELED
    assert amhelp.ask_add(m, ["Refused"]) is am.Result.CANCELED
    assert calls == []  # refused asks leave no transition behind
    assert amhelp.ask_add1(m, "A") is am.Result.EXECUTED
    assert amhelp.cant_remove1(m, "A", {"keep": True})
    assert amhelp.cant_remove(m, ["A"], {"keep": True})
    assert not amhelp.cant_remove1(m, "A")
    assert amhelp.ask_remove1(m, "A", {"keep": True}) is am.Result.CANCELED
    assert amhelp.ask_remove(m, ["A"]) is am.Result.EXECUTED
    assert amhelp.ask_remove1(m, "A") is am.Result.EXECUTED
    assert calls == ["A", "A", "A"]
    with pytest.raises(TypeError, match="string"):
        amhelp.cant_add(m, "A")


def test_cant_add_inside_a_handler_is_not_known() -> None:
    out: list[bool] = []

    class H:
        def AState(self, e: am.Event) -> None:
            out.append(amhelp.cant_add1(e.machine, "Refused"))

    m = am.Machine(schema(), handlers=[H(), Refuser()])
    m.add1("A")
    assert out == [False]


# ---------------------------------------------------------- remove_multi


def test_remove_multi_as_class_and_instance_attribute() -> None:
    class H:
        EvState = amhelp.remove_multi("Ev")

    m = am.Machine(schema(), handlers=H())
    m.add1("Ev")
    m.add1("Ev")
    assert not m.is1("Ev")
    assert m.tick("Ev") == 4
    h2 = type("H2", (), {})()
    h2.StartState = amhelp.remove_multi("Start")
    m.bind_handlers(h2)
    m.add1("Start")
    assert not m.is1("Start") and m.tick("Start") == 2
    assert repr(H.EvState) == "remove_multi('Ev')"
    with pytest.raises(TypeError):
        amhelp.remove_multi(1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- eval_get


async def test_eval_get() -> None:
    async with am.Machine(schema()) as m:
        m.add1("A")
        assert amhelp.eval_get(m, lambda: m.active_states) == ["A"]

        def from_thread() -> list[str]:
            return amhelp.eval_get(m, lambda: m.active_states, source="t")

        assert await anyio.to_thread.run_sync(from_thread) == ["A"]
        out: list[object] = []

        class H:
            def ReadyState(self, e: am.Event) -> None:
                try:
                    amhelp.eval_get(e.machine, lambda: 1, source="h")
                except amhelp.EvalError as exc:
                    out.append(str(exc))

        m.bind_handlers(H())
        m.add1("Ready")
        assert out == [f"eval on machine {m.id} could not run (h)"]
        assert m.is_err()
    with pytest.raises(amhelp.EvalError):
        amhelp.eval_get(m, lambda: 1)


# ---------------------------------------------------------------- requests


class Flaky:
    """Refuses A until `ok_after` tries; records when each try came."""

    def __init__(self, ok_after: int) -> None:
        self.ok_after = ok_after
        self.tries: list[float] = []

    def AEnter(self, e: am.Event) -> bool:
        self.tries.append(anyio.current_time())
        return len(self.tries) > self.ok_after

    def AExit(self, e: am.Event) -> bool:
        self.tries.append(anyio.current_time())
        return len(self.tries) > self.ok_after


def test_req_add1_retries_with_backoff() -> None:
    async def main() -> tuple[object, list[float]]:
        h = Flaky(4)
        m = am.Machine(schema(), handlers=h)
        start = anyio.current_time()
        res = await amhelp.req_add1(m, "A", delay=1, backoff=3, max_duration=60).run()
        return res, [t - start for t in h.tries]

    # waits 1, 2, 3 (capped), 3
    assert run_mock_trio(main) == (am.Result.EXECUTED, [0, 1, 3, 6, 9])


def test_req_constant_delay_and_retries_exhausted() -> None:
    async def main() -> tuple[object, list[float]]:
        h = Flaky(100)
        m = am.Machine(schema(), handlers=h)
        start = anyio.current_time()
        req = amhelp.req_add1(m, "A", retries=3, delay=2, backoff=0, max_duration=60)
        res = await req.run()
        return res, [t - start for t in h.tries]

    assert run_mock_trio(main) == (am.Result.CANCELED, [0, 2, 4, 6])


def test_req_max_duration() -> None:
    async def main() -> tuple[object, float, int]:
        h = Flaky(100)
        m = am.Machine(schema(), handlers=h)
        start = anyio.current_time()
        req = amhelp.req_add(m, ["A"], delay=1, backoff=100, max_duration=10)
        res = await req.run()
        return res, anyio.current_time() - start, len(h.tries)

    # tries at 0, 1, 3, 7; the wait for the 5th try is cut at 10
    assert run_mock_trio(main) == (am.Result.CANCELED, 10, 4)


def test_req_max_duration_longer_with_am_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AM_DEBUG", "1")

    async def main() -> float:
        m = am.Machine(schema(), handlers=Flaky(100))
        start = anyio.current_time()
        req = amhelp.req_add1(m, "A", retries=1000, delay=1, max_duration=1)
        assert await req.run() is am.Result.CANCELED
        return anyio.current_time() - start

    assert run_mock_trio(main) == 100


def test_req_remove_ctx_and_disposal() -> None:
    async def main() -> list[object]:
        out: list[object] = []
        h = Flaky(1)
        async with am.Machine(schema(), handlers=h) as m:
            m.add1("A")  # try 1 refused
            m.add1("A")  # try 2 accepted
            out.append(await amhelp.req_remove1(m, "A", delay=1).run())
            out.append(m.is1("A"))
            out.append(await amhelp.req_remove(m, ["Ready"]).run())
            # ctx expiring while waiting for a retry
            m.add1("Start")
            ctx = m.new_state_ctx("Start")
            h2 = Flaky(100)
            m.bind_handlers(h2)

            async def stop() -> None:
                await anyio.sleep(0.25)
                m.remove1("Start")

            m.fork(None, stop)
            out.append(await amhelp.req_add1(m, "A", delay=1).run(ctx))
            out.append(anyio.current_time())
            out.append(await amhelp.req_add1(m, "A").run(ctx))  # expired
        # disposed while waiting for a retry
        m2 = am.Machine(schema(), handlers=Flaky(100))
        req = amhelp.req_add1(m2, "A", delay=1)

        async def dispose() -> None:
            await anyio.sleep(0.5)
            m2.dispose()

        async with anyio.create_task_group() as tg:
            tg.start_soon(dispose)
            out.append(await req.run())
            out.append(anyio.current_time())
        return out

    res = run_mock_trio(main)
    assert res[:3] == [am.Result.EXECUTED, False, am.Result.EXECUTED]
    assert res[3] is am.Result.CANCELED
    assert res[5:7] == [am.Result.CANCELED, am.Result.CANCELED]
    # the ctx cut the first wait at 0.25; the disposed machine ends the
    # request at its next try, 1 s after the start
    assert res[4] == pytest.approx(0.25)
    assert res[7] == pytest.approx(1.25)


async def test_req_queued_counts_as_success_and_evolve() -> None:
    out: list[object] = []

    class H:
        def StartState(self, e: am.Event) -> None:
            out.append(e.machine.add1("A"))

    m = am.Machine(schema(), handlers=H())
    m.add1("Start")
    assert out == [am.Result.QUEUED]
    req = amhelp.req_add1(m, "Ready", {"k": 1})
    req2 = attrs.evolve(req, retries=1)
    assert (req2.retries, req2.states, req2.args) == (1, ("Ready",), {"k": 1})
    assert await req2.run() is am.Result.EXECUTED


def test_req_bad_input() -> None:
    m = am.Machine(schema())
    with pytest.raises(am.StateNameError, match="Nope"):
        amhelp.req_add1(m, "Nope")
    with pytest.raises(TypeError, match="string"):
        amhelp.req_add(m, "A")
    with pytest.raises(ValueError, match="delay"):
        amhelp.req_add1(m, "A", delay=-1)
    with pytest.raises(ValueError, match="retries"):
        amhelp.req_add1(m, "A", retries=-1)
    with pytest.raises(TypeError, match="args"):
        amhelp.req_add1(m, "A", [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Machine"):
        amhelp.req_add1(object(), "A")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="set"):
        amhelp.MutRequest(mach=m, type=am.MutationType.SET, states=["A"])


# -------------------------------------------------------------------- misc


def test_activations_and_is_multi() -> None:
    assert [amhelp.activations(t) for t in (0, 1, 2, 3, 4, 7)] == [0, 1, 1, 2, 2, 4]
    with pytest.raises(ValueError):
        amhelp.activations(-1)
    m = am.Machine(schema())
    assert amhelp.is_multi(m, "Ev") and amhelp.is_multi(m, "Exception")
    assert not amhelp.is_multi(m, "A")
    with pytest.raises(am.StateNameError):
        amhelp.is_multi(m, "Nope")


def test_cond() -> None:
    m = am.Machine(schema())
    assert amhelp.Cond().is_empty() and amhelp.Cond().check(m)
    m.add(["A", "Ev"])
    c = amhelp.Cond(is_=["A"], not_=["Ready"], any1=["Ev", "B"], clock={"A": 1})
    assert not c.is_empty() and c.check(m)
    assert not amhelp.Cond(is_=["A", "B"]).check(m)
    assert not amhelp.Cond(not_=["Ev"]).check(m)
    assert not amhelp.Cond(any1=["B", "Start"]).check(m)
    assert amhelp.Cond(any_=[["A", "B"], ["Ev"]]).check(m)
    assert not amhelp.Cond(any_=[["A", "B"], ["Start"]]).check(m)
    assert not amhelp.Cond(clock={"A": 3}).check(m)
    with pytest.raises(TypeError):
        amhelp.Cond(is_="A")
    with pytest.raises(TypeError):
        amhelp.Cond(any_="A")
    with pytest.raises(am.StateNameError):
        amhelp.Cond(is_=["Nope"]).check(m)


def test_tag_value() -> None:
    tags = ["kind:worker", "debug", "port:80"]
    assert amhelp.tag_value(tags, "kind") == "worker"
    # as Go's TagValue: a bare tag gives its name, a missing one ""
    assert amhelp.tag_value(tags, "debug") == "debug"
    assert amhelp.tag_value(tags, "nope") == ""


def test_public_classes_show_the_helpers_module() -> None:
    for cls in (amhelp.Cond, amhelp.MutRequest, amhelp.EvalError):
        assert cls.__module__ == "asyncmachine.helpers"
    assert amhelp.ExceptionStateError.__module__ == "asyncmachine.helpers"
    for name in amhelp.__all__:
        assert hasattr(amhelp, name), name


bound_async_tests(globals(), TIMEOUT)
