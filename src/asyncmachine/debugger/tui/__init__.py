"""am-dbg's terminal UI on Textual (needs the `debugger` extra).

It shows the debugger's `Session` (`asyncmachine.debugger`): imported from a
session file, or live from an in-process `Collector`. See docs/am-dbg.md.
"""

from ._app import DebuggerApp, HelpScreen
from ._main import main, make_app, parse_args, parser

__all__ = [
    "DebuggerApp",
    "HelpScreen",
    "main",
    "make_app",
    "parse_args",
    "parser",
]
