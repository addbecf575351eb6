"""The am-dbg Textual app: clients, states tree, steps, log, timelines.

It reads the debugger's `Session` directly; live, a `Collector` fills the
session on the app's own asyncio loop and the views redraw at a fixed rate
when `Session.version` moved, never once per message. See docs/am-dbg.md.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import time
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Input, Static
from textual.worker import Worker

from ..._types import LogLevel
from .._collector import Collector
from .._model import MachineRecord, Session, TransitionRecord
from .._session import write_session
from .._view import list_clients, tx_string
from ._views import (
    FILTERS,
    ErrorCounter,
    TxFilter,
    active_at_step,
    client_depths,
    human_time,
    log_lines,
    parse_url,
    plain_step,
    step_marks,
    timeline,
)

__all__ = ["OUTPUTS", "DebuggerApp", "HelpScreen"]

OUTPUTS = ("tx", "clients", "log")
"""Files `DebuggerApp` can keep up to date (Go's `--output-*` flags)."""

HELP = """\
am-dbg keys (every alt binding has a plain alternative)
  ?                 this help (esc closes)
  up/down, k/j      select a machine
  mouse             click a machine, state, step, rain line or timeline
  left/right        previous / next transition
  alt+left/right    jump 100 back / forward (also [ and ])
  alt+h/alt+l       previous / next transition touching the selected
                    state (also { and })
  alt+j/alt+k       step back / forward inside the transition (also , .)
  s / S             select the next / previous state of the tree
  home / end        first / last transition
  space             play / pause
  v, alt+v          tail mode (follow the newest transition)
  /                 search machines (enter applies, esc clears)
  g                 go to a mach://ID/TX/STEP address
  a c e x u d       filters: auto, canceled, empty, checks, queued,
                    disconnected machines
  L                 log level (cycles 0..5)
  m, alt+m          matrix view: states x transitions, relations, off
  r, alt+r          rain view (one line per transition)
  ctrl+s, alt+s     export the session
  q, ctrl+q         quit
"""

_FILTER_KEYS = {
    "a": "auto",
    "c": "canceled",
    "e": "empty",
    "x": "checks",
    "u": "queued",
    "d": "disconnected",
}
_TIMELINE_X = 18
"""The column where the timelines' bars start."""
# the first relation found names the cell
_REL_LETTERS = {"require": "R", "remove": "X", "add": "A", "after": "F"}


def _tick(clocks: list[int], i: int) -> int:
    # a machine that re-registered with more states has shorter old clocks
    return clocks[i] if i < len(clocks) else 0


def _title(widget: Widget, title: str) -> None:
    # assigning a border title repaints the whole widget, even unchanged
    if widget.border_title != title:
        widget.border_title = title


class HelpScreen(ModalScreen[None]):
    """The key reference, shown on `?`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "app.pop_screen", "close")
    ]

    def compose(self) -> ComposeResult:
        """The help text."""
        yield Static(HELP, id="help")


class _View(Static):
    """A view that passes clicks to the app (`DebuggerApp.click`)."""

    def on_click(self, event: events.Click) -> None:
        app = self.app
        offset = event.get_content_offset(self)
        if isinstance(app, DebuggerApp) and offset is not None and self.id:
            app.click(self.id, offset.x, offset.y)


class DebuggerApp(App[None]):
    """The terminal debugger over a `Session`, imported or live.

    With `collector`, the collector serves on this app's loop and its
    session is the one shown. `fps` caps the redraws.
    """

    CSS: ClassVar[str] = """
    #clients { width: 30; height: 1fr; border: round $accent; }
    #tree { width: 1fr; border: round $accent; }
    #right { width: 1fr; }
    #tree_body { height: auto; }
    #steps { height: 12; border: round $accent; }
    #log { height: 1fr; border: round $accent; }
    #bar { height: 4; border: round $accent; }
    #timelines { height: 4; border: round $accent; }
    #bar, #clients, #tree_body, #steps, #log { text-wrap: nowrap; text-overflow: ellipsis; }
    #address { display: none; height: 3; }
    #address.shown { display: block; }
    #help { border: round $accent; width: 80; height: auto; background: $panel; }
    HelpScreen { align: center middle; }
    .narrow #main { layout: vertical; }
    .narrow #clients { width: 1fr; height: 7; }
    .narrow #tree { width: 1fr; height: 1fr; }
    .narrow #right { width: 1fr; height: 1fr; }
    .narrow #steps { height: 7; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "help"),
        Binding("up,k", "client(-1)", "prev machine", show=False),
        Binding("down,j", "client(1)", "next machine", show=False),
        Binding("left", "tx(-1)", "prev tx", show=False),
        Binding("right", "tx(1)", "next tx", show=False),
        Binding("alt+left,left_square_bracket", "tx(-100)", "-100", show=False),
        Binding("alt+right,right_square_bracket", "tx(100)", "+100", show=False),
        Binding("alt+h,left_curly_bracket", "state_jump(-1)", show=False),
        Binding("alt+l,right_curly_bracket", "state_jump(1)", show=False),
        Binding("alt+j,comma", "step(-1)", show=False),
        Binding("alt+k,full_stop", "step(1)", show=False),
        Binding("s", "state(1)", show=False),
        Binding("S", "state(-1)", show=False),
        Binding("home", "first", show=False),
        Binding("end", "last", show=False),
        Binding("space", "play", "play/pause"),
        Binding("v,alt+v", "tail", "tail"),
        Binding("slash", "search", "search"),
        Binding("g", "goto", "go to"),
        *(Binding(k, f"filter('{v}')", show=False) for k, v in _FILTER_KEYS.items()),
        Binding("L", "log_level", show=False),
        Binding("m,alt+m", "matrix", "matrix"),
        Binding("r,alt+r", "rain", "rain"),
        Binding("ctrl+s,alt+s", "export", "export"),
        Binding("q,ctrl+q", "quit", "quit"),
    ]

    NARROW: ClassVar[int] = 100
    """Below this many columns the views stack (the narrow layout)."""

    def __init__(
        self,
        session: Session | None = None,
        *,
        collector: Collector | None = None,
        fps: float = 10.0,
        export_path: str | Path = "am-dbg-session.amdbg",
        select_machine: str = "",
        select_transition: int = -1,
        url: str = "",
        filters: Iterable[str] = (),
        log_level: int = int(LogLevel.EVERYTHING),
        matrix: str = "",
        rain: bool = False,
        narrow: bool = False,
        gc_freeze: bool = False,
        output_dir: str | Path = ".",
        outputs: Iterable[str] = (),
    ) -> None:
        super().__init__()
        bad = set(outputs) - set(OUTPUTS)
        if bad:
            raise ValueError(f"unknown outputs {sorted(bad)}; known: {OUTPUTS}")
        bad = set(filters) - set(FILTERS)
        if bad:
            raise ValueError(f"unknown filters {sorted(bad)}; known: {FILTERS}")
        if matrix not in ("", "tx", "relations"):
            raise ValueError(f"matrix must be '', 'tx' or 'relations', not {matrix!r}")
        if session is None:
            session = collector.session if collector is not None else Session()
        elif collector is not None:
            collector.session = session
        self.session: Session = session
        """The data shown (the collector's, live)."""
        self.collector: Collector | None = collector
        """The in-process collector, live; None for an imported session."""
        self.collector_worker: Worker[None] | None = None
        """The worker serving the collector (live)."""
        self.listen_error: str = ""
        """Why the collector could not listen (empty when it does)."""
        self.fps: float = fps
        """Redraws per second at most; never one per message."""
        self.export_path: Path = Path(export_path)
        """Where `export` writes the session."""
        self.machine_id: str = select_machine
        """The selected machine's id."""
        self.cursor: int = select_transition
        """Index of the selected transition in the filtered list (-1: none)."""
        self.step: int | None = None
        """Steps applied of the selected transition (None: all of them)."""
        self.state_idx: int = -1
        """The selected state of the tree (-1: none)."""
        self.filters: set[str] = set(filters)
        """Active filters (see `FILTERS`)."""
        self.search: str = ""
        """Machine-list search text."""
        self.tail: bool = select_transition < 0
        """Follow the newest transition."""
        self.playing: bool = False
        """Advance one transition per frame."""
        self.rain: bool = rain
        """Show the rain view instead of the log."""
        self.matrix: str = matrix
        """Matrix view in place of the tree: "", "tx" or "relations"."""
        self.log_level: int = max(0, min(int(LogLevel.EVERYTHING), log_level))
        """Log lines above this level are hidden."""
        self.force_narrow: bool = narrow
        """The narrow layout whatever the terminal's width."""
        self.gc_freeze: bool = gc_freeze
        """Move the session's objects out of the garbage collector's reach
        (`gc.freeze`) on every frame while it grows, after collecting the
        young generations: a full collection over a big session stalls
        frames for hundreds of ms. For the `am-dbg` process; records are
        acyclic, so they are still freed when dropped. A cycle that was alive
        when frozen and dies later is not collected (small in practice:
        screens and notifications)."""
        self.output_dir: Path = Path(output_dir)
        """Where `outputs` are written."""
        self.outputs: frozenset[str] = frozenset(outputs)
        """Files kept up to date in `output_dir` (Go's `--output-*`): `tx`
        (tx.md, the selected transition with its steps), `clients`
        (clients.txt), `log` (log.txt, the log view's lines)."""
        self.frames: int = 0
        """Redraws so far."""
        self._url = url
        self._seen = -1
        self._errors = ErrorCounter()
        self._flt: TxFilter | None = None
        self._modal = ""
        self._shown_text: dict[str, Text] = {}
        self._views: dict[str, Widget] = {}
        self._written: dict[str, str] = {}
        self._steps_lo = 0
        self._sel: TransitionRecord | None = None
        self._rain_lo = 0
        self._clients_key: object = None
        self._clients_at = 0.0
        self._clients_stale = False

    # ----- layout

    def compose(self) -> ComposeResult:
        """Address input, transition bar, clients, tree, steps, log."""
        address = Input(placeholder="search machines", id="address")
        address.can_focus = False
        yield address
        yield Static(id="bar")
        with Horizontal(id="main"):
            yield _View(id="clients")
            with Vertical(id="tree"):
                yield _View(id="tree_body")
            with Vertical(id="right"):
                yield _View(id="steps")
                yield _View(id="log")
        yield _View(id="timelines")

    def on_mount(self) -> None:
        """Start the collector (live) and the fixed-rate redraw."""
        # the main screen's views, by selector: `query_one` would look in
        # whatever screen is on top (the help)
        for sel in (
            "#address",
            "#bar",
            "#clients",
            "#tree",
            "#tree_body",
            "#steps",
            "#log",
            "#timelines",
        ):
            self._views[sel] = self.query_one(sel)
        self.view("#clients").border_title = "machines"
        self.view("#log").border_title = "log"
        self.view("#steps").border_title = "steps"
        if self.collector is not None:
            self.collector_worker = self.run_worker(
                self._serve(), group="collector", exit_on_error=False
            )
        if not self.machine_id:
            ms = self.machines()
            if ms:
                self.machine_id = ms[0].id
        self._narrow(self.size.width)
        if self.gc_freeze:
            gc.freeze()  # an imported session
        self.set_interval(1 / self.fps, self.tick)
        self.refresh_views()

    async def _serve(self) -> None:
        assert self.collector is not None
        try:
            await self.collector.serve()
        except OSError as exc:
            col = self.collector
            self.listen_error = f"cannot listen on {col.host}:{col.port}: {exc}"
            self.notify(self.listen_error, severity="error")

    def on_resize(self, event: events.Resize) -> None:
        """Switch to the stacked layout on narrow terminals."""
        self._narrow(event.size.width)

    def _narrow(self, width: int) -> None:
        if self._views:
            self._views["#bar"].screen.set_class(
                self.force_narrow or width < self.NARROW, "narrow"
            )

    def _goto_pending(self) -> None:
        # a deep link waits for its machine to connect (live)
        if self._url:
            with contextlib.suppress(ValueError):
                self.goto(self._url)
                self._url = ""

    def tick(self) -> None:
        """One frame: play, follow the tail, redraw only on changes."""
        if self.playing:
            self._move(1)
        elif self.session.version != self._seen:
            self.refresh_views()
            if self.gc_freeze:
                # young cycles that are already garbage are collected first
                # (cheap: only what the last frames made), so freezing does
                # not keep them for good; survivors join the frozen set
                gc.collect(1)
                gc.freeze()
        elif self._clients_stale:
            self._set_clients()

    # ----- data

    def machines(self) -> list[MachineRecord]:
        """Machines in the list: filtered, searched, parents before children."""
        needle = self.search.lower()
        hide = "disconnected" in self.filters
        ms = [
            m
            for m in self.session.machines.values()
            if needle in m.id.lower() and not (hide and not m.connected)
        ]
        ids = {m.id for m in ms}
        kids: dict[str, list[MachineRecord]] = {}
        for m in ms:
            kids.setdefault(m.parent_id if m.parent_id in ids else "", []).append(m)
        out: list[MachineRecord] = []
        stack = list(reversed(kids.get("", [])))
        seen: set[str] = set()
        while stack:
            m = stack.pop()
            if m.id in seen:
                continue
            seen.add(m.id)
            out.append(m)
            stack.extend(reversed(kids.get(m.id, [])))
        return out

    def machine(self) -> MachineRecord | None:
        """The selected machine."""
        return self.session.machines.get(self.machine_id)

    def shown(self) -> list[int]:
        """Positions (in the machine's transitions) that pass the filters."""
        m = self.machine()
        if m is None:
            return []
        key = frozenset(self.filters - {"disconnected"})
        flt = self._flt
        if flt is None or flt.machine is not m or flt.filters != key:
            flt = self._flt = TxFilter(m, key)
        if flt.update() and self._sel is not None:
            # the memory cap dropped transitions: keep the selected one (the
            # positions moved; the record itself is remembered)
            self.cursor = self._find(self._sel)
        return flt.index

    def _selected(self) -> TransitionRecord | None:
        flt, m = self._flt, self.machine()
        if flt is None or m is None or not (0 <= self.cursor < len(flt.index)):
            return None
        pos = flt.index[self.cursor]
        return m.transitions[pos] if pos < len(m.transitions) else None

    def _find(self, tx: TransitionRecord) -> int:
        m, flt = self.machine(), self._flt
        assert m is not None and flt is not None
        for i in range(len(flt.index) - 1, -1, -1):
            if m.transitions[flt.index[i]] is tx:
                return i
        return 0 if flt.index else -1

    def current(self) -> tuple[int, TransitionRecord] | None:
        """(position in the machine's transitions, record) of the selection."""
        shown = self.shown()
        m = self.machine()
        if m is None or not shown or self.cursor < 0:
            return None
        pos = shown[min(self.cursor, len(shown) - 1)]
        return pos, m.transitions[pos]

    def number(self, pos: int) -> int:
        """The 1-based number of the transition at `pos`, counting drops."""
        m = self.machine()
        return pos + 1 + (m.dropped_cap if m else 0)

    def url(self) -> str:
        """The address of the selection, `mach://ID/TX/STEP`."""
        cur = self.current()
        if cur is None:
            return f"mach://{self.machine_id}"
        tx = cur[1]
        step = len(tx.steps) if self.step is None else self.step
        return f"mach://{self.machine_id}/{tx.id}/{step}"

    # ----- rendering

    def refresh_views(self) -> None:
        """Redraw every view from the session."""
        self.frames += 1
        if self._url and self.session.version != self._seen:
            self._goto_pending()
        self._seen = self.session.version
        if self.machine_id not in self.session.machines:
            ms = self.machines()
            if ms:
                self.machine_id = ms[0].id
        shown = self.shown()
        if self.tail:
            if self.cursor != len(shown) - 1:
                self.step = None
            self.cursor = len(shown) - 1
        self.cursor = min(self.cursor, len(shown) - 1)
        if self.cursor < 0 and shown:
            self.cursor = 0
        cur = self.current()
        self._sel = cur[1] if cur is not None else None
        if cur is not None and self.step is not None:
            self.step = max(0, min(self.step, len(cur[1].steps)))
        tree = self.view("#tree")
        _title(
            tree,
            {
                "": "states",
                "tx": "matrix: states x transitions",
                "relations": "matrix: relations",
            }[self.matrix],
        )
        self._set_clients()
        self._set(
            "#tree_body", self.render_matrix() if self.matrix else self.render_tree()
        )
        self._set("#bar", self.render_bar())
        self._set("#steps", self.render_steps())
        log = self.view("#log")
        _title(
            log,
            "rain"
            if self.rain
            else f"log (level {self.log_level}: {LogLevel(self.log_level)})",
        )
        self._set("#log", self.render_rain() if self.rain else self.render_log())
        self._set("#timelines", self.render_timelines())
        if self.outputs:
            self._write_outputs()

    def _write_outputs(self) -> None:
        m, cur = self.machine(), self.current()
        files: dict[str, str] = {}
        if "tx" in self.outputs and m is not None and cur is not None:
            files["tx.md"] = tx_string(m.id, cur[1])
        if "clients" in self.outputs:
            files["clients.txt"] = list_clients(self.session)
        if "log" in self.outputs:
            lines = (
                log_lines(m, cur[0], self.log_level, 1000)
                if m is not None and cur is not None
                else []
            )
            files["log.txt"] = "".join(e.text + "\n" for e, _ in lines)
        for name, text in files.items():
            if self._written.get(name) != text:
                try:
                    (self.output_dir / name).write_text(text, encoding="utf-8")
                except OSError as exc:
                    self.notify(f"cannot write {name}: {exc}", severity="error")
                    self.outputs -= {name.split(".")[0]}
                    continue
                self._written[name] = text

    def view(self, selector: str) -> Widget:
        """A view of the main screen by its selector (`#bar`, `#log`, ...)."""
        return self._views[selector]

    def _address(self) -> Input:
        inp = self._views["#address"]
        assert isinstance(inp, Input)
        return inp

    def _set_clients(self) -> None:
        # counts alone move on every frame when live: those repaint the list
        # at most twice a second; a change of machines, marks or selection
        # repaints it at once
        ms = self.machines()
        key = (
            self.machine_id,
            tuple((m.id, m.connected, self._errors.count(m)) for m in ms),
        )
        now = time.monotonic()
        if key == self._clients_key and now - self._clients_at < 0.5:
            self._clients_stale = True  # tick() catches up
            return
        self._clients_key, self._clients_at = key, now
        self._clients_stale = False
        self._set("#clients", self.render_clients(ms))

    def _set(self, selector: str, text: Text) -> None:
        # no repaint when the text did not change; the tree is as tall as its
        # text (less to repaint), so a layout pass only when its lines change
        old = self._shown_text.get(selector)
        if old != text:
            self._shown_text[selector] = text
            layout = selector == "#tree_body" and (
                old is None or old.plain.count("\n") != text.plain.count("\n")
            )
            view = self.view(selector)
            assert isinstance(view, Static)
            view.update(text, layout=layout)

    def render_clients(self, ms: list[MachineRecord] | None = None) -> Text:
        """One line per machine: nesting, error and disconnect marks, counts."""
        out = Text()
        if ms is None:
            ms = self.machines()
        depth = client_depths(self.session, [m.id for m in ms])
        for m in ms:
            errors = self._errors.count(m)
            style = "bold reverse" if m.id == self.machine_id else ""
            if errors:
                style += " red"
            elif not m.connected:
                style += " grey50"
            mark = "!" if errors else ("x" if not m.connected else " ")
            err = f" E{errors}" if errors else ""
            n = len(m.transitions) + m.dropped_cap
            out.append(
                f"{mark}{'  ' * depth[m.id]}{m.id} |{n}{err}\n",
                style=style.strip() or None,
            )
        return out

    def render_tree(self) -> Text:
        """States with ticks, active marks, relations and step marks."""
        m = self.machine()
        if m is None:
            return Text("no machine selected")
        cur = self.current()
        active: set[str] = set()
        ticks: dict[str, int] = {}
        marks: dict[str, list[str]] = {}
        now = ""
        if cur is not None:
            pos, tx = cur
            step = len(tx.steps) if self.step is None else self.step
            before = m.transitions[pos - 1].clocks if pos > 0 else None
            active, ticks = active_at_step(m.states, before, tx, step)
            marks = step_marks(tx.steps[:step])
            if 0 < step <= len(tx.steps):
                now = tx.steps[step - 1].state
        out = Text()
        for i, name in enumerate(m.states):
            on = name in active
            sel = ">" if i == self.state_idx else " "
            style = "bold green" if on else ""
            if name == "Exception" and on:
                style = "bold red"
            if name == now:
                style += " reverse"
            out.append(
                f"{sel}{'●' if on else '○'} {name} ({ticks.get(name, 0)})",
                style=style.strip() or None,
            )
            if name in marks:
                out.append(" [" + " ".join(marks[name]) + "]", style="yellow")
            rels = m.schema.get(name, {})
            words = [
                f"{k}:{','.join(v)}"
                for k, v in rels.items()
                if isinstance(v, list) and v
            ]
            words += [k for k, v in rels.items() if v is True]
            if words:
                out.append("  " + " ".join(words), style="dim")
            out.append("\n")
        return out

    def render_matrix(self) -> Text:
        """States x transitions (around the selection) or states x relations."""
        m = self.machine()
        if m is None:
            return Text("no machine selected")
        width = max(8, min(40, self.size.width // 3))
        pad = max((len(s) for s in m.states), default=1) + 1
        out = Text()
        if self.matrix == "relations":
            out.append(" " * pad + "".join(s[:1] for s in m.states) + "\n", "dim")
            for s in m.states:
                rels = m.schema.get(s, {})
                cells = ""
                for t in m.states:
                    c = "·"
                    for k, letter in _REL_LETTERS.items():
                        if t in (rels.get(k) or ()):
                            c = letter
                            break
                    cells += c
                out.append(f"{s:<{pad}}{cells}\n")
            out.append("R require  A add  X remove  F after", "dim")
            return out
        shown = self.shown()
        lo = max(0, self.cursor - width + 1)
        cols = shown[lo : self.cursor + 1]
        for r, s in enumerate(m.states):
            out.append(f"{s:<{pad}}")
            for pos in cols:
                tx = m.transitions[pos]
                prev = _tick(m.transitions[pos - 1].clocks, r) if pos > 0 else 0
                tick = _tick(tx.clocks, r)
                if s in tx.called and not tx.accepted:
                    c, st = "x", "red"
                elif tick != prev:
                    c, st = ("+", "bold green") if tick & 1 else ("-", "yellow")
                else:
                    c, st = ("█", "green") if tick & 1 else ("·", "dim")
                out.append(c, style=st)
            out.append("\n")
        out.append("+ activated  - deactivated  x canceled", "dim")
        return out

    def render_bar(self) -> Text:
        """Address; number, machine time, type, called, result, human time."""
        mode = "play" if self.playing else ("tail" if self.tail else "pause")
        flt = ",".join(f for f in FILTERS if f in self.filters) or "-"
        out = Text(self.url(), style="bold")
        bar = self.view("#bar")
        if self.listen_error:
            _title(bar, self.listen_error)
        elif self.collector is not None:
            col = self.collector
            _title(bar, f"listening {col.host}:{col.port} ({col.clients} clients)")
        m, cur = self.machine(), self.current()
        if m is None or cur is None:
            out.append(f"\nno transition  [{mode}]  filters:{flt}")
            return out
        pos, tx = cur
        res = "ok" if tx.accepted else "canceled"
        flags = "".join(
            f" {name}"
            for name, on in (
                ("auto", tx.is_auto),
                ("check", tx.is_check),
                ("queued", tx.is_queued),
            )
            if on
        )
        total = len(m.transitions) + m.dropped_cap
        out.append(
            f"\ntx {self.number(pos)}/{total}  t{sum(tx.clocks)}  {tx.mutation}"
            f" [{' '.join(tx.called)}] {res}{flags}  {human_time(tx.time)}"
            f"  [{mode}]  filters:{flt}"
        )
        return out

    def render_steps(self) -> Text:
        """The steps of the selected transition, the current one marked."""
        cur = self.current()
        widget = self.view("#steps")
        if cur is None:
            _title(widget, "steps")
            return Text("")
        tx = cur[1]
        n = len(tx.steps)
        step = n if self.step is None else self.step
        _title(widget, f"steps {step}/{n}")
        out = Text()
        height = self.view("#steps").content_size.height or 10
        # the current step near the top, and as many after it as fit
        lo = self._steps_lo = max(0, step - max(1, height // 2))
        for i in range(lo, min(n, lo + height)):
            style = "reverse" if i == step - 1 else ("dim" if i >= step else None)
            out.append(f"{i + 1:>3} {plain_step(tx.steps[i])}\n", style=style)
        return out

    def render_log(self) -> Text:
        """The machine's log up to the selected transition (its lines bold)."""
        m, cur = self.machine(), self.current()
        out = Text()
        if m is None or cur is None:
            return out
        height = self.view("#log").content_size.height or 20
        for entry, mine in log_lines(m, cur[0], self.log_level, height):
            out.append(entry.text + "\n", style="bold" if mine else "dim")
        return out

    def render_rain(self) -> Text:
        """One line per transition: a column per state, `█` active."""
        m = self.machine()
        out = Text()
        if m is None:
            return out
        shown = self.shown()
        height = self.view("#log").content_size.height or 20
        lo = self._rain_lo = max(0, self.cursor - height + 1)
        for idx in range(lo, min(len(shown), lo + height)):
            pos = shown[idx]
            tx = m.transitions[pos]
            called = set(tx.called)
            cells = Text()
            for s, t in zip(m.states, tx.clocks, strict=False):
                if s in called:
                    cells.append("█" if t & 1 else "▫", style="bold yellow")
                else:
                    cells.append("█" if t & 1 else "·", style="green" if t & 1 else "")
            line = Text(f"{self.number(pos):>6} ")
            line.append_text(cells)
            line.append(" x" if not tx.accepted else "")
            line.append("\n")
            if idx == self.cursor:
                line.stylize("reverse")
            out.append_text(line)
        return out

    def _timeline_width(self) -> int:
        return max(10, self.size.width - 24)

    def render_timelines(self) -> Text:
        """Where the selection is among the transitions and the steps."""
        width = self._timeline_width()
        shown = self.shown()
        cur = self.current()
        n = len(cur[1].steps) if cur else 0
        step = n if self.step is None else self.step
        out = Text(f"{f'tx {self.cursor + 1}/{len(shown)}':<{_TIMELINE_X}}")
        out.append_text(timeline(max(0, self.cursor), len(shown), width))
        out.append(f"\n{f'steps {step}/{n}':<{_TIMELINE_X}}")
        out.append_text(timeline(step, n + 1, width))
        return out

    # ----- actions

    def _move(self, delta: int) -> None:
        shown = self.shown()
        if not shown:
            return
        self.cursor = max(0, min(len(shown) - 1, self.cursor + delta))
        self.step = None
        if delta < 0 or self.cursor < len(shown) - 1:
            self.tail = False
        if self.playing and self.cursor == len(shown) - 1:
            self.playing = False
        self.refresh_views()

    def action_tx(self, delta: int) -> None:
        """Move the transition cursor by `delta`."""
        self._move(delta)

    def action_step(self, delta: int) -> None:
        """Step back / forward inside the selected transition."""
        cur = self.current()
        if cur is None:
            return
        n = len(cur[1].steps)
        step = n if self.step is None else self.step
        self.step = max(0, min(n, step + delta))
        self.tail = False
        self.refresh_views()

    def action_first(self) -> None:
        """Select the first transition."""
        self.tail = False
        self.cursor, self.step = 0, None
        self.refresh_views()

    def action_last(self) -> None:
        """Select the last transition."""
        self.cursor, self.step = len(self.shown()) - 1, None
        self.refresh_views()

    def action_tail(self) -> None:
        """Toggle following the newest transition."""
        self.tail = not self.tail
        self.playing = False
        self.refresh_views()

    def action_play(self) -> None:
        """Toggle playing (one transition per frame)."""
        self.playing = not self.playing
        self.tail = False
        self.refresh_views()

    def select_machine(self, machine_id: str) -> None:
        """Select a machine (its newest transition, tail mode)."""
        if machine_id != self.machine_id:
            self.machine_id = machine_id
            self.state_idx = -1
            self.step = None
            self.tail = True
        self.refresh_views()

    def select_line(self, line: int) -> None:
        """Select the machine on line `line` of the list (a mouse click)."""
        ms = self.machines()
        if 0 <= line < len(ms):
            self.select_machine(ms[line].id)

    def action_client(self, delta: int) -> None:
        """Select the previous/next machine of the list."""
        ms = [m.id for m in self.machines()]
        if not ms:
            return
        i = ms.index(self.machine_id) if self.machine_id in ms else -1
        self.select_machine(ms[max(0, min(len(ms) - 1, i + delta))])

    def click(self, view: str, x: int, y: int) -> None:
        """A mouse click at (`x`, `y`) of a view's content.

        A machine of the list, a state of the tree, a step, a rain line, or
        a place on a timeline (the bar from column 18) gets selected.
        """
        if view == "clients":
            self.select_line(y)
        elif view == "tree_body" and not self.matrix:
            self.select_state(y)
        elif view == "steps":
            cur = self.current()
            if cur is not None and self._steps_lo + y < len(cur[1].steps):
                self.step, self.tail = self._steps_lo + y + 1, False
                self.refresh_views()
        elif view == "log" and self.rain:
            if self._rain_lo + y < len(self.shown()):
                self.cursor, self.step, self.tail = self._rain_lo + y, None, False
                self.refresh_views()
        elif view == "timelines" and x >= _TIMELINE_X:
            width = self._timeline_width()
            frac = min(1.0, (x - _TIMELINE_X) / width)
            cur = self.current()
            if y == 0 and self.shown():
                self.cursor = min(len(self.shown()) - 1, int(frac * len(self.shown())))
                self.step, self.tail = None, False
            elif y == 1 and cur is not None:
                self.step = min(len(cur[1].steps), int(frac * (len(cur[1].steps) + 1)))
                self.tail = False
            self.refresh_views()

    def select_state(self, index: int) -> None:
        """Select the state at `index` of the tree (a mouse click)."""
        m = self.machine()
        if m is not None and 0 <= index < len(m.states):
            self.state_idx = index
            self.refresh_views()

    def action_state(self, delta: int) -> None:
        """Select the next/previous state of the tree."""
        m = self.machine()
        if m is None or not m.states:
            return
        self.state_idx = (self.state_idx + delta) % len(m.states)
        self.refresh_views()

    def action_state_jump(self, delta: int) -> None:
        """Jump to the previous/next transition touching the selected state.

        A transition touches a state when it calls it or moves its tick.
        """
        m = self.machine()
        if m is None or not (0 <= self.state_idx < len(m.states)):
            self.notify("select a state first (s / S)")
            return
        name, col = m.states[self.state_idx], self.state_idx
        shown = self.shown()
        i = self.cursor + delta
        while 0 <= i < len(shown):
            pos = shown[i]
            tx = m.transitions[pos]
            prev = _tick(m.transitions[pos - 1].clocks, col) if pos > 0 else 0
            if name in tx.called or _tick(tx.clocks, col) != prev:
                self.cursor, self.step, self.tail = i, None, False
                break
            i += delta
        self.refresh_views()

    def action_filter(self, name: str) -> None:
        """Toggle a filter (see `FILTERS`)."""
        before = self._selected()
        self.filters ^= {name}
        if before is not None and not self.tail:
            self.shown()
            self.cursor = self._find(before)
        self.refresh_views()

    def action_log_level(self) -> None:
        """Cycle the log level filter (0..5)."""
        self.log_level = (self.log_level + 1) % (int(LogLevel.EVERYTHING) + 1)
        self.refresh_views()

    def action_rain(self) -> None:
        """Toggle the rain view."""
        self.rain = not self.rain
        self.refresh_views()

    def action_matrix(self) -> None:
        """Cycle the matrix view: transitions, relations, off."""
        self.matrix = {"": "tx", "tx": "relations", "relations": ""}[self.matrix]
        self.refresh_views()

    def action_help(self) -> None:
        """Show the keys."""
        self.push_screen(HelpScreen())

    def _ask(self, mode: str, placeholder: str) -> None:
        inp = self._address()
        self._modal = mode
        inp.placeholder = placeholder
        inp.value = self.search if mode == "search" else self.url()
        inp.add_class("shown")
        inp.can_focus = True
        inp.focus()

    def action_search(self) -> None:
        """Open the machine search."""
        self._ask("search", "search machines")

    def action_goto(self) -> None:
        """Open the address bar (mach://ID/TX/STEP)."""
        self._ask("goto", "mach://ID/TX/STEP")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Apply the search or go to the address."""
        event.input.remove_class("shown")
        event.input.can_focus = False
        self.set_focus(None)
        if self._modal == "goto":
            try:
                self.goto(event.value)
            except ValueError as exc:
                self.notify(str(exc), severity="error")
        else:
            self.search = event.value
            ms = self.machines()
            if ms and self.machine_id not in {m.id for m in ms}:
                self.select_machine(ms[0].id)
        self.refresh_views()

    def on_key(self, event: events.Key) -> None:
        """Esc closes the address bar."""
        inp = self._address()
        if event.key == "escape" and inp.has_class("shown"):
            inp.remove_class("shown")
            inp.can_focus = False
            self.set_focus(None)
            if self._modal == "search":
                self.search = ""
            self.refresh_views()

    def goto(self, url: str) -> None:
        """Select the position `mach://ID/TX/STEP` names (ValueError if none).

        TX is a transition id or a 1-based number; STEP the steps applied.
        """
        mid, tx, step = parse_url(url)
        m = self.session.machines.get(mid)
        if m is None:
            raise ValueError(f"no machine {mid!r} in the session")
        self.machine_id, self.state_idx, self.step = mid, -1, None
        if not tx:
            self.tail = True
            return
        pos = next((i for i, t in enumerate(m.transitions) if t.id == tx), None)
        if pos is None and tx.isdigit():
            pos = int(tx) - 1 - m.dropped_cap
        if pos is None or not (0 <= pos < len(m.transitions)):
            raise ValueError(f"no transition {tx!r} of {mid!r}")
        self.tail = False
        shown = self.shown()
        i = bisect.bisect_left(shown, pos)
        if i == len(shown) or shown[i] != pos:
            # the filters hide it: show every transition
            self.filters &= {"disconnected"}
            shown = self.shown()
            i = bisect.bisect_left(shown, pos)
        self.cursor = i
        self.step = step

    def action_export(self) -> None:
        """Write the session to `export_path` (read it back with -i)."""
        try:
            write_session(self.export_path, self.session)
        except OSError as exc:
            self.notify(f"export failed: {exc}", severity="error")
            return
        self.notify(f"exported to {self.export_path}")
