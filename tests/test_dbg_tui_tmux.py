"""am-dbg end to end under tmux: start it, send keys, capture the pane,
assert on its text. One run opens a saved session; one listens while an
example reports to it through AM_DBG_ADDR."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("textual")

from asyncmachine.debugger import write_session
from asyncmachine.debugger.tui._demo import demo_session

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed (.ci/run installs it)"
)
ROOT = Path(__file__).resolve().parent.parent


def _tmux(*args: str) -> str:
    assert TMUX is not None
    return subprocess.run(
        [TMUX, *args], check=True, capture_output=True, text=True
    ).stdout


def _wait_pane(name: str, text: str, timeout: float = 20.0) -> str:
    """Poll the captured pane until `text` shows (a terminal offers no event)."""
    end = time.monotonic() + timeout
    pane = ""
    while time.monotonic() < end:
        pane = _tmux("capture-pane", "-p", "-t", name)
        if text in pane:
            return pane
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never showed; the pane:\n{pane}")


def _alive(name: str) -> bool:
    assert TMUX is not None
    r = subprocess.run([TMUX, "has-session", "-t", name], capture_output=True)
    return r.returncode == 0


def _quit(name: str) -> None:
    _tmux("send-keys", "-t", name, "q")
    end = time.monotonic() + 10
    while _alive(name) and time.monotonic() < end:
        time.sleep(0.1)
    assert not _alive(name), "am-dbg did not quit on q"


def _start(cmd: str, width: int = 120) -> str:
    name = f"am-dbg-{uuid.uuid4().hex[:8]}"
    _tmux("new-session", "-d", "-s", name, "-x", str(width), "-y", "32", cmd)
    # a running tmux server may keep its own default size
    _tmux("resize-window", "-t", name, "-x", str(width), "-y", "32")
    return name


def test_am_dbg_on_a_saved_session(tmp_path: Path) -> None:
    path = tmp_path / "s.amdbg"
    write_session(path, demo_session())
    out = tmp_path / "out.amdbg"
    name = _start(
        f"{sys.executable} -m asyncmachine.debugger.tui -i {path} "
        f"--output-session {out} mach://worker/2"
    )
    try:
        _wait_pane(name, "tx 2/5")
        _tmux("send-keys", "-t", name, "Right")
        pane = _wait_pane(name, "tx 3/5")
        assert "add [Blocked] canceled" in pane
        assert "Blocked require Done" in pane and "steps 3/3" in pane
        # an alt binding, then its plain alternative: one step back each
        _tmux("send-keys", "-t", name, "M-j")
        _wait_pane(name, "steps 2/3")
        _tmux("send-keys", "-t", name, ",")
        _wait_pane(name, "steps 1/3")
        _tmux("send-keys", "-t", name, "End")
        _wait_pane(name, "tx 5/5")
        _tmux("send-keys", "-t", name, "C-s")
        _wait_pane(name, "exported")
        assert out.exists()
        _quit(name)
    finally:
        subprocess.run(
            [TMUX or "tmux", "kill-session", "-t", name], capture_output=True
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_am_dbg_live_with_an_example() -> None:
    port = _free_port()
    name = _start(
        f"{sys.executable} -m asyncmachine.debugger.tui --listen-addr 127.0.0.1:{port}"
    )
    try:
        _wait_pane(name, f"listening 127.0.0.1:{port}")
        env = {**os.environ, "AM_DBG_ADDR": f"127.0.0.1:{port}"}
        subprocess.run(
            [sys.executable, str(ROOT / "examples" / "am_dbg_live.py")],
            env=env,
            check=True,
            timeout=60,
        )
        pane = _wait_pane(name, "downloader")
        _wait_pane(name, "tx 6/6")
        _tmux("send-keys", "-t", name, "Home")
        pane = _wait_pane(name, "tx 1/6")
        assert "add [Start]" in pane, pane
        _quit(name)
    finally:
        subprocess.run(
            [TMUX or "tmux", "kill-session", "-t", name], capture_output=True
        )
