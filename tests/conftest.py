"""Shared pytest configuration.

Every ``async def`` test is run by the anyio pytest plugin (``anyio_mode =
"auto"`` in pyproject.toml) once per backend of the ``anyio_backend``
fixture below: asyncio and trio. ``tests/test_backends_guard.py`` fails if
trio is missing or if only one backend actually ran.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from pg_server import pg_url as pg_url  # a PostgreSQL server, session-wide

#: The backends every async test runs on. The guard test checks this list.
ANYIO_BACKENDS = ("asyncio", "trio")

#: The test that checks, after everything else, that both backends ran.
GUARD_LAST = "test_backends_guard.py::test_zz_both_backends_ran"

# Hypothesis: no per-example deadline on shared 2-core CI machines, and a
# derandomised (reproducible) search there; the local default stays random.
settings.register_profile("dev", deadline=None)
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "one_backend: an async test that deliberately runs on one anyio backend "
        "only (it overrides `anyio_backend`); the backends guard exempts it",
    )


@pytest.fixture(scope="module", params=ANYIO_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each async test on asyncio and on trio (module scope, as anyio's)."""
    backend: str = request.param
    return backend


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Move the backends guard's final check to the very end of the run."""
    last = [item for item in items if item.nodeid.endswith(GUARD_LAST)]
    if last:
        rest = [item for item in items if not item.nodeid.endswith(GUARD_LAST)]
        items[:] = rest + last
