"""The aRPC subscription sample: wait on a remote Multi state with a timeout.

A worker machine is served over loopback TCP (aRPC); a client drives it
remotely. The client side follows the pattern of the "complicated" sample
of asyncmachine-go:

1. take a state context of the client's ``Ready`` state: everything below
   stops by itself if the connection drops;
2. subscribe, *before* mutating, to the next tick of ``ServerPayload``
   (a Multi state of the consumer machine: one activation per payload);
3. mutate the remote worker with typed args (``WorkArgs``);
4. wait for the subscription with a deadline: an expired context means
   "stop quietly", a timeout becomes the client's ``Exception`` state.

The worker squares its input and sends the result back as a payload.

Run it with ``python examples/rpc_subscription.py [--backend asyncio|trio|all]``;
it asserts the payloads it received and that a lost reply times out into
the Exception state.
"""

from __future__ import annotations

import argparse

import anyio
import anyio.lowlevel

import asyncmachine as am
from asyncmachine import helpers, rpc


@am.args_class(key="example.work")
class WorkArgs:
    """Typed args of a work request."""

    input: int = am.arg(log="input")
    reply: bool = am.arg(default=True)


SCHEMA: am.Schema = am.schema_merge(
    rpc.SOURCE_SCHEMA,
    {
        "Idle": am.State(remove=["WorkRequested"]),
        "WorkRequested": am.State(multi=True, remove=["Idle"]),
    },
)


class Worker:
    """The remote side: squares its input and sends the result back."""

    def WorkRequestedState(self, e: am.Event) -> None:
        args = am.parse_args(WorkArgs, e.args)
        assert args is not None
        e.machine.fork(
            e.machine.new_state_ctx("WorkRequested"), self.work, e.machine, args
        )

    async def work(self, mach: am.Machine, args: WorkArgs) -> None:
        await anyio.lowlevel.checkpoint()  # pretend to work
        if args.reply:
            payload = rpc.Payload(
                "result", {"input": args.input, "output": args.input**2}
            )
            mach.add1("SendPayload", {"payload": payload})
        mach.add1("Idle")


class Consumer:
    """The client's consumer: collects the payloads."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, int]] = []

    def ServerPayloadState(self, e: am.Event) -> None:
        self.payloads.append(e.args["payload"].data)


async def request(
    client: rpc.Client, consumer: am.Machine, args: WorkArgs, seconds: float
) -> bool:
    """Ask the remote worker for work and wait for its payload.

    True when the payload arrived; False when the client stopped being
    ready or the reply timed out (then the client's Exception is active).
    """
    # 1. a state context: valid while the client stays Ready
    ctx = client.mach.new_state_ctx(rpc.ClientStates.Ready)
    # 2. a time-based subscription, taken before the mutation
    when_payload = consumer.when_ticks(rpc.ConsumerStates.ServerPayload, 1, ctx)
    # 3. the remote mutation, with typed args
    await client.net_mach.add1("WorkRequested", am.pass_args(args))
    # 4. wait, with a deadline
    try:
        with anyio.fail_after(seconds):
            ok = await helpers.wait_for_all(when_payload, ctx=ctx)
    except TimeoutError as exc:
        client.mach.add_err(exc)
        return False
    if ctx.expired:
        return False  # not Ready any more: stop quietly
    return ok


async def main(backend: str) -> None:
    """Serve a worker, request work twice, then a request that never replies."""
    consumer_handlers = Consumer()
    print(f"[{backend}] worker served over aRPC on 127.0.0.1")
    async with am.Machine(SCHEMA, id=f"worker-{backend}", handlers=Worker()) as worker:
        worker.add1("Idle")
        async with (
            rpc.Server(worker, secret="demo") as server,
            am.Machine(rpc.CONSUMER_SCHEMA, handlers=consumer_handlers) as consumer,
            rpc.Client(
                "127.0.0.1", server.port, SCHEMA, consumer=consumer, secret="demo"
            ) as client,
        ):
            with anyio.fail_after(10):
                await client.net_mach.when_connected()
                for n in (2, 7):
                    assert await request(client, consumer, WorkArgs(input=n), 5)
                    print(f"  input {n}: payload {consumer_handlers.payloads[-1]}")
                # a request whose reply never comes: the timeout is an error state
                lost = WorkArgs(input=3, reply=False)
                assert not await request(client, consumer, lost, 0.05)
                print(f"  input 3 (no reply): {client.mach.err!r}")
                assert client.mach.is_err()
                assert isinstance(client.mach.err, TimeoutError)
    assert consumer_handlers.payloads == [
        {"input": 2, "output": 4},
        {"input": 7, "output": 49},
    ]


def backends() -> list[str]:
    """The backends chosen with --backend (both by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    chosen = parser.parse_args().backend
    return ["asyncio", "trio"] if chosen == "all" else [chosen]


if __name__ == "__main__":
    for backend in backends():
        anyio.run(main, backend, backend=backend)
