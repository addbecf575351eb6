"""Developer tasks: ``nox -s tests lint types docs`` is what CI checks.

Every session installs the project with its ``dev`` extra, so the tool
versions follow pyproject.toml. Environments are reused between runs
(``nox -N`` recreates them). Sessions use the Python that runs nox (3.11 or
newer).
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"  # `nox -N` recreates the environments
nox.options.sessions = ["tests", "lint", "types", "docs"]

LINTED = ["src", "tests", "examples", "benchmarks", "typing_tests", "noxfile.py"]
COVERAGE = [
    "--cov=asyncmachine",
    "--cov-branch",
    "--cov-report=term-missing:skip-covered",
]


def _install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with coverage (every async test on asyncio and trio)."""
    _install(session)
    session.run("python", "-m", "pytest", *COVERAGE, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    _install(session)
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict on the package."""
    _install(session)
    session.run("mypy", "--strict", "src")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: the core against the transitions library, the runtime
    against bare anyio, telemetry against none, aRPC against bare TCP, NATS
    against bare nats-py (``-- --quick`` for a smoke run)."""
    _install(session)
    session.run("python", "benchmarks/bench_core.py", *session.posargs)
    session.run("python", "benchmarks/bench_runtime.py", *session.posargs)
    session.run("python", "benchmarks/bench_telemetry.py", *session.posargs)
    # bench_rpc.py and bench_nats.py take --quick only
    quick = [a for a in session.posargs if a == "--quick"]
    session.run("python", "benchmarks/bench_rpc.py", *quick)
    session.run("python", "benchmarks/bench_nats.py", *quick)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site, failing on any warning."""
    _install(session)
    site = session.create_tmp()
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        f"{site}/site",
        env={"NO_MKDOCS_2_WARNING": "1"},
    )


@nox.session
def examples(session: nox.Session) -> None:
    """Run every example script."""
    _install(session)
    for path in sorted(Path("examples").glob("*.py")):
        session.run("python", str(path))
