"""am-dbg's Textual UI, driven headless by Textual's pilot.

Textual runs on asyncio only: the pilot runs under `asyncio.run` in sync
tests, while the debugged machines run on asyncio AND on trio (a thread).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

pytest.importorskip("textual")

import trio

import asyncmachine as am
from asyncmachine.debugger.tui import DebuggerApp, Session, SessionTracer, main
from asyncmachine.debugger.tui._app import HelpScreen

SCHEMA = {
    "Start": am.State(add=["Ready"]),
    "Ready": am.State(require=["Start"]),
    "Work": am.State(require=["Ready"]),
    "Done": am.State(remove=["Work"]),
    "Blocked": am.State(require=["Done"]),
}


async def _drive(session: Session, mach_id: str, parent_id: str = "") -> None:
    tracer = SessionTracer(session)
    mach = am.Machine(SCHEMA, id=mach_id, tracers=[tracer])
    mach.add(["Start"])
    mach.add(["Work"])  # executed: Ready is active
    mach.add(["Blocked"])  # canceled: Blocked requires Done
    mach.add(["Done"])
    child = am.Machine(SCHEMA, id=f"{mach_id}-child", parent=mach)
    child.add(["Work"])  # canceled: no Ready
    mach.dispose()


def _session() -> Session:
    """Machines fed by an asyncio run and a trio run in a thread."""
    session = Session()
    asyncio.run(_drive(session, "mach-asyncio"))
    t = threading.Thread(target=trio.run, args=(_drive, session, "mach-trio"))
    t.start()
    t.join()
    return session


def _text(app: DebuggerApp, sel: str) -> str:
    return str(app.query_one(sel).render())


def test_session_records_real_machines() -> None:
    s = _session()
    assert list(s.machines) == [
        "mach-asyncio",
        "mach-asyncio-child",
        "mach-trio",
        "mach-trio-child",
    ]
    m = s.machines["mach-trio"]
    assert not m.connected
    assert [(t.type, t.called, t.result) for t in m.txs][:4] == [
        ("add", ["Start"], True),
        ("add", ["Work"], True),
        ("add", ["Blocked"], False),
        ("add", ["Done"], True),
    ]
    assert s.machines["mach-trio-child"].parent == "mach-trio"


def test_select_client_and_step_through_transitions() -> None:
    session = _session()

    async def run() -> None:
        app = DebuggerApp(session)
        async with app.run_test(size=(120, 30)) as pilot:
            assert "mach-asyncio" in _text(app, "#clients")
            assert "  mach-asyncio-child" in _text(app, "#clients")
            bar = _text(app, "#bar")
            assert "mach://mach-asyncio/" in bar and "tx 5/5" in bar
            await pilot.press("home")
            assert "tx 1/" in _text(app, "#bar")
            assert "● Start (1)" in _text(app, "#tree_body")
            assert "○ Work (0)" in _text(app, "#tree_body")
            await pilot.press("right", "right")
            assert "add [Blocked] canceled" in _text(app, "#bar")
            await pilot.press("left")
            assert "● Work (1)" in _text(app, "#tree_body")
            await pilot.press("end")
            assert "○ Work (2)" in _text(app, "#tree_body")
            await pilot.press("down", "down")
            assert "mach://mach-trio/" in _text(app, "#bar")
            # state jump: select Work, jump back to the transition calling it
            await pilot.press("s", "s", "s", "alt+h")
            assert "add [Work] ok" in _text(app, "#bar")
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)

    asyncio.run(run())


def test_filters_search_rain_and_play() -> None:
    session = _session()

    async def run() -> None:
        app = DebuggerApp(session)
        async with app.run_test(size=(120, 30)) as pilot:
            assert "canceled" in _text(app, "#log")
            await pilot.press("c")
            assert "canceled" not in _text(app, "#log")
            assert "filters:canceled" in _text(app, "#bar")
            await pilot.press("slash", *"trio-ch", "enter")
            assert _text(app, "#clients").strip() == "trio-child |1".replace(
                "trio", "mach-trio"
            )
            assert app.machine_id == "mach-trio-child"
            await pilot.press("slash", "ctrl+a", "ctrl+k", "enter", "c", "r", "up")
            assert "█" in _text(app, "#log")
            await pilot.press("home", "space")
            assert app.playing
            while app.playing:
                await pilot.pause(0.05)
            assert app.cursor == len(app.txs()) - 1

    asyncio.run(run())


def test_export_and_reimport(tmp_path: Path) -> None:
    out = tmp_path / "s.json"

    session = _session()

    async def run() -> None:
        app = DebuggerApp(session, export_path=out)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("ctrl+s")
        assert out.exists()
        again = DebuggerApp(
            Session.load(out), select_machine="mach-trio", select_transition=1
        )
        async with again.run_test(size=(100, 30)):
            assert "mach://mach-trio/" in _text(again, "#bar")
            assert "tx 2/5" in _text(again, "#bar")

    asyncio.run(run())
    with pytest.raises(ValueError, match="not an am-dbg session"):
        (tmp_path / "bad.json").write_text("{}")
        Session.load(tmp_path / "bad.json")


def test_main_rejects_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--listen-addr", "localhost:6831"]) == 2
    assert "collector" in capsys.readouterr().err
    assert main(["http://x"]) == 2
    assert "mach://" in capsys.readouterr().err
    assert main(["mach://nope"]) == 2
    assert "'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
