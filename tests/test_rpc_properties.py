"""Property test of aRPC against a local twin, on both backends.

Random schemas and random mutation sequences: each mutation goes either
through a client's network machine (to the source, over TCP) or straight
to the source (the client learns of it from a push). A local twin machine
gets the same mutations. After every step the network machine answers like
the twin (the same `Result`) and, once the push arrived, shows the same
clock as the source and the twin.
"""

from __future__ import annotations

from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncmachine as am
from asyncmachine import rpc
from asyncmachine.testing import MutationStep
from asyncmachine.testing.strategies import mutation_sequences, schemas


@st.composite
def programs(
    draw: st.DrawFn,
) -> tuple[dict[str, am.State], list[tuple[bool, MutationStep]]]:
    schema = draw(schemas(max_states=6))
    steps = draw(mutation_sequences(schema, max_size=12, args=st.none()))
    remote = draw(st.lists(st.booleans(), min_size=len(steps), max_size=len(steps)))
    return schema, list(zip(remote, steps, strict=True))


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(program=programs())
async def test_network_machine_follows_the_source(
    anyio_backend: Any,
    program: tuple[dict[str, am.State], list[tuple[bool, MutationStep]]],
) -> None:
    schema, steps = program
    twin = am.Machine(schema)
    with anyio.fail_after(20):
        async with (
            am.Machine(schema, id="src") as src,
            # every state, Exception too: this tests the mirror, not permissions
            rpc.Server(src, permissions=rpc.Permissions(deny=())) as server,
            rpc.Client("127.0.0.1", server.port, schema, id="prop") as client,
        ):
            net = client.net_mach
            await net.when_connected()
            names = list(src.state_names)
            for remote, step in steps:
                expected = step.apply(twin)
                if remote:
                    got = await getattr(net, step.kind)(step.states, step.args)
                    # read-your-writes: the result frame carries the clock
                    assert net.time() == src.time()
                else:
                    got = step.apply(src)
                    await net.when_time(names, list(src.time()))
                assert got == expected, step
                assert src.time() == twin.time(), step
                assert net.time() == src.time(), step
                assert net.active_states == twin.active_states
