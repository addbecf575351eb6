"""The pytest plugin (entry point) and `machine_factory`, on asyncio and trio."""

from __future__ import annotations

from importlib.metadata import entry_points

import anyio
import pytest

import asyncmachine as am
from asyncmachine.testing import (
    InvariantError,
    LogCapture,
    MachineFactory,
    machine_factory,
)

pytest_plugins = ["pytester"]

SCHEMA = {"Start": am.State(), "Ready": am.State(auto=True, require=["Start"])}


def test_the_entry_point_is_registered() -> None:
    (ep,) = [e for e in entry_points(group="pytest11") if e.name == "asyncmachine"]
    assert ep.value == "_asyncmachine_pytestplugin"


async def test_am_machine_runs_a_machine(am_machine: MachineFactory) -> None:
    mach = await am_machine(SCHEMA, id="fixture")
    assert mach.running and mach.id == "fixture"
    seen = anyio.Event()

    async def job() -> None:
        await mach.when1("Ready")
        seen.set()

    mach.fork(None, job)
    mach.add1("Start")
    with anyio.fail_after(5):
        await seen.wait()
    other = await am_machine(SCHEMA, invariants=False)
    assert other.running and other is not mach


async def test_am_log(am_machine: MachineFactory, am_log: LogCapture) -> None:
    mach = await am_machine(SCHEMA, logger=am_log, log_level=am.LogLevel.CHANGES)
    mach.add1("Start")
    assert am_log.lines == ["[state] +Start", "[auto_] +Ready"]


async def test_machine_factory_disposes_and_checks() -> None:
    async with machine_factory() as start:
        mach = await start(SCHEMA)
        plain = await start(SCHEMA, invariants=False)
        assert not plain._tracers
    assert mach.disposed and plain.disposed and not mach.running
    with pytest.raises(InvariantError, match="made up"):
        async with machine_factory() as start:
            mach = await start(SCHEMA)
            (checker,) = mach._tracers
            checker.violations.append("made up")  # type: ignore[attr-defined]
    # a machine disposed by the test itself is fine
    async with machine_factory() as start:
        mach = await start(SCHEMA)
        mach.dispose()


USER_TEST = """
import pytest
import asyncmachine as am

@pytest.mark.anyio
async def test_user(am_machine, am_log):
    mach = await am_machine({"A": am.State()}, logger=am_log, log_level=2)
    mach.add1("A")
    assert mach.running and am_log.lines == ["[state] +A"]

def test_sync_user(am_log):
    assert am_log.records == []
"""


def test_a_users_project(pytester: pytest.Pytester) -> None:
    """No conftest, no configuration: the fixtures come with the package."""
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "error", "-v")
    # anyio's own `anyio_backend` runs the async test on every backend installed
    result.stdout.fnmatch_lines(["*test_user[[]asyncio[]] PASSED*"])
    result.stdout.fnmatch_lines(["*test_sync_user PASSED*"])
    assert result.ret == 0


USER_GIVEN_TEST = """
import anyio
import pytest
from hypothesis import given, settings, strategies as st

import asyncmachine as am
from asyncmachine.testing import machine_factory

SCHEMA = {"Start": am.State(), "Ready": am.State(auto=True, require=["Start"])}


@pytest.mark.anyio
@settings(max_examples=10, deadline=None)
@given(toggles=st.integers(min_value=0, max_value=5))
async def test_pattern(anyio_backend, toggles):
    # a fresh machine for every example, from a context manager
    async with machine_factory() as start:
        mach = await start(SCHEMA)
        mach.add1("Start")
        for _ in range(toggles):
            mach.toggle1("Start")
        assert mach.is1("Ready") == mach.is1("Start")


@pytest.mark.anyio
@given(toggles=st.integers(min_value=0, max_value=5))
async def test_fixture_in_given(am_machine, toggles):
    await am_machine(SCHEMA)
"""


def test_the_given_pattern_of_the_docs(pytester: pytest.Pytester) -> None:
    """docs/testing.md: `@given` with `machine_factory()` works, with the
    function-scoped `am_machine` fixture hypothesis refuses it."""
    pytester.makepyfile(test_given=USER_GIVEN_TEST)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "error", "-v")
    result.stdout.fnmatch_lines(["*test_pattern[[]asyncio[]] PASSED*"])
    result.stdout.fnmatch_lines(["*test_fixture_in_given[[]asyncio[]] FAILED*"])
    result.stdout.fnmatch_lines(["*function-scoped fixture 'am_machine'*"])
    assert result.ret == 1
