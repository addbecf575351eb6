"""Shared parts of the node package: errors, payload names, small helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

try:
    import msgpack  # type: ignore[import-untyped]  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "asyncmachine.node needs msgpack: pip install 'asyncmachine[node]'"
    ) from exc

__all__ = [
    "POOL_SECRET_ENV",
    "SECRET_ENV",
    "NodeError",
    "WorkError",
    "WorkerGoneError",
]

SECRET_ENV = "AM_NODE_SECRET"
"""The environment variable a worker process reads its secret from (never
the command line, which other users can read in the process list)."""

POOL_SECRET_ENV = "AM_NODE_POOL_SECRET"
"""The environment variable a worker process reads the pool secret from: it
re-registers with a restarted supervisor that proves this secret."""

# payload names
P_WORKER = "worker"  # supervisor -> client: a worker's address and secret
P_WORKER_GONE = "worker_gone"  # supervisor -> client: its worker died
P_RESULT = "result"  # worker -> client: the result (or error) of a job


class NodeError(Exception):
    """A node failure: a worker that did not start, a refused request."""


class WorkerGoneError(NodeError):
    """The worker of a client died or disconnected; request another one."""


class WorkError(NodeError):
    """The work raised on the worker (the message carries its error)."""


async def first(*waits: Callable[[], Awaitable[Any]]) -> int:
    """Run the waits together; return the index of the first to finish and
    cancel the others."""
    winner = -1

    async def one(i: int, fn: Callable[[], Awaitable[Any]]) -> None:
        nonlocal winner
        await fn()
        if winner < 0:
            winner = i
        tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        for i, fn in enumerate(waits):
            tg.start_soon(one, i, fn)
    return winner
