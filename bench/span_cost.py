"""Cost per span: otel-run's recording path vs the OpenTelemetry SDK with a no-op exporter.

    .venv/bin/python bench/span_cost.py [--rounds 40] [--spans 2000] [--report results/span_cost.md]

Every variant makes the same span an HTTP client instrumentation makes (start as
current, four attributes, one more on the way out, end) through an SDK
``TracerProvider``; only what happens to the finished span differs:

* ``sdk + BatchSpanProcessor(no-op exporter)``: the SDK's production set-up with
  an exporter that drops everything (the baseline of the goal);
* ``sdk + SimpleSpanProcessor(no-op exporter)``;
* ``sdk + otel-run store``: otel-run's processor, which encodes each span to
  OTLP JSON (with redaction) and appends it to the store on disk;
* ``otel-run light span``: the record otel-run writes without the SDK for a
  process or subprocess span (encoding + write), for scale.

Each timed block ends with a flush, so encoding, writing and exporting are all
counted. The variants run **interleaved in one process**: every round times
every variant (in a shuffled order), and ratios are taken within a round. This
machine's speed drifts by tens of percent over minutes; pyperf, which runs one
benchmark after the other, gave 0.80x and then 1.49x for the same code.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
ATTRIBUTES = {
    "http.request.method": "GET",
    "url.full": "http://127.0.0.1:8000/ai/optimize?trace=1",
    "server.address": "127.0.0.1",
    "server.port": 8000,
}


def _sdk_loop(processor: Any, resource: Any = None) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.trace import SpanKind

    class RunTrace(RandomIdGenerator):  # type: ignore[misc]
        """All spans in one trace, as in a run (otel-run's provider does this)."""

        def generate_trace_id(self) -> int:
            return int(TRACE_ID, 16)

    provider = TracerProvider(resource=resource, shutdown_on_exit=False, id_generator=RunTrace())
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")

    def run(loops: int) -> float:
        t0 = time.perf_counter()
        for _ in range(loops):
            with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes=ATTRIBUTES) as span:
                span.set_attribute("http.response.status_code", 200)
        provider.force_flush()
        return time.perf_counter() - t0

    return run


def _noop_exporter() -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Noop(SpanExporter):  # type: ignore[misc]
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    return Noop()


def _store_process() -> Any:
    import atexit
    import shutil

    from otel_run.bootstrap import _boot

    store = tempfile.mkdtemp(prefix="otel-run-bench-")
    atexit.register(shutil.rmtree, store, True)  # each pyperf worker writes ~10 MB of spans
    process = _boot.Process({}, store, TRACE_ID, "00f067aa0ba902b7")
    process.adopt(None)
    process.describe()
    return process


def bench_batch_noop() -> Any:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return _sdk_loop(BatchSpanProcessor(_noop_exporter()))


def bench_simple_noop() -> Any:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    return _sdk_loop(SimpleSpanProcessor(_noop_exporter()))


def bench_otel_run_store() -> Any:
    from opentelemetry.sdk.resources import Resource

    from otel_run.instrument._sdk import OtlpJsonLinesProcessor

    process = _store_process()
    return _sdk_loop(OtlpJsonLinesProcessor(process), Resource(process.resource))


def bench_light_span() -> Any:
    from otel_run import _wire

    process = _store_process()
    attrs = dict(ATTRIBUTES, **{"process.pid": 4242, "process.exit.code": 0})

    def run(loops: int) -> float:
        t0 = time.perf_counter()
        for _ in range(loops):
            now = time.time_ns()
            span = _wire.span_json(TRACE_ID, _wire.new_span_id(), process.span_id, "subprocess true", now, now, attrs)
            process.writer.write(TRACE_ID, _wire.request_json(process.resource_json, _wire.OTEL_RUN_SCOPE, [span]))
        return time.perf_counter() - t0

    return run


VARIANTS = {
    "sdk + BatchSpanProcessor(no-op exporter)": bench_batch_noop,
    "sdk + SimpleSpanProcessor(no-op exporter)": bench_simple_noop,
    "sdk + otel-run store": bench_otel_run_store,
    "otel-run light span (no SDK)": bench_light_span,
}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import gc
    import random
    import statistics

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--spans", type=int, default=2000, help="spans per variant per round")
    parser.add_argument("--report", default=str(REPO / "results" / "span_cost.md"))
    args = parser.parse_args(argv)
    runs = {name: factory() for name, factory in VARIANTS.items()}
    for run in runs.values():  # warm-up: caches, lazy imports, file creation
        run(args.spans)
    per_span: dict[str, list[float]] = {name: [] for name in runs}
    ratios: dict[str, list[float]] = {name: [] for name in runs}
    baseline = next(iter(runs))
    order = list(runs)
    for _ in range(args.rounds):
        random.shuffle(order)
        this_round = {}
        for name in order:
            gc.collect()
            this_round[name] = runs[name](args.spans) / args.spans
        for name, seconds in this_round.items():
            per_span[name].append(seconds * 1e6)
            ratios[name].append(seconds / this_round[baseline])

    def quartiles(values: list[float]) -> tuple[float, float, float]:
        q = statistics.quantiles(values, n=4)
        return q[0], statistics.median(values), q[2]

    lines = [
        "# Cost per span: otel-run's recording path vs the OpenTelemetry SDK",
        "",
        f"Made by `make bench` (`.venv/bin/python bench/span_cost.py`), {time.strftime('%Y-%m-%d')}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} cores: {args.rounds} rounds x {args.spans} spans "
        "per variant, variants interleaved in one process, ratios taken within each round. The span: an HTTP "
        "client span (start as current, 4 attributes + 1, end); each timed block ends with a flush. The "
        "otel-run rows include encoding to OTLP JSON, redaction and the write to disk.",
        "",
        f"| variant | µs per span, median (IQR) | × {baseline}, median (IQR) |",
        "|---|---:|---:|",
    ]
    for name in runs:
        lo, mid, hi = quartiles(per_span[name])
        rlo, rmid, rhi = quartiles(ratios[name])
        lines.append(f"| {name} | {mid:.2f} ({lo:.2f}–{hi:.2f}) | {rmid:.2f}× ({rlo:.2f}–{rhi:.2f}) |")
    Path(args.report).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
