"""Guard: every async test really runs on asyncio AND on trio.

The anyio pytest plugin silently falls back to asyncio alone when trio does
not import, and a fixture edit could drop a backend without anyone noticing.
These tests fail in both cases. ``test_zz_both_backends_ran`` is moved to
the end of the session by ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import defaultdict
from typing import Any

import anyio
import anyio.lowlevel
import pytest

EXPECTED = {"asyncio", "trio"}
TRIO_FLOOR = (0, 32)

# backend requested by the fixture -> event loop library actually running
_RAN: dict[str, str] = {}


def _running_library() -> str:
    """Name the async library running the current task, without sniffio."""
    import trio

    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        asyncio.get_running_loop()  # raises RuntimeError if neither runs
        return "asyncio"
    return "trio"


def _version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def test_trio_is_installed_at_the_floor() -> None:
    import trio  # a plain import: a missing trio must fail, not skip

    assert _version(trio.__version__) >= TRIO_FLOOR, trio.__version__
    assert set(anyio.get_available_backends()) >= EXPECTED


async def test_probe_backend(anyio_backend: Any) -> None:
    assert isinstance(anyio_backend, str), anyio_backend
    library = _running_library()
    assert library == anyio_backend
    await anyio.lowlevel.checkpoint()  # a real checkpoint on the running loop
    _RAN[anyio_backend] = library


def test_every_async_test_is_parametrized_over_both(
    request: pytest.FixtureRequest,
) -> None:
    """Each collected async test (per other parameters) has both backends.

    Tests marked ``@pytest.mark.one_backend`` are exempt.
    """
    groups: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for item in request.session.items:
        if not isinstance(item, pytest.Function):
            continue
        if item.get_closest_marker("one_backend") is not None:
            continue  # deliberately single-backend (e.g. trio's MockClock)
        func = item.obj
        inner = getattr(getattr(func, "hypothesis", None), "inner_test", func)
        inner = getattr(inner, "_anyio_original_func", inner)  # after a run
        is_async = inspect.iscoroutinefunction(inner)
        callspec = getattr(item, "callspec", None)
        params: dict[str, Any] = dict(callspec.params) if callspec else {}
        if "anyio_backend" not in params:
            assert not is_async, f"{item.nodeid} is async but runs on no backend"
            continue
        backend = params.pop("anyio_backend")
        name = backend if isinstance(backend, str) else backend[0]
        others = repr(sorted((k, repr(v)) for k, v in params.items()))
        groups[(str(item.path), item.originalname, others)].add(name)

    assert groups, "no async test was collected"
    for key, backends in groups.items():
        assert backends == EXPECTED, f"{key[1]} runs on {sorted(backends)} only"


def test_zz_both_backends_ran() -> None:
    assert _RAN == {"asyncio": "asyncio", "trio": "trio"}, (
        f"async tests ran on {sorted(_RAN)}; expected {sorted(EXPECTED)} "
        "(run the whole module, and check that trio is installed)"
    )
