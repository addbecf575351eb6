"""am-repl: the secret's sources, line editing with history, the missing extra."""

from __future__ import annotations

import argparse
import builtins
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import asyncmachine as am
from asyncmachine import rpc
from asyncmachine.rpc import _repl


def ns(secret: str | None = None, secret_file: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(secret=secret, secret_file=secret_file)


def test_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_repl.SECRET_ENV, "from-env")
    assert _repl.read_secret(ns()) == "from-env"
    monkeypatch.delenv(_repl.SECRET_ENV)
    assert _repl.read_secret(ns()) is None


def test_secret_from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_repl.SECRET_ENV, "from-env")
    path = tmp_path / "secret"
    path.write_text("s3cret \n")
    # the file wins over the environment; only the line end is stripped
    assert _repl.read_secret(ns(secret_file=str(path))) == "s3cret "
    path.write_text("\n")
    with pytest.raises(SystemExit, match="is empty"):
        _repl.read_secret(ns(secret_file=str(path)))
    with pytest.raises(SystemExit, match="cannot read --secret-file"):
        _repl.read_secret(ns(secret_file=str(tmp_path / "missing")))


def test_secret_on_the_command_line_warns(capsys: pytest.CaptureFixture[str]) -> None:
    assert _repl.read_secret(ns(secret="visible")) == "visible"
    err = capsys.readouterr().err
    assert "visible to other users in the process list" in err
    assert _repl.SECRET_ENV in err and "--secret-file" in err
    with pytest.raises(SystemExit, match="not both"):
        _repl.read_secret(ns(secret="a", secret_file="b"))


def test_history_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(_repl.HISTORY_ENV, str(tmp_path / "h"))
    assert _repl.history_path() == tmp_path / "h"
    monkeypatch.delenv(_repl.HISTORY_ENV)
    assert _repl.history_path() == Path.home() / ".am_repl_history"


async def test_readline_lines_prompt_and_history(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    readline = pytest.importorskip("readline")
    history = tmp_path / "history"
    history.write_text("add Earlier\n")
    readline.clear_history()
    typed = iter(["ls", "add A x=1"])
    prompts: list[str] = []

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr(builtins, "input", fake_input)
    got = []
    with anyio.fail_after(10):
        async for line in _repl.readline_lines("src> ", history):
            got.append(line)
    assert got == ["ls", "add A x=1"]
    assert prompts == ["src> "] * 3
    # the old history was loaded, and the history file written back
    assert readline.get_history_item(1) == "add Earlier"
    assert "add Earlier" in history.read_text()
    readline.clear_history()


def test_missing_rpc_extra_is_one_line() -> None:
    code = (
        "import sys; sys.modules['msgpack'] = None\n"
        "from asyncmachine._repl_main import main\n"
        "sys.exit(main(['127.0.0.1:1', '--states', 'A']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "am-repl: error: msgpack is not installed; "
        "install the rpc extra: pip install 'asyncmachine[rpc]'\n"
    )


SCHEMA: am.Schema = am.schema_merge(rpc.SOURCE_SCHEMA, {"A": am.State()})


async def test_am_repl_end_to_end_with_the_secret_from_env(tmp_path: Path) -> None:
    """A real am-repl process: the secret from $AM_REPL_SECRET, commands on a pipe."""
    import os

    async with (
        am.Machine(SCHEMA, id="repl-src") as source,
        rpc.Server(source, secret="s3cret") as server,
    ):
        code = (
            "import sys\nfrom asyncmachine._repl_main import main\nsys.exit(main())\n"
        )
        states = ",".join(n for n in source.state_names if n != "Exception")
        env = {**os.environ, _repl.SECRET_ENV: "s3cret", _repl.HISTORY_ENV: ""}
        with anyio.fail_after(60):
            args = [f"127.0.0.1:{server.port}", "--states", states, "--timeout", "30"]
            proc = await anyio.run_process(
                [sys.executable, "-c", code, *args],
                input=b"add A\nls\nquit\n",
                env=env,
                check=False,
            )
        out = proc.stdout.decode()
        assert proc.returncode == 0, (out, proc.stderr.decode())
        assert "connected to repl-src" in out
        assert "executed (A:1)" in out
        assert source.is1("A")
        assert "visible" not in proc.stderr.decode()  # no --secret warning


def test_entry_point_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from asyncmachine import _repl_main

    with pytest.raises(SystemExit) as exc:
        _repl_main.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--secret-file" in out and _repl.SECRET_ENV in out
    # the module that needs the extra cannot be imported: one line, status 2
    monkeypatch.setitem(sys.modules, "asyncmachine.rpc._repl", None)
    assert _repl_main.main(["127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("am-repl: error: ") and err.count("\n") == 1
    assert "pip install 'asyncmachine[rpc]'" in err
