"""SVG screenshots of am-dbg's main views, checked in under docs/img/.

Regenerate with `UPDATE_SNAPSHOTS=1 pytest tests/test_dbg_tui_snapshots.py`.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

pytest.importorskip("textual")

import textual

from asyncmachine.debugger.tui import DebuggerApp
from asyncmachine.debugger.tui._demo import demo_session

# the Textual release the SVGs were made with (the dev extra pins it): another
# one draws other bytes
TEXTUAL = "8.2.8"
IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
VIEWS: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {
    # the tree with the marks of 3 of the 4 steps of "add Processing"
    "am-dbg-tree-log": ((120, 32), ("home", "right", "right", "right", "comma")),
    "am-dbg-rain": ((120, 32), ("down", "down", "r", "end")),
    "am-dbg-matrix": ((120, 32), ("down", "down", "m", "end")),
    "am-dbg-narrow": ((80, 40), ("home", "right")),
}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_snapshot(name: str) -> None:
    if textual.__version__ != TEXTUAL and not os.environ.get("UPDATE_SNAPSHOTS"):
        pytest.skip(
            f"snapshots made with Textual {TEXTUAL}, this is {textual.__version__}"
            " (regenerate: UPDATE_SNAPSHOTS=1, then update TEXTUAL)"
        )

    async def shot() -> str:
        app = DebuggerApp(demo_session(), select_machine="worker")
        size, keys = VIEWS[name]
        async with app.run_test(size=size) as pilot:
            await pilot.press(*keys)
            await pilot.pause()
            return app.export_screenshot(title="am-dbg")

    svg = asyncio.run(shot())
    path = IMG / f"{name}.svg"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(svg, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == svg, f"{path} is stale"
