"""A throwaway PostgreSQL server on 127.0.0.1 for the history tests.

The server binaries come from the `pgserver` wheel (in the `dev` extra), or
else from a system PostgreSQL (`AM_TEST_PG_BIN`, `pg_config --bindir`,
/usr/lib/postgresql/*/bin). PostgreSQL refuses to run as root: under root
the cluster belongs to `nobody` and every server command runs through
`setpriv`. Without binaries the PostgreSQL tests skip, saying why.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def find_bindir() -> Path | None:
    """A directory holding initdb, pg_ctl and postgres, or None."""
    candidates: list[str] = []
    if os.environ.get("AM_TEST_PG_BIN"):
        candidates.append(os.environ["AM_TEST_PG_BIN"])
    # the pgserver wheel's binaries, found without importing pgserver (its
    # import touches platformdirs, which warns without XDG_RUNTIME_DIR)
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        pkg = Path(next(iter(spec.submodule_search_locations)))
        candidates.append(str(pkg / "pginstall" / "bin"))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        d = Path(c)
        if all((d / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NoServer(Exception):
    """No PostgreSQL server can be started here (the message says why)."""


def _reachable_by_all(path: Path) -> bool:
    """Whether every directory from / down to `path` lets others through."""
    path = path.resolve()
    return all(os.stat(d).st_mode & 0o001 for d in [*reversed(path.parents), path])


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a PostgreSQL server started for this test session."""
    try:
        with pg_server() as url:
            yield url
    except NoServer as err:
        pytest.skip(str(err))


@contextlib.contextmanager
def pg_server() -> Iterator[str]:
    """Start a throwaway server on 127.0.0.1; its URL; stop it after."""
    bindir = find_bindir()
    if bindir is None:
        raise NoServer(
            "no PostgreSQL server binaries: install the dev extra (pgserver) or "
            "a system PostgreSQL, or point AM_TEST_PG_BIN at its bin directory"
        )
    prefix: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="am-history-pg-"))
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            shutil.rmtree(tmp)
            raise NoServer("running as root and no setpriv to drop to nobody")
        import pwd

        nobody = pwd.getpwnam("nobody")
        os.chown(tmp, nobody.pw_uid, nobody.pw_gid)
        if not _reachable_by_all(bindir.parent):
            # e.g. a venv under a root-only directory: nobody could not load
            # the server's libraries there; a copy in our temp dir it can
            copy = tmp / "pginstall"
            shutil.copytree(bindir.parent, copy, symlinks=True)
            bindir = copy / bindir.name
        prefix = [
            setpriv,
            f"--reuid={nobody.pw_uid}",
            f"--regid={nobody.pw_gid}",
            "--clear-groups",
        ]
    data = tmp / "data"
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}

    def run(*args: str) -> None:
        proc = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, env=env, check=False
        )
        if proc.returncode != 0:
            log = tmp / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}\n{tail}"
            )

    try:
        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(tmp / "server.log"),
            "-o",
            f"-h 127.0.0.1 -p {port} -k {tmp} -F -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off",
            "-w",
            "-t",
            "60",
            "start",
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        try:
            run(
                str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def new_database(url: str, name: str) -> str:
    """Create database `name` on the server at `url`; its URL."""
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"
