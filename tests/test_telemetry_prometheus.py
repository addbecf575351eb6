"""Prometheus metrics: a real scrape of the HTTP endpoint, labels, the dashboard."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import asyncmachine as am
from asyncmachine.telemetry import (
    DEFAULT_BUCKETS,
    METRIC_NAMES,
    MetricsServer,
    PrometheusMetrics,
    _prometheus,
    bind_env,
    bind_prometheus,
    bind_prometheus_env,
)
from deadline import bound_async_tests

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "grafana" / "asyncmachine.json"

SCHEMA = {
    "A": am.State(remove=["B"]),
    "B": am.State(remove=["A"]),
    "C": am.State(require=["A"]),
    "Ev": am.State(multi=True),
}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """GET the metrics page and parse it: (name, sorted labels) -> value."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


class FakeClock:
    """Each call advances by the next step (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.steps: list[float] = []

    def __call__(self) -> float:
        if self.steps:
            self.now += self.steps.pop(0)
        return self.now


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def server(registry: CollectorRegistry) -> Iterator[MetricsServer]:
    with MetricsServer(0, "127.0.0.1", registry) as srv:
        yield srv


async def test_scrape_endpoint(
    registry: CollectorRegistry, server: MetricsServer
) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/metrics"
    assert repr(server) == f"<MetricsServer {server.url}>"

    class H:
        def AState(self, e: am.Event) -> None:
            e.machine.add1("Ev")
            e.machine.add1("Ev", {"n": 2})

        def BState(self, e: am.Event) -> None:
            raise ValueError("boom")

    mach = am.Machine(SCHEMA, id="m1", handlers=H())
    metrics = PrometheusMetrics(registry)
    mach.bind_tracer(metrics)
    async with mach:
        mach.add1("A")  # queues Ev twice
        mach.add1("C")
        mach.remove1("C")
        mach.add1("C")
        mach.add(["Ev"])
        assert mach.add1("Exception") is am.Result.EXECUTED
        mach.remove1("Exception")
        mach.set(["B"])  # BState raises: canceled, then Exception
        assert mach.can_add(["A"]) is am.Result.EXECUTED  # a dry run: not counted
        assert mach.active_states == ["Exception"]
        ticks = sum(mach.time())
        got = await anyio.to_thread.run_sync(scrape, server.url)

    tx = "asyncmachine_transitions_total"
    assert value(got, tx, mutation="add", result="executed") == 8
    assert value(got, tx, mutation="add", result="canceled") == 0
    assert value(got, tx, mutation="remove", result="executed") == 2
    assert value(got, tx, mutation="set", result="canceled") == 1
    assert value(got, tx, mutation="set", result="executed") == 0
    assert value(got, "asyncmachine_exceptions_total") == 2
    # 8 calls and the 2 Ev from AState; not the Exception the core prepends
    assert value(got, "asyncmachine_mutations_queued_total") == 10
    assert value(got, "asyncmachine_machines") == 1
    assert value(got, "asyncmachine_states") == 5
    # set(B) removed A, C and Ev before BState failed; only Exception is left
    assert value(got, "asyncmachine_active_states") == 1
    assert value(got, "asyncmachine_tick_sum") == ticks
    assert value(got, "asyncmachine_ticks_total") == ticks
    assert value(got, "asyncmachine_queue_length") == 0
    # the two Ev mutations waited while A ran: 2 after A, 1 after the first Ev
    assert value(got, "asyncmachine_transition_queue_length_count") == 11
    assert value(got, "asyncmachine_transition_queue_length_sum") == 3
    assert value(got, "asyncmachine_transition_duration_seconds_count") == 11
    assert (
        value(got, "asyncmachine_transition_duration_seconds_bucket", le="+Inf") == 11
    )
    assert value(got, "asyncmachine_handler_duration_seconds_count") == 2
    for name in METRIC_NAMES:
        assert any(n.startswith("asyncmachine_" + name) for n, _ in got), name

    # disposed machines keep adding to the counters, not the gauges
    after = await anyio.to_thread.run_sync(scrape, server.url)
    assert value(after, "asyncmachine_machines") == 0
    assert value(after, "asyncmachine_active_states") == 0
    assert value(after, tx, mutation="add", result="executed") == 8
    assert repr(metrics) == "<PrometheusMetrics asyncmachine machines=0>"


def test_durations_with_a_fake_clock(registry: CollectorRegistry) -> None:
    clock = FakeClock()
    metrics = PrometheusMetrics(registry, clock=clock, buckets=(0.001, 0.01))

    class H:
        def AState(self, e: am.Event) -> None:
            clock.steps.append(0.005)  # the handler takes 5 ms

    mach = am.Machine(SCHEMA, handlers=H(), tracers=[metrics])
    # init 0, handler start 0, handler end +5 ms, end 0 -> the transition took 5 ms
    clock.steps[:] = [0.0, 0.0]
    mach.add1("A")
    clock.steps[:] = [0.0, 0.02]  # a 20 ms transition without handlers
    mach.add1("C")
    fams = {f.name: f for f in registry.collect()}
    tx = {
        s.labels["le"]: s.value
        for s in fams["asyncmachine_transition_duration_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert tx == {"0.001": 0, "0.01": 1, "+Inf": 2}
    h = {
        s.name: s.value
        for s in fams["asyncmachine_handler_duration_seconds"].samples
        if not s.name.endswith("_bucket")
    }
    assert h["asyncmachine_handler_duration_seconds_count"] == 1
    assert h["asyncmachine_handler_duration_seconds_sum"] == pytest.approx(0.005)


def test_machine_and_handler_labels(registry: CollectorRegistry) -> None:
    class H:
        def AState(self, e: am.Event) -> None:
            pass

        def CState(self, e: am.Event) -> None:
            pass

    metrics = PrometheusMetrics(
        registry, machine_label=True, handler_label=True, namespace="app_am"
    )
    m1 = am.Machine(SCHEMA, id="one", handlers=H(), tracers=[metrics])
    m2 = am.Machine(SCHEMA, id="two", handlers=H(), tracers=[metrics])
    child = am.Machine(SCHEMA, id="kid", parent=m1)
    m1.add(["A", "C"])
    m2.add1("A")
    child.add1("B")

    def samples() -> Samples:
        out: Samples = {}
        for fam in registry.collect():
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    got = samples()
    tx = "app_am_transitions_total"
    assert value(got, tx, machine="one", mutation="add", result="executed") == 1
    assert value(got, tx, machine="two", mutation="add", result="executed") == 1
    assert value(got, tx, machine="kid", mutation="add", result="executed") == 1
    assert value(got, "app_am_active_states", machine="one") == 2
    hd = "app_am_handler_duration_seconds_count"
    assert value(got, hd, machine="one", handler="AState") == 1
    assert value(got, hd, machine="one", handler="CState") == 1
    assert value(got, hd, machine="two", handler="AState") == 1
    assert (hd, (("handler", "AState"), ("machine", "kid"))) not in got
    # a disposed machine's series go away with it
    m2.dispose()
    got = samples()
    assert ("app_am_machines", (("machine", "two"),)) not in got
    assert value(got, "app_am_machines", machine="one") == 1


def test_machines_share_unlabelled_series(registry: CollectorRegistry) -> None:
    class H:
        def AState(self, e: am.Event) -> None:
            e.machine.add1("C")

        def BState(self, e: am.Event) -> None:
            pass

    metrics = PrometheusMetrics(registry, inherit=False)
    m1 = am.Machine(SCHEMA, id="x", handlers=H(), tracers=[metrics])
    m1.add1("A")
    # the same id again: the old counts are kept
    m2 = am.Machine(SCHEMA, id="x", handlers=H(), tracers=[metrics])
    m2.add1("B")
    child = am.Machine(SCHEMA, id="kid", parent=m2)
    assert child.tracers == ()

    def counts() -> dict[str, float]:
        return {
            s.name + str(sorted(s.labels.values())): s.value
            for fam in registry.collect()
            for s in fam.samples
            if not s.name.endswith("_bucket")
        }

    got = counts()
    assert got["asyncmachine_transitions_total['add', 'executed']"] == 3
    assert got["asyncmachine_handler_duration_seconds_count[]"] == 2
    assert got["asyncmachine_machines[]"] == 1
    # m1's record went to the second machine's id: m1 is not counted any more
    m2.dispose()
    m1.add1("B")
    assert counts() == {
        **got,
        "asyncmachine_machines[]": 0,
        "asyncmachine_states[]": 0,
        "asyncmachine_active_states[]": 0,
        "asyncmachine_tick_sum[]": 0,
    }
    metrics.unbind(m1)
    assert m1.tracers == ()
    metrics.unregister()
    assert list(registry.collect()) == []
    metrics.unregister()  # twice is fine


def test_describe_and_bad_options(registry: CollectorRegistry) -> None:
    metrics = bind_prometheus(am.Machine(SCHEMA), registry)
    names = {f.name for f in metrics.describe()}
    assert names == {"asyncmachine_" + n.removesuffix("_total") for n in METRIC_NAMES}
    assert all(not f.samples for f in metrics.describe())
    assert DEFAULT_BUCKETS[0] < DEFAULT_BUCKETS[-1]
    with pytest.raises(ValueError, match="buckets"):
        PrometheusMetrics(None, buckets=(1.0, 0.5))
    with pytest.raises(ValueError, match="buckets"):
        PrometheusMetrics(None, buckets=())
    with pytest.raises(ValueError, match="namespace"):
        PrometheusMetrics(None, namespace="my-app")
    assert PrometheusMetrics(None).registry is None


# -------------------------------------------------------------- environment


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("AM_OTEL_TRACE", raising=False)
    monkeypatch.delenv("AM_PROM_ADDR", raising=False)
    monkeypatch.delenv("AM_PROM_MACHINE_LABEL", raising=False)
    yield monkeypatch
    _prometheus._reset_env()


def test_env_binding(env: pytest.MonkeyPatch) -> None:
    mach = am.Machine(SCHEMA, id="envm")
    assert bind_prometheus_env(mach) is None
    assert mach.tracers == ()

    env.setenv("AM_PROM_ADDR", "127.0.0.1:0")
    env.setenv("AM_PROM_MACHINE_LABEL", "1")
    (metrics,) = bind_env(mach)
    assert isinstance(metrics, PrometheusMetrics) and metrics.machine_label
    assert metrics.registry is REGISTRY
    assert bind_prometheus_env(mach) is metrics
    assert mach.tracers == (metrics,)
    other = am.Machine(SCHEMA, id="envm2")
    assert bind_prometheus_env(other) is metrics
    mach.add1("A")
    server = _prometheus._Env.server
    assert server is not None
    got = scrape(server.url)
    tx = "asyncmachine_transitions_total"
    assert value(got, tx, machine="envm", mutation="add", result="executed") == 1
    assert value(got, "asyncmachine_machines", machine="envm2") == 1


def test_env_addresses(env: pytest.MonkeyPatch) -> None:
    assert _prometheus._parse_addr("1") == ("127.0.0.1", 9464)
    assert _prometheus._parse_addr(":9100") == ("127.0.0.1", 9100)
    assert _prometheus._parse_addr("[::1]:9100") == ("::1", 9100)
    with pytest.raises(ValueError, match="AM_PROM_ADDR"):
        _prometheus._parse_addr("localhost")
    env.setenv("AM_PROM_ADDR", "127.0.0.1:notaport")
    with pytest.raises(ValueError, match="AM_PROM_ADDR"):
        bind_prometheus_env(am.Machine(SCHEMA))
    assert _prometheus._Env.metrics is None


def test_env_server_failure_unregisters(env: pytest.MonkeyPatch) -> None:
    with MetricsServer(0, "127.0.0.1", CollectorRegistry()) as busy:
        env.setenv("AM_PROM_ADDR", f"127.0.0.1:{busy.port}")
        with pytest.raises(OSError):
            bind_prometheus_env(am.Machine(SCHEMA))
    assert _prometheus._Env.metrics is None
    # nothing left registered in the global registry
    assert not any(f.name.startswith("asyncmachine_") for f in REGISTRY.collect())


# ---------------------------------------------------------------- dashboard

_QUERY_NAME = re.compile(r"\basyncmachine_[a-z_]+")


def exported_series() -> set[str]:
    """Sample names a real collection exports (with the opt-in labels)."""

    class H:
        def AState(self, e: am.Event) -> None:
            pass

    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry, machine_label=True, handler_label=True)
    mach = am.Machine(SCHEMA, handlers=H(), tracers=[metrics])
    mach.add1("A")
    return {s.name for fam in registry.collect() for s in fam.samples}


def test_dashboard_queries_exported_metrics() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert board["title"] == "asyncmachine"
    exprs = [
        t["expr"]
        for panel in board["panels"]
        for t in panel.get("targets", ())
        if "expr" in t
    ]
    assert len(exprs) >= 8
    used = {m for e in exprs for m in _QUERY_NAME.findall(e)}
    exported = exported_series()
    assert used <= exported, used - exported
    # every exported metric has a panel
    families = used | {re.sub(r"_(bucket|sum|count)$", "", n) for n in used}
    assert {"asyncmachine_" + n for n in METRIC_NAMES} <= families | {
        n.removesuffix("_total") for n in families
    }
    # the variables query exported labels too
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert "asyncmachine_machines" in variables["machine"]["definition"]


bound_async_tests(globals(), 10)
