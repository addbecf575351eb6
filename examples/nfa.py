"""A nondeterministic finite automaton, run on a multi-state machine.

The NFA accepts the binary words whose fourth symbol from the end is a 1,
the regular expression ``(0|1)*1(0|1){3}``. Its states are

- ``Scanning``: the loop that reads any symbol and stays (always active);
- ``Got1``: the guess "this 1 is the fourth from the end";
- ``Got2``, ``Got3``: one and two more symbols read since the guess;
- ``Matched``: three more symbols read, the accepting state.

A deterministic machine would need 16 states for this language. A
multi-state machine does not: the set of its active states *is* the set of
NFA states the automaton is in, so every guess runs in parallel. Each
symbol is an ``Input`` (a Multi state with the bit in its args); its
handler computes the next set of NFA states and sets it in one transition.
Every NFA state requires ``Start``, so removing ``Start`` clears the run.

Run it with ``python examples/nfa.py [--backend asyncio|trio|all]``; it
checks a few words against the regular expression.
"""

from __future__ import annotations

import argparse
import itertools
import re

import anyio
import anyio.lowlevel

import asyncmachine as am


class S(am.StatesBase):
    """State names of the NFA."""

    Start = am.state()
    Input = am.state()
    Done = am.state()
    Scanning = am.state()
    Got1 = am.state()
    Got2 = am.state()
    Got3 = am.state()
    Matched = am.state()


STEPS = [S.Got1, S.Got2, S.Got3, S.Matched]
"""After reading any symbol, each of these moves to the next one."""

SCHEMA: am.Schema = {
    S.Start: am.State(add=[S.Scanning]),
    S.Input: am.State(multi=True, require=[S.Start]),
    S.Done: am.State(require=[S.Start]),
    S.Scanning: am.State(require=[S.Start]),
    S.Got1: am.State(require=[S.Start]),
    S.Got2: am.State(require=[S.Start]),
    S.Got3: am.State(require=[S.Start]),
    S.Matched: am.State(require=[S.Start]),
}


class Automaton:
    """Handlers: the transition function, and the task that reads the word."""

    def InputEnter(self, e: am.Event) -> bool:
        # refuse anything but one binary digit
        return e.args.get("bit") in ("0", "1")

    def InputState(self, e: am.Event) -> None:
        mach = e.machine
        bit = e.args["bit"]
        nxt = [S.Scanning]  # the loop reads everything
        if bit == "1":
            nxt.append(S.Got1)  # guess: this is the 4th 1 from the end
        nxt += [b for a, b in itertools.pairwise(STEPS) if mach.is1(a)]
        # one transition: the new set of NFA states (Input itself ends)
        mach.set([S.Start, *nxt])

    async def StartState(self, e: am.Event) -> None:
        # an async final handler: a task bound to this activation of Start
        mach = e.machine
        for bit in e.args["word"]:
            mach.add1(S.Input, {"bit": bit})
            await anyio.lowlevel.checkpoint()
        mach.add1(S.Done)


async def accepts(word: str) -> bool:
    """Run the NFA on `word`; True if it ends in the accepting state."""
    async with am.Machine(SCHEMA, id=f"nfa-{word}", handlers=Automaton()) as mach:
        mach.add1(S.Start, {"word": word})
        with anyio.fail_after(5):
            await mach.when1(S.Done)
        matched = mach.is1(S.Matched)
        active = [s for s in mach.active_states if s in (S.Scanning, *STEPS)]
        print(f"  {word:>8}: {'accepted' if matched else 'rejected':8} {active}")
        mach.remove1(S.Start)  # everything requires Start
        assert mach.active_states == []
    return matched


async def main(backend: str) -> None:
    """Check the NFA against Python's regular expressions."""
    print(f"[{backend}] words whose 4th symbol from the end is 1:")
    pattern = re.compile(r"[01]*1[01]{3}")
    for word in ["101010", "1010", "100010", "1000", "0111", "11110000", "1"]:
        assert await accepts(word) == bool(pattern.fullmatch(word)), word


def backends() -> list[str]:
    """The backends chosen with --backend (both by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    chosen = parser.parse_args().backend
    return ["asyncio", "trio"] if chosen == "all" else [chosen]


if __name__ == "__main__":
    for backend in backends():
        anyio.run(main, backend, backend=backend)
