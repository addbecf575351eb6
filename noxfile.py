"""Developer tasks: ``nox -s tests lint types docs`` is what CI checks.

Every session installs the project with its ``dev`` extra, so the tool
versions follow pyproject.toml. Environments are reused between runs
(``nox -N`` recreates them). Sessions use the Python that runs nox (3.11 or
newer).
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"  # `nox -N` recreates the environments
nox.options.sessions = ["tests", "lint", "types", "docs"]

ROOT = Path(__file__).resolve().parent
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
    """mypy --strict on the package; pyright's type completeness >= 95%."""
    _install(session)
    session.run("mypy", "--strict", "src")
    session.run("python", ".ci/verifytypes.py")


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
    session.run("python", "benchmarks/bench_history.py", *quick)
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
    """Run every example script, on asyncio and on trio."""
    _install(session)
    for path in sorted(Path("examples").glob("*.py")):
        for backend in ("asyncio", "trio"):
            session.run("python", str(path), "--backend", backend)


@nox.session
def wheel(session: nox.Session) -> None:
    """Build the sdist and wheel; run the tests against the installed wheel.

    The tests run in a temporary directory outside the checkout, from the
    unpacked sdist without its src/, so nothing can import the checkout.
    """
    session.install("build")
    with tempfile.TemporaryDirectory(prefix="am-wheel-") as tmp:
        dist = Path(tmp) / "dist"
        session.run("python", "-m", "build", "--outdir", str(dist), ".")
        (wheel_path,) = dist.glob("asyncmachine-*.whl")
        (sdist_path,) = dist.glob("asyncmachine-*.tar.gz")
        session.install(f"{wheel_path}[dev]")
        with tarfile.open(sdist_path) as tar:
            tar.extractall(tmp, filter="data")
        suite = Path(tmp) / sdist_path.name.removesuffix(".tar.gz")
        shutil.rmtree(suite / "src")
        session.chdir(str(suite))
        session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
        session.run("python", str(ROOT / ".ci" / "verifytypes.py"))
