"""Telemetry: OpenTelemetry traces, Prometheus metrics, structured logging.

Everything attaches to machines through the `am.Tracer` API. Structured
logging needs nothing beyond asyncmachine; the OpenTelemetry names need the
`otel` extra (`opentelemetry-api`) and the Prometheus names the
`prometheus` extra (`prometheus-client`). Those are imported on first use,
so `import asyncmachine.telemetry` works without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._env import bind_env as bind_env
from ._logging import AM_FIELDS as AM_FIELDS
from ._logging import DEFAULT_LEVELS as DEFAULT_LEVELS
from ._logging import JsonFormatter as JsonFormatter
from ._logging import StructuredLogger as StructuredLogger
from ._logging import bind_logging as bind_logging

if TYPE_CHECKING:
    from ._otel import OtelOptions as OtelOptions
    from ._otel import OtelTracer as OtelTracer
    from ._otel import StateFilter as StateFilter
    from ._otel import bind_otel as bind_otel
    from ._otel import bind_otel_env as bind_otel_env
    from ._otel import otel_env_filter as otel_env_filter
    from ._prometheus import DEFAULT_BUCKETS as DEFAULT_BUCKETS
    from ._prometheus import METRIC_NAMES as METRIC_NAMES
    from ._prometheus import MetricsServer as MetricsServer
    from ._prometheus import PrometheusMetrics as PrometheusMetrics
    from ._prometheus import bind_prometheus as bind_prometheus
    from ._prometheus import bind_prometheus_env as bind_prometheus_env

__all__ = [
    "AM_FIELDS",
    "DEFAULT_BUCKETS",
    "DEFAULT_LEVELS",
    "METRIC_NAMES",
    "JsonFormatter",
    "MetricsServer",
    "OtelOptions",
    "OtelTracer",
    "PrometheusMetrics",
    "StateFilter",
    "StructuredLogger",
    "bind_env",
    "bind_logging",
    "bind_otel",
    "bind_otel_env",
    "bind_prometheus",
    "bind_prometheus_env",
    "otel_env_filter",
]

# name -> (private module, the extra that brings its dependency)
_LAZY = {
    "OtelOptions": ("_otel", "otel"),
    "OtelTracer": ("_otel", "otel"),
    "StateFilter": ("_otel", "otel"),
    "bind_otel": ("_otel", "otel"),
    "bind_otel_env": ("_otel", "otel"),
    "otel_env_filter": ("_otel", "otel"),
    "DEFAULT_BUCKETS": ("_prometheus", "prometheus"),
    "METRIC_NAMES": ("_prometheus", "prometheus"),
    "MetricsServer": ("_prometheus", "prometheus"),
    "PrometheusMetrics": ("_prometheus", "prometheus"),
    "bind_prometheus": ("_prometheus", "prometheus"),
    "bind_prometheus_env": ("_prometheus", "prometheus"),
}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, extra = where
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except ImportError as exc:
        raise ImportError(
            f"asyncmachine.telemetry.{name} needs the {extra!r} extra: "
            f"pip install 'asyncmachine[{extra}]' ({exc})"
        ) from exc
    value = getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# show the public path in reprs and docs
for _obj in (JsonFormatter, StructuredLogger):
    _obj.__module__ = __name__
del _obj
