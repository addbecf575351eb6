"""am-dbg end to end under tmux: start it on a saved session, send keys,
capture the pane, assert on its text."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("textual")

from asyncmachine.debugger.tui._demo import demo_session

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed (.ci/run installs it)"
)


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


def test_am_dbg_in_tmux(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    demo_session().save(path)
    name = f"am-dbg-{uuid.uuid4().hex[:8]}"
    cmd = (
        f"{sys.executable} -m asyncmachine.debugger.tui -i {path} "
        f"--output-session {tmp_path / 'out.json'} mach://worker/2"
    )
    _tmux("new-session", "-d", "-s", name, "-x", "110", "-y", "30", cmd)
    try:
        _wait_pane(name, "tx 2/6")
        _tmux("send-keys", "-t", name, "Right", "Right")
        pane = _wait_pane(name, "tx 4/6")
        assert "add [Done] canceled" in pane
        _tmux("send-keys", "-t", name, "End")
        _wait_pane(name, "tx 6/6")
        _tmux("send-keys", "-t", name, "C-s")
        _wait_pane(name, "exported")
        assert (tmp_path / "out.json").exists()
        _tmux("send-keys", "-t", name, "q")
        end = time.monotonic() + 10
        while _alive(name) and time.monotonic() < end:
            time.sleep(0.1)
        assert not _alive(name), "am-dbg did not quit on q"
    finally:
        subprocess.run([TMUX, "kill-session", "-t", name], capture_output=True)
