"""A finite-state machine: the coin-operated turnstile.

The classic FSM has two states, Locked and Unlocked, and two inputs, a coin
and a push. Here the inputs are states too: InputCoin and InputPush are
action states, which remove themselves once handled. Locked and Unlocked
remove each other (an exclusive group), so exactly one of them is active,
and Locked is also an Auto state: whenever neither is active after a
change, the machine locks itself.

- A push is refused while locked: `InputPushEnter` returns False and the
  mutation is CANCELED.
- A coin unlocks (a second coin changes nothing);
- a push while unlocked goes through and locks again.

Run it with ``python examples/turnstile.py [--backend asyncio|trio|all]``;
it asserts its own outcome.
"""

from __future__ import annotations

import argparse

import anyio

import asyncmachine as am


class S(am.StatesBase):
    """State names of the turnstile."""

    InputPush = am.state()
    InputCoin = am.state()
    Locked = am.state()
    Unlocked = am.state()


GROUP_LOCK = [S.Locked, S.Unlocked]

SCHEMA: am.Schema = {
    # inputs: action states
    S.InputPush: am.State(),
    S.InputCoin: am.State(),
    # the FSM's own states: exactly one of them is active
    S.Locked: am.State(auto=True, remove=GROUP_LOCK),
    S.Unlocked: am.State(remove=GROUP_LOCK),
}


class Turnstile:
    """Handlers: the transition function of the FSM."""

    def InputPushEnter(self, e: am.Event) -> bool:
        # negotiation: a locked turnstile does not move
        return e.machine.is1(S.Unlocked)

    def InputPushState(self, e: am.Event) -> None:
        e.machine.remove1(S.InputPush)
        e.machine.add1(S.Locked)

    def InputCoinState(self, e: am.Event) -> None:
        e.machine.remove1(S.InputCoin)
        e.machine.add1(S.Unlocked)


async def main(backend: str) -> None:
    """Feed the turnstile push, coin, coin, push and check each step."""
    async with am.Machine(SCHEMA, id="turnstile", handlers=Turnstile()) as mach:
        assert mach.add1(S.Locked) == am.Result.EXECUTED
        print(f"[{backend}] start:          {mach}")

        steps = [
            (S.InputPush, am.Result.CANCELED, S.Locked),
            (S.InputCoin, am.Result.EXECUTED, S.Unlocked),
            (S.InputCoin, am.Result.EXECUTED, S.Unlocked),
            (S.InputPush, am.Result.EXECUTED, S.Locked),
        ]
        for state, want_result, want_state in steps:
            result = mach.add1(state)
            print(f"[{backend}] {state:10} -> {result!s:8} {mach}")
            assert result == want_result, (state, result)
            assert mach.is1(want_state) and not mach.any1(S.InputPush, S.InputCoin)
        # Locked, then Unlocked, then Locked again
        assert mach.tick(S.Locked) == 3 and mach.tick(S.Unlocked) == 2
        print(f"[{backend}] end:            {mach.string_all()}")


def backends() -> list[str]:
    """The backends chosen with --backend (both by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    chosen = parser.parse_args().backend
    return ["asyncio", "trio"] if chosen == "all" else [chosen]


if __name__ == "__main__":
    for backend in backends():
        anyio.run(main, backend, backend=backend)
