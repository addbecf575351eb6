"""A deadline for every async test of a module: a broken runtime fails the
test instead of hanging the suite."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import anyio


def bound_async_tests(namespace: dict[str, Any], seconds: float) -> None:
    """Wrap each ``async def test_*`` in `namespace` in ``fail_after(seconds)``."""
    for name, fn in list(namespace.items()):
        if name.startswith("test_") and inspect.iscoroutinefunction(fn):
            namespace[name] = _bounded(fn, seconds)


def _bounded(fn: Any, seconds: float) -> Any:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        with anyio.fail_after(seconds):
            return await fn(*args, **kwargs)

    return wrapper
