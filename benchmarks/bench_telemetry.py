"""Benchmark the cost of telemetry on a machine's transitions.

Runs the same toggle workload, in one process, on machines that differ only
in what is bound to them:

- ``unbound``: no tracer (the baseline);
- ``no-op transition tracer``: a tracer whose transition hooks do nothing:
  the floor of any tracer that watches transitions (the core builds
  transition objects and calls the hooks; a tracer of queue hooks only
  costs nothing per transition);
- ``otel, API no-op``: an ``OtelTracer`` on the OpenTelemetry API's
  ``NoOpTracerProvider``: the machine span is not recorded, so the tracer
  detaches itself at bind time;
- ``otel, SDK, sampled out``: the same with an SDK ``TracerProvider``
  whose sampler drops everything (``ALWAYS_OFF``);
- ``otel, SDK, disabled``: an SDK ``TracerProvider`` asked for its tracer
  under ``OTEL_SDK_DISABLED=true``, which hands out the API's no-op tracer;
- ``otel, SDK, no processor``: an ``OtelTracer`` on an SDK
  ``TracerProvider`` with no span processor: every span is built and
  recorded, then dropped;
- ``otel, SDK, no processor, states only``: the same with
  ``transitions=False`` (state activation spans only);
- ``prometheus``: a ``PrometheusMetrics`` (not scraped);
- ``logging (level off)``: ``bind_logging`` with the machine's log level at
  ``NOTHING`` (the logger is then the log sink but not a tracer).

and prints nanoseconds per transition and the ratio to ``unbound``. Two
workloads: ``toggle`` (A and B remove each other; alternate ``add1("A")`` /
``add1("B")``) and ``toggle + handlers`` (an Enter and a State handler on
each state). The variants' repeats are interleaved, so drift hits all alike.

Usage::

    python benchmarks/bench_telemetry.py            # full run (about 40 s)
    python benchmarks/bench_telemetry.py --quick    # smoke run, a second or two
    python benchmarks/bench_telemetry.py --markdown # print a Markdown table
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

from bench_core import TOGGLE_SCHEMA, AmHandlers  # the same toggle workload
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from prometheus_client import CollectorRegistry

import asyncmachine as am
from asyncmachine.telemetry import OtelTracer, PrometheusMetrics, bind_logging

Op = Callable[[], object]

# ---------------------------------------------------------------------------
# variants


def _unbound(mach: am.Machine) -> None:
    pass


def _otel_noop(mach: am.Machine) -> None:
    mach.bind_tracer(OtelTracer(trace.NoOpTracerProvider().get_tracer("bench")))


def _otel_sampled_out(mach: am.Machine) -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    mach.bind_tracer(OtelTracer(provider.get_tracer("bench")))


def _otel_sdk_disabled(mach: am.Machine) -> None:
    old = os.environ.get("OTEL_SDK_DISABLED")
    os.environ["OTEL_SDK_DISABLED"] = "true"
    try:
        tracer = TracerProvider().get_tracer("bench")
    finally:
        if old is None:
            del os.environ["OTEL_SDK_DISABLED"]
        else:
            os.environ["OTEL_SDK_DISABLED"] = old
    mach.bind_tracer(OtelTracer(tracer))


def _otel_sdk(mach: am.Machine) -> None:
    mach.bind_tracer(OtelTracer(TracerProvider().get_tracer("bench")))


def _otel_sdk_states(mach: am.Machine) -> None:
    tracer = TracerProvider().get_tracer("bench")
    mach.bind_tracer(OtelTracer(tracer, transitions=False))


class _NoopTxTracer(am.Tracer):
    def transition_end(self, transition: am.Transition) -> None:
        return None


def _empty_tracer(mach: am.Machine) -> None:
    mach.bind_tracer(_NoopTxTracer())


def _prometheus(mach: am.Machine) -> None:
    mach.bind_tracer(PrometheusMetrics(CollectorRegistry()))


def _logging(mach: am.Machine) -> None:
    bind_logging(mach, "bench", log_level=am.LogLevel.NOTHING)


VARIANTS: list[tuple[str, Callable[[am.Machine], None]]] = [
    ("unbound", _unbound),
    ("no-op transition tracer", _empty_tracer),
    ("otel, API no-op", _otel_noop),
    ("otel, SDK, sampled out", _otel_sampled_out),
    ("otel, SDK, disabled", _otel_sdk_disabled),
    ("otel, SDK, no processor", _otel_sdk),
    ("otel, SDK, no processor, states only", _otel_sdk_states),
    ("prometheus", _prometheus),
    ("logging (level off)", _logging),
]


def toggle(bind: Callable[[am.Machine], None], handlers: bool) -> Op:
    h = AmHandlers() if handlers else None
    mach = am.Machine(TOGGLE_SCHEMA, handlers=h)
    mach.log_level = am.LogLevel.NOTHING  # regardless of AM_LOG
    bind(mach)
    mach.log_level = am.LogLevel.NOTHING
    add1 = mach.add1
    add1("A")
    assert add1("B") == am.Result.EXECUTED and add1("A") == am.Result.EXECUTED
    assert mach.active_states == ["A"], mach

    def op() -> None:
        add1("B")
        add1("A")

    return op


# ---------------------------------------------------------------------------
# timing


@dataclass(frozen=True)
class Timing:
    min_time: float  # seconds one repeat should take at least
    repeat: int  # best of N


def _runner(op: Op) -> Callable[[int], int]:
    def run(number: int) -> int:
        loop = itertools.repeat(None, number)
        start = time.perf_counter_ns()
        for _ in loop:
            op()
        return time.perf_counter_ns() - start

    return run


def measure_interleaved(ops: list[Op], per_call: int, timing: Timing) -> list[float]:
    """Best-of-N ns per transition of each op, their repeats interleaved."""
    runs = [_runner(op) for op in ops]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        numbers = []
        for run in runs:  # calibrate, also the warm-up
            number = 1
            while run(number) < timing.min_time * 1e9 and number < 1 << 26:
                number *= 2
            numbers.append(number)
        best = [float("inf")] * len(runs)
        for _ in range(timing.repeat):
            for i, (run, number) in enumerate(zip(runs, numbers, strict=True)):
                best[i] = min(best[i], run(number) / (number * per_call))
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


# ---------------------------------------------------------------------------
# the table


@dataclass
class Row:
    workload: str
    variant: str
    ns: float
    base: float

    @property
    def ratio(self) -> float:
        return self.ns / self.base


def run(timing: Timing) -> list[Row]:
    rows = []
    for title, handlers in (("toggle", False), ("toggle + handlers", True)):
        ops = [toggle(bind, handlers) for _, bind in VARIANTS]
        figures = measure_interleaved(ops, 2, timing)
        base = figures[0]
        rows += [
            Row(title, name, ns, base)
            for (name, _), ns in zip(VARIANTS, figures, strict=True)
        ]
    return rows


def render(rows: list[Row], markdown: bool) -> str:
    head = ["workload", "bound", "ns/transition", "overhead ns", "ratio to unbound"]
    body = [
        [
            r.workload,
            r.variant,
            f"{r.ns:,.0f}",
            f"{r.ns - r.base:+,.0f}",
            f"{r.ratio:.2f}",
        ]
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |"]
        lines.append("| --- | --- |" + " ---: |" * (len(head) - 2))
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    lines = []
    for cells in [head, *body]:
        left = [c.ljust(w) for c, w in zip(cells[:2], widths[:2], strict=True)]
        right = [c.rjust(w) for c, w in zip(cells[2:], widths[2:], strict=True)]
        lines.append("  ".join(left + right))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: tiny loops, no real figures"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print a Markdown table"
    )
    parser.add_argument("--repeat", type=int, help="best of N (default 7, quick 2)")
    parser.add_argument(
        "--min-time",
        type=float,
        help="seconds per repeat (default 0.2, quick 0.002)",
    )
    args = parser.parse_args(argv)
    timing = Timing(
        min_time=args.min_time or (0.002 if args.quick else 0.2),
        repeat=args.repeat or (2 if args.quick else 7),
    )
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"asyncmachine {version('asyncmachine')}, "
        f"opentelemetry-sdk {version('opentelemetry-sdk')}, "
        f"prometheus-client {version('prometheus-client')}"
        f"; best of {timing.repeat}, >= {timing.min_time}s per repeat"
        + (" [QUICK: figures are not meaningful]" if args.quick else "")
    )
    rows = run(timing)
    print(render(rows, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
