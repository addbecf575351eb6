"""Prometheus metrics of machines: transitions, queue, handlers, states."""

from __future__ import annotations

import os
import socket
import socketserver
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from .._tracer import Tracer
from .._types import EXCEPTION, MutationType, Result
from ._common import tx_result

if TYPE_CHECKING:
    from .._runtime import Machine
    from .._transition import Mutation, Transition

__all__ = [
    "DEFAULT_BUCKETS",
    "METRIC_NAMES",
    "MetricsServer",
    "PrometheusMetrics",
    "bind_prometheus",
    "bind_prometheus_env",
]

DEFAULT_BUCKETS: Final = (
    0.00001,
    0.00005,
    0.0001,
    0.0005,
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
)
"""Histogram buckets (seconds) of transition and handler durations."""

METRIC_NAMES: Final = (
    "machines",
    "states",
    "active_states",
    "tick_sum",
    "ticks_total",
    "transitions_total",
    "exceptions_total",
    "mutations_queued_total",
    "queue_length",
    "transition_queue_length",
    "transition_duration_seconds",
    "handler_duration_seconds",
)
"""The metrics a `PrometheusMetrics` exports, without the namespace prefix
(counters with their `_total` suffix)."""

ENV_ADDR: Final = "AM_PROM_ADDR"
ENV_MACHINE_LABEL: Final = "AM_PROM_MACHINE_LABEL"
DEFAULT_ENV_ADDR: Final = "127.0.0.1:9464"

_RESULTS: Final = (Result.EXECUTED, Result.CANCELED)


class _Hist:
    """A histogram kept as plain numbers: per-bucket counts and a sum."""

    __slots__ = ("counts", "sum")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.sum = 0.0

    def add(self, other: _Hist) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum += other.sum


class _Rec:
    """Counters of one machine, or of all disposed machines together."""

    __slots__ = (
        "exceptions",
        "handlers",
        "machine",
        "queue_count",
        "queue_sum",
        "queued",
        "t_handler",
        "t_tx",
        "tick_sum",
        "ticks",
        "transitions",
        "tx_hist",
    )

    def __init__(self, size: int, machine: Machine | None) -> None:
        self.machine: weakref.ref[Machine] | None = (
            weakref.ref(machine) if machine is not None else None
        )
        self.transitions: dict[tuple[MutationType, Result], int] = {}
        self.exceptions = 0
        self.queued = 0
        self.queue_sum = 0
        self.queue_count = 0
        self.ticks = 0
        self.tick_sum = sum(machine.time()) if machine is not None else 0
        self.tx_hist = _Hist(size)
        self.handlers: dict[str, _Hist] = {}
        self.t_tx = 0.0
        self.t_handler = 0.0

    def add(self, other: _Rec) -> None:
        # list(...) copies atomically: a machine thread may add keys meanwhile
        for key, n in list(other.transitions.items()):
            self.transitions[key] = self.transitions.get(key, 0) + n
        self.exceptions += other.exceptions
        self.queued += other.queued
        self.queue_sum += other.queue_sum
        self.queue_count += other.queue_count
        self.ticks += other.ticks
        self.tx_hist.add(other.tx_hist)
        for name, h in list(other.handlers.items()):
            mine = self.handlers.get(name)
            if mine is None:
                mine = self.handlers[name] = _Hist(len(h.counts))
            mine.add(h)


class _Families:
    """The metric families of one scrape, empty until filled."""

    def __init__(self, ns: str, machine_label: bool, handler_label: bool) -> None:
        m = ["machine"] if machine_label else []
        h = [*m, "handler"] if handler_label else m
        self.machines = GaugeMetricFamily(
            f"{ns}_machines", "Machines bound and not disposed", labels=m
        )
        self.states = GaugeMetricFamily(
            f"{ns}_states", "States in the machines' schemas", labels=m
        )
        self.active = GaugeMetricFamily(
            f"{ns}_active_states", "Active states", labels=m
        )
        self.tick_sum = GaugeMetricFamily(
            f"{ns}_tick_sum", "Sum of all state ticks (machine time)", labels=m
        )
        self.ticks = CounterMetricFamily(
            f"{ns}_ticks", "State ticks added by transitions", labels=m
        )
        self.transitions = CounterMetricFamily(
            f"{ns}_transitions",
            "Transitions by mutation type and result",
            labels=[*m, "mutation", "result"],
        )
        self.exceptions = CounterMetricFamily(
            f"{ns}_exceptions", "Transitions that activated Exception", labels=m
        )
        self.queued = CounterMetricFamily(
            f"{ns}_mutations_queued", "Mutations added to the queue", labels=m
        )
        self.queue_length = GaugeMetricFamily(
            f"{ns}_queue_length", "Mutations waiting now", labels=m
        )
        self.tx_queue_length = SummaryMetricFamily(
            f"{ns}_transition_queue_length",
            "Queue length at the end of each transition",
            labels=m,
        )
        self.tx_duration = HistogramMetricFamily(
            f"{ns}_transition_duration_seconds",
            "Transition duration, handlers included",
            labels=m,
        )
        self.handler_duration = HistogramMetricFamily(
            f"{ns}_handler_duration_seconds", "Handler duration", labels=h
        )

    def all(self) -> list[Metric]:
        return [
            self.machines,
            self.states,
            self.active,
            self.tick_sum,
            self.ticks,
            self.transitions,
            self.exceptions,
            self.queued,
            self.queue_length,
            self.tx_queue_length,
            self.tx_duration,
            self.handler_duration,
        ]


@final
class PrometheusMetrics(Tracer):
    """An `am.Tracer` that exports machine metrics to Prometheus.

    It is also a Prometheus collector, registered in `registry` (default:
    the global one; None registers nothing). Per transition it counts
    results by mutation type, errors, queue length and durations; handler
    durations go to a histogram; active states, tick sums and queue lengths
    are read from live machines at scrape time. The hot path only adds to
    plain numbers.

    Labels stay bounded: by default every machine bound to this object adds
    to the same series. `machine_label=True` adds a `machine` label (the
    machine id), and `handler_label=True` a `handler` label on the handler
    histogram; with ids, the series of a disposed machine go away with it.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = REGISTRY,
        *,
        namespace: str = "asyncmachine",
        machine_label: bool = False,
        handler_label: bool = False,
        inherit: bool = True,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Collect metrics under `namespace`_* and register in `registry`.

        `inherit` (default) also binds machines created with a bound
        parent. `buckets` are the upper bounds (seconds) of the duration
        histograms; `clock` is the time source of durations.
        """
        bounds = tuple(float(b) for b in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ValueError(f"buckets must be increasing and unique, got {buckets!r}")
        if not namespace or not namespace.replace("_", "").isalnum():
            raise ValueError(
                f"namespace must be a metric name prefix, got {namespace!r}"
            )
        self.namespace = namespace
        self.machine_label = machine_label
        self.handler_label = handler_label
        self._bounds = bounds
        self._size = len(bounds) + 1
        self._inherit = inherit
        self._clock = clock
        self._recs: dict[str, _Rec] = {}
        self._retired = _Rec(self._size, None)
        self._lock = threading.Lock()
        self.registry = registry
        """The registry this collector is registered in, if any."""
        if registry is not None:
            registry.register(self)

    def unbind(self, machine: Machine) -> None:
        """Detach from `machine` and stop counting for it."""
        machine.detach_tracer(self)
        self.machine_dispose(machine.id)

    def unregister(self) -> None:
        """Remove the collector from its registry (machines stay bound)."""
        if self.registry is not None:
            self.registry.unregister(self)
            self.registry = None

    # ------------------------------------------------------------ hooks

    def inheritable(self) -> bool:
        """Whether machines created with a bound parent are bound too."""
        return self._inherit

    def machine_init(self, machine: Machine) -> None:
        """Start counting for `machine`."""
        rec = _Rec(self._size, machine)
        with self._lock:
            old = self._recs.pop(machine.id, None)
            if old is not None and not self.machine_label:
                self._retired.add(old)
            self._recs[machine.id] = rec

    def machine_dispose(self, machine_id: str) -> None:
        """Stop counting; without machine labels keep the machine's counts."""
        with self._lock:
            rec = self._recs.pop(machine_id, None)
            if rec is not None and not self.machine_label:
                self._retired.add(rec)

    def mutation_queued(self, machine: Machine, mutation: Mutation) -> None:
        """Count a queued mutation."""
        rec = self._recs.get(machine.id)
        if rec is not None:
            rec.queued += 1

    def transition_init(self, transition: Transition) -> None:
        """Note when the transition started."""
        rec = self._recs.get(transition.machine.id)
        if rec is not None:
            rec.t_tx = self._clock()

    def transition_end(self, transition: Transition) -> None:
        """Count the transition, its duration, queue length and ticks."""
        mach = transition.machine
        rec = self._recs.get(mach.id)
        if rec is None:
            return
        mut = transition.mutation
        if mut.is_check:
            return
        took = self._clock() - rec.t_tx
        h = rec.tx_hist
        h.counts[bisect_left(self._bounds, took)] += 1
        h.sum += took
        key = (mut.type, tx_result(transition))
        counts = rec.transitions
        counts[key] = counts.get(key, 0) + 1
        rec.queue_sum += mach.queue_len
        rec.queue_count += 1
        if transition.is_accepted:
            if mut.type is not MutationType.REMOVE and EXCEPTION in mut.called:
                rec.exceptions += 1
            now = sum(mach.time())
            rec.ticks += now - rec.tick_sum
            rec.tick_sum = now

    def handler_start(
        self, transition: Transition, binding_id: str, handler: str
    ) -> None:
        """Note when the handler started."""
        rec = self._recs.get(transition.machine.id)
        if rec is not None:
            rec.t_handler = self._clock()

    def handler_end(
        self, transition: Transition, binding_id: str, handler: str
    ) -> None:
        """Add the handler's duration to its histogram."""
        rec = self._recs.get(transition.machine.id)
        if rec is None:
            return
        took = self._clock() - rec.t_handler
        name = handler if self.handler_label else ""
        h = rec.handlers.get(name)
        if h is None:
            h = rec.handlers[name] = _Hist(self._size)
        h.counts[bisect_left(self._bounds, took)] += 1
        h.sum += took

    # -------------------------------------------------------- collector

    def describe(self) -> Iterable[Metric]:
        """The metric families, without samples (for the registry)."""
        return _Families(self.namespace, self.machine_label, self.handler_label).all()

    def collect(self) -> Iterable[Metric]:
        """The current metrics (called by the registry on every scrape)."""
        with self._lock:
            recs = list(self._recs.items())
            if self.machine_label:
                groups = [(mid, [rec]) for mid, rec in recs]
            else:
                groups = [("", [self._retired, *(r for _, r in recs)])]
            merged = []
            for mid, parts in groups:
                total = _Rec(self._size, None)
                for part in parts:
                    total.add(part)
                live = [
                    m for p in parts if p.machine and (m := p.machine()) is not None
                ]
                merged.append((mid, total, [m for m in live if not m.disposed]))
        f = _Families(self.namespace, self.machine_label, self.handler_label)
        for mid, rec, live in merged:
            label = [mid] if self.machine_label else []
            f.machines.add_metric(label, len(live))
            f.states.add_metric(label, sum(len(m.state_names) for m in live))
            f.active.add_metric(label, sum(len(m.active_states) for m in live))
            f.tick_sum.add_metric(label, sum(sum(m.time()) for m in live))
            f.queue_length.add_metric(label, sum(m.queue_len for m in live))
            f.ticks.add_metric(label, rec.ticks)
            f.exceptions.add_metric(label, rec.exceptions)
            f.queued.add_metric(label, rec.queued)
            for mtype in MutationType:
                for result in _RESULTS:
                    n = rec.transitions.get((mtype, result), 0)
                    f.transitions.add_metric([*label, str(mtype), str(result)], n)
            f.tx_queue_length.add_metric(label, rec.queue_count, rec.queue_sum)
            f.tx_duration.add_metric(label, self._buckets(rec.tx_hist), rec.tx_hist.sum)
            for name, h in sorted(rec.handlers.items()):
                h_label = [*label, name] if self.handler_label else label
                f.handler_duration.add_metric(h_label, self._buckets(h), h.sum)
        return f.all()

    def _buckets(self, h: _Hist) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        acc = 0
        for bound, n in zip(self._bounds, h.counts, strict=False):
            acc += n
            out.append((repr(bound), acc))
        out.append(("+Inf", acc + h.counts[-1]))
        return out

    def __repr__(self) -> str:
        return f"<PrometheusMetrics {self.namespace} machines={len(self._recs)}>"


def bind_prometheus(
    mach: Machine,
    registry: CollectorRegistry | None = REGISTRY,
    *,
    machine_label: bool = False,
    handler_label: bool = False,
) -> PrometheusMetrics:
    """Export metrics of `mach` (and its submachines) to Prometheus.

    A new `PrometheusMetrics` is registered in `registry`; to export several
    top-level machines through one collector, make it once and bind it to
    each (`mach.bind_tracer(metrics)`).
    """
    metrics = PrometheusMetrics(
        registry, machine_label=machine_label, handler_label=handler_label
    )
    mach.bind_tracer(metrics)
    return metrics


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep scrapes out of stderr."""


@final
class MetricsServer:
    """An HTTP endpoint serving a registry's metrics at `/metrics`.

    Runs in a daemon thread; `close()` (or leaving `with`) stops it. Port 0
    picks a free port: read it from `port`.
    """

    def __init__(
        self,
        port: int = 0,
        addr: str = "127.0.0.1",
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        """Start serving `registry` on `addr`:`port`."""
        server_class = _Server6 if ":" in addr else _Server
        self._server = make_server(
            addr,
            port,
            make_wsgi_app(registry),
            server_class=server_class,
            handler_class=_QuietHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"asyncmachine-metrics:{self.port}",
            daemon=True,
        )
        self._thread.start()
        self.addr = addr
        """The address it listens on."""

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """The URL of the metrics page."""
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and wait for the server thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MetricsServer {self.url}>"


class _Env:
    metrics: PrometheusMetrics | None = None
    server: MetricsServer | None = None


def _parse_addr(raw: str) -> tuple[str, int]:
    value = DEFAULT_ENV_ADDR if raw.strip() == "1" else raw.strip()
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit():
        raise ValueError(f"{ENV_ADDR} must be 'host:port' or '1', got {raw!r}")
    return host or "127.0.0.1", int(port)


def bind_prometheus_env(mach: Machine) -> PrometheusMetrics | None:
    """Export `mach`'s metrics when `AM_PROM_ADDR` is set; else do nothing.

    `AM_PROM_ADDR` is `host:port` (`1` means `127.0.0.1:9464`). The first
    call starts one HTTP endpoint there serving the global registry, and one
    `PrometheusMetrics` that every machine bound this way shares;
    `AM_PROM_MACHINE_LABEL=1` gives it machine id labels. A machine that
    has it already (inherited from its parent) keeps it.
    """
    raw = os.environ.get(ENV_ADDR, "")
    if not raw.strip():
        return None
    metrics = _Env.metrics
    if metrics is None:
        host, port = _parse_addr(raw)
        label = os.environ.get(ENV_MACHINE_LABEL, "") not in ("", "0")
        metrics = PrometheusMetrics(REGISTRY, machine_label=label)
        try:
            _Env.server = MetricsServer(port, host, REGISTRY)
        except BaseException:
            metrics.unregister()
            raise
        _Env.metrics = metrics
    if metrics not in mach.tracers:
        mach.bind_tracer(metrics)
    return metrics


def _reset_env() -> None:
    """Stop the env endpoint and unregister its metrics (for tests)."""
    if _Env.server is not None:
        _Env.server.close()
    if _Env.metrics is not None:
        _Env.metrics.unregister()
    _Env.server = _Env.metrics = None
