"""The debugger's sender settings, and the debugger against a real collector
process (docs/debugger.md)."""

from __future__ import annotations

import pytest

from asyncmachine.debugger import Sender


def test_sender_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="max_queue"):
        Sender("127.0.0.1:1", max_queue=0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_backoff"):
            Sender("127.0.0.1:1", max_backoff=bad)
    snd = Sender("127.0.0.1:1", max_backoff=0.5)
    try:
        with pytest.raises(ValueError, match="max_backoff"):
            snd.max_backoff = 0
        snd.max_backoff = 0.25
        assert snd.max_backoff == 0.25
    finally:
        snd.close()
