"""The telemetry page's examples run and print what they say."""

from __future__ import annotations

import logging

import pytest

from test_docs import run_blocks


def test_telemetry_page(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AM_OTEL_TRACE", "AM_PROM_ADDR", "AM_LOG"):
        monkeypatch.delenv(name, raising=False)
    log = logging.getLogger("my-app.machines")
    try:
        run_blocks("docs/telemetry.md")
    finally:
        for handler in list(log.handlers):
            log.removeHandler(handler)
