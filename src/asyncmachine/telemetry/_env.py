"""Telemetry switched on by environment variables, for zero-code setups."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ._common import env_flag

if TYPE_CHECKING:
    from .._runtime import Machine
    from .._tracer import Tracer

__all__ = ["bind_env"]


def bind_env(mach: Machine) -> list[Tracer]:
    """Bind the telemetry the environment asks for; return what was bound.

    `AM_OTEL_TRACE=1` binds OpenTelemetry tracing (`bind_otel_env`) and
    `AM_PROM_ADDR=host:port` Prometheus metrics on an HTTP endpoint
    (`bind_prometheus_env`). With neither set nothing is bound, so the
    machine runs exactly as without telemetry. The backends are imported
    only when asked for, so their extras are needed only then.
    """
    found: list[Tracer | None] = []
    if env_flag("AM_OTEL_TRACE"):
        from ._otel import bind_otel_env

        found.append(bind_otel_env(mach))
    if os.environ.get("AM_PROM_ADDR", "").strip():
        from ._prometheus import bind_prometheus_env

        found.append(bind_prometheus_env(mach))
    return [t for t in found if t is not None]
