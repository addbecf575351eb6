"""am-dbg's Textual UI, driven headless by Textual's pilot.

Textual runs on asyncio only: each test runs the app under `asyncio.run`,
with the app's in-process `Collector` on loopback. The debugged machines
report to it over TCP (`bind_dbg`) from the app's asyncio loop AND from a
trio run in a thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("textual")

import trio

import asyncmachine as am
from asyncmachine.debugger import (
    Collector,
    Session,
    Step,
    StepType,
    TransitionRecord,
    bind_dbg,
    close_senders,
    read_session,
    write_session,
)
from asyncmachine.debugger.tui import DebuggerApp, HelpScreen, main, make_app
from asyncmachine.debugger.tui._demo import DEMO_SCHEMA, demo_session, drive_demo
from asyncmachine.debugger.tui._views import TxFilter, log_lines, parse_url

# the demo history per machine: 1 add Start (+Ready), 2 add Downloading,
# 3 add Blocked (canceled), 4 add Processing, 5 add Done, [6 Exception],
# then dispose: remove Start


@pytest.fixture(autouse=True)
def _senders() -> Iterator[None]:
    yield
    close_senders()


def _text(app: DebuggerApp, sel: str) -> str:
    return str(app.view(sel).render())


async def _until(col: Collector, pred: Callable[[], bool]) -> None:
    """Wait (on the collector's change callback) until `pred` holds."""
    async with asyncio.timeout(10):
        while not pred():
            ev = asyncio.Event()
            col.on_change = lambda s, ev=ev: ev.set()
            if pred():
                break
            await ev.wait()


def _machine(mid: str, addr: str, parent: am.Machine | None = None) -> am.Machine:
    m = am.Machine(DEMO_SCHEMA, id=mid, parent=parent, log_level=am.LogLevel.OPS)
    m.logger = lambda level, text: None
    if parent is None:
        assert bind_dbg(m, addr) is not None
    return m


def _run_machines(addr: str, tag: str) -> None:
    """A parent (an error, then disposed) and a child, on `tag`'s loop."""

    async def go() -> None:
        root = _machine(f"{tag}-root", addr)
        child = _machine(f"{tag}-child", addr, parent=root)
        drive_demo(root, fail=True)
        drive_demo(child)
        root.dispose()

    if tag == "trio":
        trio.run(go)
    else:
        asyncio.run(go())


def _both_backends_feed(app: DebuggerApp) -> Callable[[], object]:
    """Start the asyncio and trio machines; returns a joiner."""
    assert app.collector is not None
    addr = f"127.0.0.1:{app.collector.port}"
    threads = [
        threading.Thread(target=_run_machines, args=(addr, tag))
        for tag in ("asyncio", "trio")
    ]
    for t in threads:
        t.start()

    def join() -> None:
        for t in threads:
            t.join()

    return join


def _fed(app: DebuggerApp) -> bool:
    ms = app.session.machines
    return all(
        f"{tag}-{role}" in ms
        and len(ms[f"{tag}-{role}"].transitions) == n
        and ms[f"{tag}-root"].connected is False
        for tag in ("asyncio", "trio")
        for role, n in (("root", 7), ("child", 5))
    )


async def _feed(app: DebuggerApp) -> None:
    assert app.collector is not None
    await app.collector.listening.wait()
    join = _both_backends_feed(app)
    await asyncio.to_thread(join)
    await _until(app.collector, lambda: _fed(app))
    app.refresh_views()


def test_live_select_client_and_step_through() -> None:
    async def run() -> None:
        app = DebuggerApp(collector=Collector("127.0.0.1:0"))
        async with app.run_test(size=(150, 40)) as pilot:
            await _feed(app)
            clients = _text(app, "#clients")
            # parents before children, nested; the error mark and count
            assert "!asyncio-root |7 E1" in clients
            assert "   asyncio-child |5" in clients
            assert clients.index("asyncio-root") < clients.index("asyncio-child")
            app.select_machine("trio-root")
            assert "tx 7/7" in _text(app, "#bar")
            assert "listening 127.0.0.1:" in str(app.query_one("#bar").border_title)
            await pilot.press("home")
            bar = _text(app, "#bar")
            assert "mach://trio-root/" in bar and "tx 1/7" in bar
            assert "[add] [Start] ok" in bar.replace("add [", "[add] [")
            tree = _text(app, "#tree_body")
            assert "● Start (1) [called set]" in tree
            assert "● Ready (1) [implied set]" in tree
            assert "○ Done (0)" in tree and "remove:Processing" in tree
            # steps: back to before the transition, then forward one by one
            assert app.query_one("#steps").border_title == "steps 4/4"
            await pilot.press("alt+j", "alt+j", "alt+j", "alt+j")
            assert app.query_one("#steps").border_title == "steps 0/4"
            assert "○ Start (0)" in _text(app, "#tree_body")
            assert app.url().endswith("/0")
            await pilot.press("full_stop")
            assert "○ Start (0) [called]" in _text(app, "#tree_body")
            await pilot.press("alt+k", "alt+k")
            tree = _text(app, "#tree_body")
            assert "● Start (1) [called set]" in tree
            assert "○ Ready (0) [implied]" in tree
            assert "Start add Ready" in _text(app, "#steps")
            assert "steps 3/4" in _text(app, "#timelines")
            # next transitions: the canceled one, with its blocking step
            await pilot.press("right", "right")
            assert "add [Blocked] canceled" in _text(app, "#bar")
            assert "Blocked require Done" in _text(app, "#steps")
            # the log is synced: the selected transition's lines, not later ones
            log = _text(app, "#log")
            assert "[reject] Blocked(-Done)" in log
            assert "processed 3 items" not in log
            await pilot.press("end")
            assert "processed 3 items" in _text(app, "#log")
            # a disconnected machine stays inspectable
            assert not app.session.machines["trio-root"].connected
            await pilot.press("down")
            assert "mach://trio-child/" in _text(app, "#bar")
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            # live data under the help: the main screen's views redraw
            app.select_machine("trio-root")
            assert "mach://trio-root/" in _text(app, "#bar")
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)

    asyncio.run(run())


def test_live_jumps_state_jump_and_log_level() -> None:
    async def run() -> None:
        app = DebuggerApp(collector=Collector("127.0.0.1:0"))
        async with app.run_test(size=(150, 40)) as pilot:
            await _feed(app)
            app.select_machine("asyncio-root")
            await pilot.press("alt+left")
            assert "tx 1/7" in _text(app, "#bar")
            await pilot.press("right_square_bracket")
            assert "tx 7/7" in _text(app, "#bar")
            # select Downloading (3rd state) and jump between the
            # transitions touching it: 4 (removed by Processing), 2 (called)
            await pilot.press("s", "s", "s")
            assert ">○ Downloading" in _text(app, "#tree_body")
            await pilot.press("alt+h")
            assert "add [Processing] ok" in _text(app, "#bar")
            await pilot.press("left_curly_bracket")
            assert "add [Downloading] ok" in _text(app, "#bar")
            await pilot.press("alt+l")
            assert "add [Processing] ok" in _text(app, "#bar")
            # log level: EVERYTHING -> 0 hides all lines; 1 shows external ones
            assert "[rel:remove]" in _text(app, "#log")
            await pilot.press("L")
            assert _text(app, "#log").strip() == ""
            await pilot.press("L")
            log = _text(app, "#log")
            assert "starting the download" in log and "[rel:remove]" not in log

    asyncio.run(run())


def test_filters_search_views_and_play() -> None:
    async def run() -> None:
        app = DebuggerApp(demo_session(), select_machine="worker")
        async with app.run_test(size=(150, 40)) as pilot:
            await pilot.press("home")
            for _ in range(4):
                await pilot.press("right")
            assert "tx 5/5" in _text(app, "#bar")
            await pilot.press("c")  # canceled hidden: 4 left
            assert "filters:canceled" in _text(app, "#bar")
            assert "tx 5/5" in _text(app, "#bar")
            await pilot.press("home", "right", "right")
            assert "add [Processing] ok" in _text(app, "#bar")
            await pilot.press("c", "d")  # canceled back; disconnected hidden
            assert "worker-2" not in _text(app, "#clients")
            await pilot.press("d")
            assert "worker-2" in _text(app, "#clients")
            await pilot.press("slash", *"ker-1", "enter")
            assert _text(app, "#clients").strip() == "worker-1 |5"
            assert app.machine_id == "worker-1"
            await pilot.press("slash", "escape")
            assert "worker-2" in _text(app, "#clients")
            # rain: one line per transition; the canceled one marked
            await pilot.press("r")
            assert app.query_one("#log").border_title == "rain"
            rain = _text(app, "#log").splitlines()
            assert len(rain) == 5 and rain[2].endswith(" x")
            assert rain[0].startswith("     1 ██")
            # matrix: states x transitions, then relations
            await pilot.press("m")
            matrix = _text(app, "#tree_body")
            assert matrix.splitlines()[0].startswith("Start")
            assert "x" in matrix.splitlines()[5]  # Blocked canceled
            await pilot.press("alt+m")
            rel = _text(app, "#tree_body").splitlines()
            assert rel[2].startswith("Ready") and "R" in rel[2]
            await pilot.press("m", "r")
            # play: one transition per frame (frames driven here, no timer
            # can run between these synchronous calls)
            app.action_first()
            app.action_play()
            seen = [app.cursor]
            while app.playing:
                app.tick()
                seen.append(app.cursor)
            assert seen == list(range(len(app.shown())))
            # mouse: click the third machine of the list
            await pilot.click("#clients", offset=(4, 3))
            assert app.machine_id == "worker-2"

    asyncio.run(run())


def test_auto_checks_queued_empty_filters() -> None:
    session = demo_session(1)
    txs = session.machines["worker"].transitions
    for tx in txs:  # only records of queued mutations carry it; mark one
        tx.is_queued = False
    txs[0].is_auto = True
    txs[1].is_check = True
    txs[3].is_queued = True
    txs[4].clocks = list(txs[3].clocks)  # nothing moved: empty
    m = session.machines["worker"]
    for flt, gone in (
        ("auto", 0),
        ("checks", 1),
        ("canceled", 2),
        ("queued", 3),
        ("empty", 4),
    ):
        f = TxFilter(m, frozenset({flt}))
        f.update()
        assert f.index == [i for i in range(5) if i != gone], flt


def test_narrow_layout() -> None:
    async def run() -> None:
        app = DebuggerApp(demo_session(), select_machine="worker")
        async with app.run_test(size=(80, 50)) as pilot:
            await pilot.pause()
            assert app.screen.has_class("narrow")
            clients = app.query_one("#clients").region
            tree = app.query_one("#tree").region
            assert tree.y > clients.y and tree.x == clients.x
            await pilot.resize_terminal(150, 40)
            await pilot.pause()
            assert not app.screen.has_class("narrow")

    asyncio.run(run())


def test_export_reimport_and_deep_link(tmp_path: Path) -> None:
    out = tmp_path / "s.amdbg"

    async def run() -> None:
        app = DebuggerApp(collector=Collector("127.0.0.1:0"), export_path=out)
        async with app.run_test(size=(150, 40)) as pilot:
            await _feed(app)
            await pilot.press("ctrl+s")
        again = read_session(out)
        assert set(again.machines) == set(app.session.machines)
        tx3 = again.machines["trio-root"].transitions[2]
        assert tx3.steps == app.session.machines["trio-root"].transitions[2].steps
        reopened = DebuggerApp(again, url=f"mach://trio-root/{tx3.id}/1")
        async with reopened.run_test(size=(150, 40)) as pilot:
            assert f"mach://trio-root/{tx3.id}/1" in _text(reopened, "#bar")
            assert "tx 3/7" in _text(reopened, "#bar")
            assert "steps 1/3" in _text(reopened, "#timelines")
            # the address bar: a number works as TX too
            await pilot.press("g", "ctrl+a", "ctrl+k", *"mach://trio-child/2", "enter")
            assert "mach://trio-child/" in _text(reopened, "#bar")
            assert "tx 2/5" in _text(reopened, "#bar")
            await pilot.press("g", "ctrl+a", "ctrl+k", *"mach://nope", "enter")
            assert "tx 2/5" in _text(reopened, "#bar")

    asyncio.run(run())


def test_deep_link_waits_for_a_live_machine() -> None:
    async def run() -> None:
        app = DebuggerApp(
            collector=Collector("127.0.0.1:0"), url="mach://trio-child/2/0"
        )
        async with app.run_test(size=(150, 40)):
            await _feed(app)
            app.tick()
            assert app.machine_id == "trio-child"
            assert "tx 2/5" in _text(app, "#bar") and app.step == 0

    asyncio.run(run())


def test_parse_url() -> None:
    assert parse_url("mach://a/b/3") == ("a", "b", 3)
    assert parse_url("mach://a") == ("a", "", None)
    for bad in ("http://a", "mach://", "mach://a/b/c"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_main_rejects_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--listen-addr", "nohost"]) == 2
    assert "host:port" in capsys.readouterr().err
    assert main(["http://x"]) == 2
    assert "mach://" in capsys.readouterr().err
    path = tmp_path / "s.amdbg"
    write_session(path, demo_session())
    assert main(["-i", str(path), "mach://nope"]) == 2
    assert "'nope'" in capsys.readouterr().err
    assert main(["-i", str(path), "mach://worker/99"]) == 2
    assert "'99'" in capsys.readouterr().err
    assert main(["-i", str(tmp_path / "missing.amdbg")]) == 2
    assert "missing.amdbg" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])


def test_listen_error_is_shown() -> None:
    async def run() -> None:
        first = Collector("127.0.0.1:0")
        async with first:
            app = DebuggerApp(collector=Collector(f"127.0.0.1:{first.port}"))
            async with app.run_test(size=(150, 40)):
                assert app.collector_worker is not None
                await app.collector_worker.wait()
                app.refresh_views()
                assert "cannot listen on 127.0.0.1:" in str(
                    app.query_one("#bar").border_title
                )

    asyncio.run(run())


def test_session_default() -> None:
    app = DebuggerApp()
    assert isinstance(app.session, Session) and app.collector is None


def test_client_counts_repaint_at_most_twice_a_second() -> None:
    session = demo_session()

    async def run() -> None:
        app = DebuggerApp(session, select_machine="worker")
        async with app.run_test(size=(150, 40)):
            assert "worker-1 |5" in _text(app, "#clients")
            m = session.machines["worker-1"]
            session.add_transition("worker-1", m.transitions[-1])
            app.refresh_views()
            # only a count moved, within 0.5 s of the last repaint: later
            assert "worker-1 |5" in _text(app, "#clients")
            app._clients_at -= 1  # half a second passed
            app.tick()  # no session change: the stale list catches up
            assert "worker-1 |6" in _text(app, "#clients")
            # a new mark repaints at once
            m.connected = False
            session.version += 1
            app.refresh_views()
            assert "x  worker-1 |6" in _text(app, "#clients")

    asyncio.run(run())


def test_command_line_flags(tmp_path: Path) -> None:
    path = tmp_path / "s.amdbg"
    write_session(path, demo_session())

    async def run() -> None:
        app = make_app(
            [
                "-i",
                str(path),
                "--filter-canceled",
                "--filter-disconn",
                "--filter-log-level",
                "1",
                "--view",
                "matrix",
                "--view-rain",
                "--view-narrow",
                "--dir",
                str(tmp_path),
                "--output-tx",
                "--output-clients",
                "--output-log",
                "mach://worker/4",
            ]
        )
        async with app.run_test(size=(150, 40)) as pilot:
            assert app.collector is None
            assert app.filters == {"canceled", "disconnected"}
            assert "worker-2" not in _text(app, "#clients")
            assert app.screen.has_class("narrow")
            assert app.rain and app.matrix == "tx" and app.log_level == 1
            assert "tx 4/5" in _text(app, "#bar")
            assert "add [Processing] ok" in _text(app, "#bar")
            # Go's --output-* files follow the selection
            tx_md = (tmp_path / "tx.md").read_text()
            assert tx_md.startswith("mach://worker/worker-004\n")
            assert "- **Processing** remove **Downloading**" in tx_md
            assert "worker-2 parent=worker" in (tmp_path / "clients.txt").read_text()
            log = (tmp_path / "log.txt").read_text()  # level 1: external only
            assert log == "[worke] [exter] starting the download\n"
            await pilot.press("right")
            assert (
                (tmp_path / "tx.md")
                .read_text()
                .startswith("mach://worker/worker-005\n")
            )
            # click a state of the tree (the matrix off first)
            await pilot.press("m", "m")
            await pilot.click("#tree_body", offset=(3, 2))
            assert app.state_idx == 2
            await pilot.press("ctrl+s")
        assert read_session(tmp_path / "am-dbg-session.amdbg").machines.keys() == {
            "worker",
            "worker-1",
            "worker-2",
        }
        live = make_app(["--listen-addr", "127.0.0.1:0"])
        assert live.collector is not None and live.collector.port == 0
        # a deep link to a filtered-out transition shows it (filters off)
        hidden = make_app(["-i", str(path), "--filter-canceled", "mach://worker/3"])
        assert hidden.filters == set() and hidden.cursor == 2

    asyncio.run(run())
    with pytest.raises(ValueError, match="unknown filters"):
        DebuggerApp(filters=["nope"])
    with pytest.raises(ValueError, match="unknown outputs"):
        DebuggerApp(outputs=["nope"])


def test_log_lines_scan_is_bounded() -> None:
    m = demo_session(1).machines["worker"]
    every = log_lines(m, 4, 5, 100)
    assert [e.text for e, _ in every][-1].endswith("+Done -Processing")
    assert all(mine for e, mine in every[-3:])  # the selected tx's own lines
    # only the last 2 transitions read: none of the first ones' lines
    near = log_lines(m, 4, 5, 100, scan=2)
    assert not any("Start" in e.text for e, _ in near)
    assert any("processed 3 items" in e.text for e, _ in near)
    assert log_lines(m, 4, 0, 100) == []


def test_mouse_steps_rain_and_timelines() -> None:
    async def run() -> None:
        app = DebuggerApp(demo_session(), select_machine="worker")
        async with app.run_test(size=(150, 40)) as pilot:
            await pilot.press("home")
            # the steps view: a click on the 2nd step applies two steps
            await pilot.click("#steps", offset=(5, 2))
            assert app.step == 2 and "steps 2/4" in _text(app, "#timelines")
            # the rain view: a click on the 3rd line selects that transition
            await pilot.press("r")
            await pilot.click("#log", offset=(5, 3))
            assert "add [Blocked] canceled" in _text(app, "#bar")
            # the timelines: the far end of the bar, then its start
            end = 1 + 18 + app._timeline_width() - 1
            await pilot.click("#timelines", offset=(end, 1))
            assert "tx 5/5" in _text(app, "#bar")
            await pilot.click("#timelines", offset=(1 + 18, 1))
            assert "tx 1/5" in _text(app, "#bar")
            await pilot.click("#timelines", offset=(1 + 18, 2))
            assert app.step == 0

    asyncio.run(run())


def test_memory_cap_drops_keep_numbers_and_selection() -> None:
    session = demo_session(1)
    m = session.machines["worker"]
    one = m.transitions[0].size()
    session.max_memory = one * 6

    async def run() -> None:
        app = DebuggerApp(session, select_machine="worker")
        async with app.run_test(size=(150, 40)) as pilot:
            await pilot.press("home", "right")  # tx 2 of 5
            selected = app.current()
            assert selected is not None
            for tx in list(m.transitions):  # 5 more: the oldest are dropped
                session.add_transition(
                    "worker",
                    TransitionRecord(
                        id=tx.id + "b",
                        clocks=list(tx.clocks),
                        called=tx.called,
                        mutation=tx.mutation,
                        accepted=tx.accepted,
                    ),
                )
            assert m.dropped_cap == 1  # tx 1 dropped, the selected tx 2 kept
            app.refresh_views()
            cur = app.current()
            assert cur is not None and cur[1] is selected[1]
            assert app.cursor == 0 and "tx 2/10" in _text(app, "#bar")
            n = 0
            while m.dropped_cap < 2:  # until the selected one is gone too
                n += 1
                session.add_transition(
                    "worker",
                    TransitionRecord(
                        id=f"more-{n}",
                        clocks=[0] * 7,
                        called=[],
                        mutation="add",
                        accepted=True,
                    ),
                )
            app.refresh_views()
            assert app.cursor == 0 and f"tx 3/{10 + n}" in _text(app, "#bar")
            # a schema with a new state: old clocks are shorter
            m.states.append("Extra")
            await pilot.press("m", "end", "S", "alt+h")
            assert "Extra" in _text(app, "#tree_body")

    asyncio.run(run())


def test_am_dbg_help_lists_the_ui_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from asyncmachine.debugger import _cli

    with pytest.raises(SystemExit):
        _cli.main(["--help"])
    out = capsys.readouterr().out
    assert "serve" in out and "without a subcommand, the terminal UI" in out
    assert "--import-data" in out and "--view-rain" in out


def test_long_steps_list_is_windowed() -> None:
    session = demo_session(1)
    tx = session.machines["worker"].transitions[-1]
    tx.steps = [Step(StepType.HANDLER, "Done", data=f"h{i}") for i in range(100)]

    async def run() -> None:
        app = DebuggerApp(session, select_machine="worker")
        async with app.run_test(size=(150, 40)) as pilot:
            height = app.view("#steps").content_size.height
            lines = _text(app, "#steps").splitlines()
            assert len(lines) <= height and lines[-1].startswith("100 ")
            await pilot.press("comma", "comma")
            assert app.step == 98
            app.step = 40
            app.refresh_views()
            lines = _text(app, "#steps").splitlines()
            assert len(lines) == height
            assert any(line.startswith(" 40 ") for line in lines)
            first = int(lines[0].split()[0])  # the number on the top line
            await pilot.click("#steps", offset=(5, 1))
            assert app.step == first

    asyncio.run(run())


def test_opens_a_go_am_dbg_session() -> None:
    go = Path(__file__).parent / "data" / "go" / "am-dbg-sim.gob.br"

    async def run() -> None:
        app = make_app(["-i", str(go), "mach://ps-4-disc/2"])
        async with app.run_test(size=(140, 40)) as pilot:
            assert "xps-4-disc |237" in _text(app, "#clients")
            bar = _text(app, "#bar")
            assert "tx 2/237" in bar and "add [RefreshingDiscoveries] ok" in bar
            assert "called RefreshingDiscoveries" in _text(app, "#steps")
            assert "[state] +RefreshingDiscoveries" in _text(app, "#log")
            await pilot.press("end")
            assert "tx 237/237" in _text(app, "#bar")

    asyncio.run(run())
