"""The am-dbg Textual app: client list, states tree, transition bar, log."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ._data import MachineRecord, Session, TxRecord

__all__ = ["DebuggerApp"]

HELP = """\
am-dbg keys
  ?               this help (esc closes)
  up/down, j/k    select a machine
  left/right      previous / next transition
  alt+left/right  jump 100 back / forward (also [ and ])
  alt+h/alt+l     previous / next transition touching the selected state
                  (also { and })
  s / S           select the next / previous state of the tree
  home / end      first / last transition
  space           play / pause
  v, alt+v        tail mode (follow the newest transition)
  /               search machines (enter applies, esc clears)
  a c e x         filters: auto, canceled, empty, checks
  r               rain view (one line per transition)
  alt+s, ctrl+s   export the session (am-dbg-session.json)
  q, ctrl+q       quit
"""


class HelpScreen(ModalScreen[None]):
    """The key reference, shown on `?`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "app.pop_screen", "close")
    ]

    def compose(self) -> ComposeResult:
        """The help text."""
        yield Static(HELP, id="help")


class DebuggerApp(App[None]):
    """The terminal debugger over a `Session` (live or imported)."""

    CSS = """
    #clients { width: 30; border: round $accent; }
    #tree { width: 1fr; border: round $accent; }
    #log { width: 1fr; border: round $accent; }
    #bar { height: 3; border: round $accent; }
    #search { display: none; height: 3; }
    #search.shown { display: block; }
    #help { border: round $accent; width: 78; height: auto; background: $panel; }
    HelpScreen { align: center middle; }
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
        Binding("s", "state(1)", show=False),
        Binding("S", "state(-1)", show=False),
        Binding("home", "first", show=False),
        Binding("end", "last", show=False),
        Binding("space", "play", "play/pause"),
        Binding("v,alt+v", "tail", "tail"),
        Binding("slash", "search", "search"),
        Binding("a", "filter('auto')", show=False),
        Binding("c", "filter('canceled')", show=False),
        Binding("e", "filter('empty')", show=False),
        Binding("x", "filter('checks')", show=False),
        Binding("r", "rain", "rain"),
        Binding("alt+s,ctrl+s", "export", "export"),
        Binding("q,ctrl+q", "quit", "quit"),
    ]

    def __init__(
        self,
        session: Session,
        *,
        fps: float = 10.0,
        export_path: str | Path = "am-dbg-session.json",
        select_machine: str = "",
        select_transition: int = -1,
    ) -> None:
        super().__init__()
        self.session: Session = session
        """The data shown."""
        self.fps: float = fps
        """Redraws per second at most; never one per message."""
        self.export_path: Path = Path(export_path)
        """Where `export` writes the session."""
        self.machine_id: str = select_machine
        """The selected machine's id."""
        self.cursor: int = select_transition
        """Index of the selected transition in the filtered list (-1: none)."""
        self.state_idx: int = -1
        """The selected state of the tree (-1: none)."""
        self.filters: set[str] = set()
        """Active transition filters: auto, canceled, empty, checks."""
        self.search: str = ""
        """Machine-list search text."""
        self.tail: bool = select_transition < 0
        """Follow the newest transition."""
        self.playing: bool = False
        """Advance one transition per frame."""
        self.rain: bool = False
        """Show the rain view instead of the log."""
        self._seen = -1
        self._txs_key: tuple[int, str, frozenset[str]] | None = None
        self._txs: list[tuple[int, TxRecord]] = []

    # ----- layout

    def compose(self) -> ComposeResult:
        """Address/transition bar, client list, tree, log."""
        search = Input(placeholder="search machines", id="search")
        search.can_focus = False
        yield search
        yield Static(id="bar")
        with Horizontal():
            yield Static(id="clients")
            with Vertical(id="tree"):
                yield Static(id="tree_body")
            yield Static(id="log")

    def on_mount(self) -> None:
        """Start the fixed-rate redraw."""
        self.query_one("#clients").border_title = "machines"
        self.query_one("#tree").border_title = "states"
        self.query_one("#log").border_title = "transitions"
        if not self.machine_id and self.session.machines:
            self.machine_id = next(iter(self.session.machines))
        self.set_interval(1 / self.fps, self.tick)
        self.refresh_views()

    def tick(self) -> None:
        """One frame: play, follow the tail, redraw only on changes."""
        if self.playing:
            self._move(1)
        if self.session.changes != self._seen:
            self.refresh_views()

    # ----- data helpers

    def machines(self) -> list[MachineRecord]:
        """Machines shown in the list: search-filtered, parents before children."""
        ms = [
            m
            for m in self.session.machines.values()
            if self.search.lower() in m.id.lower()
        ]
        ids = {m.id for m in ms}
        out: list[MachineRecord] = []

        def walk(parent: str) -> None:
            for m in ms:
                if (m.parent == parent or (not parent and m.parent not in ids)) and (
                    m not in out
                ):
                    out.append(m)
                    walk(m.id)

        walk("")
        return out

    def machine(self) -> MachineRecord | None:
        """The selected machine."""
        return self.session.machines.get(self.machine_id)

    def txs(self) -> list[tuple[int, TxRecord]]:
        """(number, record) of the selected machine's transitions after filters."""
        m = self.machine()
        if m is None:
            return []
        key = (self.session.changes, m.id, frozenset(self.filters))
        if self._txs_key == key:
            return self._txs
        out = []
        prev: dict[str, int] = {}
        for i, t in enumerate(m.txs, 1):
            empty = t.clocks == prev
            if t.result:
                prev = t.clocks
            if "auto" in self.filters and "auto" in t.flags:
                continue
            if "canceled" in self.filters and not t.result:
                continue
            if "checks" in self.filters and "check" in t.flags:
                continue
            if "empty" in self.filters and empty:
                continue
            out.append((i, t))
        self._txs_key, self._txs = key, out
        return out

    def current(self) -> tuple[int, TxRecord] | None:
        """The selected transition, or None before the first one."""
        txs = self.txs()
        if not txs or self.cursor < 0:
            return None
        return txs[min(self.cursor, len(txs) - 1)]

    # ----- rendering

    def refresh_views(self) -> None:
        """Redraw every view from the session."""
        self._seen = self.session.changes
        txs = self.txs()
        if self.tail:
            self.cursor = len(txs) - 1
        self.cursor = min(self.cursor, len(txs) - 1)
        self.query_one("#clients", Static).update(self.render_clients())
        self.query_one("#tree_body", Static).update(self.render_tree())
        self.query_one("#bar", Static).update(self.render_bar(txs))
        self.query_one("#log", Static).update(
            self.render_rain(txs) if self.rain else self.render_log(txs)
        )

    def render_clients(self) -> Text:
        """One line per machine: nesting, error and disconnect marks, counts."""
        out = Text()
        depth: dict[str, int] = {}
        for m in self.machines():
            d = depth.get(m.parent, -1) + 1 if m.parent else 0
            depth[m.id] = d
            style = "bold underline" if m.id == self.machine_id else ""
            if m.errors:
                style += " red"
            elif not m.connected:
                style += " grey50"
            mark = "!" if m.errors else " "
            out.append(f"{mark}{'  ' * d}{m.id} |{len(m.txs)}\n", style=style.strip())
        return out

    def render_tree(self) -> Text:
        """States with ticks, active marks, relations and called marks."""
        m = self.machine()
        out = Text()
        if m is None:
            return Text("no machine selected")
        cur = self.current()
        clocks = cur[1].clocks if cur else {}
        called = set(cur[1].called) if cur else set()
        for i, name in enumerate(m.states):
            tick = clocks.get(name, 0)
            active = tick % 2 == 1
            sel = ">" if i == self.state_idx else " "
            mark = "●" if active else "○"
            style = "bold green" if active else ""
            if name in called:
                style += " underline"
            if name == "Exception" and active:
                style = "bold red"
            out.append(f"{sel}{mark} {name} ({tick})", style=style.strip() or None)
            rels = m.relations.get(name, {})
            if rels:
                out.append(
                    "  " + " ".join(f"{k}:{','.join(v)}" for k, v in rels.items()),
                    style="dim",
                )
            out.append("\n")
        return out

    def render_bar(self, txs: list[tuple[int, TxRecord]]) -> Text:
        """Address, transition number, machine time, type, called, result, time."""
        cur = self.current()
        m = self.machine()
        mode = "play" if self.playing else ("tail" if self.tail else "pause")
        filt = ",".join(sorted(self.filters)) or "-"
        if m is None or cur is None:
            return Text(f"mach://{self.machine_id}  no transition  [{mode}]")
        n, t = cur
        mtime = sum(t.clocks.values())
        when = datetime.datetime.fromtimestamp(t.time, datetime.UTC)
        res = "ok" if t.result else "canceled"
        return Text(
            f"mach://{m.id}/{t.id}  tx {n}/{len(m.txs)}  t{mtime}  {t.type}"
            f" [{' '.join(t.called)}] {res}  {when:%H:%M:%S}  [{mode}] "
            f"filters:{filt}"
        )

    def render_log(self, txs: list[tuple[int, TxRecord]]) -> Text:
        """The transition log around the cursor, the selected one highlighted."""
        out = Text()
        lo = max(0, self.cursor - 15)
        for idx in range(lo, min(len(txs), lo + 40)):
            n, t = txs[idx]
            res = "" if t.result else " canceled"
            flags = "".join(f" :{f}" for f in t.flags)
            line = f"{n:>5} {t.type} {' '.join(t.called)}{flags}{res}\n"
            style = "reverse" if idx == self.cursor else ("red" if res else None)
            out.append(line, style=style)
        return out

    def render_rain(self, txs: list[tuple[int, TxRecord]]) -> Text:
        """One line per transition: a column per state, `█` active, `x` canceled."""
        m = self.machine()
        out = Text()
        if m is None:
            return out
        lo = max(0, self.cursor - 15)
        for idx in range(lo, min(len(txs), lo + 40)):
            n, t = txs[idx]
            cells = "".join("█" if t.clocks.get(s, 0) % 2 else "·" for s in m.states)
            line = f"{n:>5} {cells} {'' if t.result else 'x'}\n"
            out.append(line, style="reverse" if idx == self.cursor else None)
        return out

    # ----- actions

    def _move(self, delta: int) -> None:
        txs = self.txs()
        if not txs:
            return
        self.cursor = max(0, min(len(txs) - 1, self.cursor + delta))
        if delta < 0 or self.cursor < len(txs) - 1:
            self.tail = False
        if self.playing and self.cursor == len(txs) - 1:
            self.playing = False
        self.refresh_views()

    def action_tx(self, delta: int) -> None:
        """Move the transition cursor by `delta`."""
        self._move(delta)

    def action_first(self) -> None:
        """Select the first transition."""
        self.tail = False
        self.cursor = 0
        self.refresh_views()

    def action_last(self) -> None:
        """Select the last transition."""
        self.cursor = len(self.txs()) - 1
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

    def action_client(self, delta: int) -> None:
        """Select the previous/next machine of the list."""
        ms = [m.id for m in self.machines()]
        if not ms:
            return
        i = ms.index(self.machine_id) if self.machine_id in ms else -1
        self.machine_id = ms[max(0, min(len(ms) - 1, i + delta))]
        self.state_idx = -1
        self.tail = True
        self.refresh_views()

    def action_state(self, delta: int) -> None:
        """Select the next/previous state of the tree."""
        m = self.machine()
        if m is None or not m.states:
            return
        self.state_idx = (self.state_idx + delta) % len(m.states)
        self.refresh_views()

    def action_state_jump(self, delta: int) -> None:
        """Jump to the next/previous transition whose called states hold the selected state."""
        m = self.machine()
        if m is None or self.state_idx < 0:
            return
        name = m.states[self.state_idx]
        txs = self.txs()
        i = self.cursor + delta
        while 0 <= i < len(txs):
            if name in txs[i][1].called:
                self.cursor = i
                self.tail = False
                break
            i += delta
        self.refresh_views()

    def action_filter(self, name: str) -> None:
        """Toggle a transition filter."""
        self.filters ^= {name}
        self.refresh_views()

    def action_rain(self) -> None:
        """Toggle the rain view."""
        self.rain = not self.rain
        self.refresh_views()

    def action_help(self) -> None:
        """Show the keys."""
        self.push_screen(HelpScreen())

    def action_search(self) -> None:
        """Open the machine search."""
        inp = self.query_one("#search", Input)
        inp.add_class("shown")
        inp.can_focus = True
        inp.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Apply the search; select the first match."""
        self.search = event.value
        event.input.remove_class("shown")
        event.input.can_focus = False
        self.set_focus(None)
        ms = self.machines()
        if ms and self.machine_id not in {m.id for m in ms}:
            self.machine_id = ms[0].id
        self.refresh_views()

    def action_export(self) -> None:
        """Write the session to `export_path`."""
        self.session.save(self.export_path)
        self.notify(f"exported to {self.export_path}")
