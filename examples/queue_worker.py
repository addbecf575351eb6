"""A queue worker with retries (after the Asynq worker of the Go examples).

Jobs come from a queue (an anyio memory stream); the worker takes one at a
time and retries a failing job with exponential backoff, giving up after
``MAX_ATTEMPTS``. Each step is a state:

- ``Idle`` (Auto): waits for the next job; its async handler receives from
  the queue and activates ``Working``;
- ``Working``: runs one attempt of a job;
- ``ErrJob``: a failed attempt. It requires ``Exception``, so a failure is
  an error like any other (``add_err_state``); its handler decides between
  ``Backoff`` (retry later) and ``GaveUp``;
- ``Backoff``: waits, then activates ``Working`` again with the next
  attempt number;
- ``Succeeded`` and ``GaveUp``: Multi states, one activation per job;
- ``Drained``: the queue was closed and is empty.

``Idle``, ``Working`` and ``Backoff`` remove each other, so the worker is
always in exactly one of them, and each one's async handler is cancelled
the moment its state ends.

Run it with ``python examples/queue_worker.py [--backend asyncio|trio|all]``;
it asserts which jobs succeeded, after how many attempts, and which failed.
"""

from __future__ import annotations

import argparse

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream

import asyncmachine as am


class S(am.StatesBase):
    """State names of the worker."""

    Start = am.state()
    Idle = am.state()
    Working = am.state()
    Backoff = am.state()
    ErrJob = am.state()
    Succeeded = am.state()
    GaveUp = am.state()
    Drained = am.state()


BUSY = [S.Idle, S.Working, S.Backoff]

SCHEMA: am.Schema = {
    S.Start: am.State(),
    S.Idle: am.State(auto=True, require=[S.Start], remove=BUSY),
    S.Working: am.State(require=[S.Start], remove=BUSY),
    S.Backoff: am.State(require=[S.Start], remove=BUSY),
    S.ErrJob: am.State(multi=True, require=[S.Exception]),
    S.Succeeded: am.State(multi=True),
    S.GaveUp: am.State(multi=True),
    S.Drained: am.State(require=[S.Start], remove=[S.Idle]),
}

MAX_ATTEMPTS = 3
BASE_DELAY = 0.001
"""Seconds before the first retry; doubled for each further attempt."""


class FlakyJob:
    """A job that fails its first `failures` attempts."""

    def __init__(self, name: str, failures: int) -> None:
        self.name = name
        self.failures = failures

    async def run(self, attempt: int) -> str:
        await anyio.lowlevel.checkpoint()  # pretend to do I/O
        if attempt <= self.failures:
            raise ConnectionError(f"{self.name}: attempt {attempt} failed")
        return f"{self.name} done"


class Worker:
    """Handlers of the worker machine."""

    def __init__(self, queue: MemoryObjectReceiveStream[FlakyJob]) -> None:
        self.queue = queue
        self.succeeded: dict[str, int] = {}
        self.gave_up: list[str] = []
        self.attempts = 0

    async def IdleState(self, e: am.Event) -> None:
        try:
            job = await self.queue.receive()
        except anyio.EndOfStream:
            e.machine.add1(S.Drained)
            return
        e.machine.add1(S.Working, {"job": job, "attempt": 1})

    async def WorkingState(self, e: am.Event) -> None:
        mach = e.machine
        job: FlakyJob = e.args["job"]
        attempt: int = e.args["attempt"]
        self.attempts += 1
        try:
            await job.run(attempt)
        except ConnectionError as exc:
            mach.add_err_state(S.ErrJob, exc, {"job": job, "attempt": attempt})
            return
        print(f"  {job.name}: succeeded at attempt {attempt}")
        self.succeeded[job.name] = attempt
        mach.add1(S.Succeeded, {"name": job.name})
        mach.remove1(S.Working)  # Idle (Auto) takes over

    def ErrJobState(self, e: am.Event) -> None:
        mach = e.machine
        job: FlakyJob = e.args["job"]
        attempt: int = e.args["attempt"]
        if attempt < MAX_ATTEMPTS:
            delay = BASE_DELAY * 2 ** (attempt - 1)
            print(f"  {job.name}: attempt {attempt} failed, retry in {delay}s")
            mach.add1(S.Backoff, {"job": job, "attempt": attempt, "delay": delay})
        else:
            print(f"  {job.name}: giving up after {attempt} attempts")
            self.gave_up.append(job.name)
            mach.add1(S.GaveUp, {"name": job.name})
            mach.remove1(S.Working)

    async def BackoffState(self, e: am.Event) -> None:
        await anyio.sleep(e.args["delay"])
        retry = {"job": e.args["job"], "attempt": e.args["attempt"] + 1}
        e.machine.add1(S.Working, retry)


async def main(backend: str) -> None:
    """Queue four jobs, run the worker until the queue is drained, check."""
    jobs = [FlakyJob("a", 0), FlakyJob("b", 1), FlakyJob("c", 2), FlakyJob("d", 9)]
    send, receive = anyio.create_memory_object_stream[FlakyJob](len(jobs))
    async with send:
        for job in jobs:
            send.send_nowait(job)
    worker = Worker(receive)
    print(f"[{backend}] {len(jobs)} jobs, at most {MAX_ATTEMPTS} attempts each")
    async with (
        receive,
        am.Machine(SCHEMA, id=f"worker-{backend}", handlers=worker) as mach,
    ):
        mach.add1(S.Start)  # Idle activates by itself (Auto)
        with anyio.fail_after(10):
            await mach.when1(S.Drained)
        print(f"  {mach.string_all()}")
        # a Multi state ticks +1 when it activates, +2 for each re-activation
        assert mach.tick(S.Succeeded) == 1 + 2 * 2 and mach.tick(S.GaveUp) == 1
        assert mach.is_err() and isinstance(mach.err, ConnectionError)
    assert worker.succeeded == {"a": 1, "b": 2, "c": 3}
    assert worker.gave_up == ["d"]
    assert worker.attempts == 1 + 2 + 3 + MAX_ATTEMPTS


def backends() -> list[str]:
    """The backends chosen with --backend (both by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    chosen = parser.parse_args().backend
    return ["asyncio", "trio"] if chosen == "all" else [chosen]


if __name__ == "__main__":
    for backend in backends():
        anyio.run(main, backend, backend=backend)
